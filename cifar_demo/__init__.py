"""CIFAR-10 Studio: a Keras CIFAR-10 classifier and the pieces of its Gradio demo.

`Predictor` is imported lazily so that light users of the package (data loading,
image preprocessing) do not pay for importing TensorFlow. The Keras backend is checked
first (cifar_demo.runtime), so a missing one is a one-line message, not a traceback.
"""

from cifar_demo.runtime import check_keras_backend

check_keras_backend()

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

__all__ = ["CLASSES", "Predictor"]


def __getattr__(name):
    if name == "Predictor":
        from cifar_demo.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'cifar_demo' has no attribute {name!r}")
