"""CIFAR-10 Studio: a Keras CIFAR-10 classifier and the pieces of its Gradio demo.

`Predictor` is imported lazily so that light users of the package (data loading,
image preprocessing) do not pay for importing TensorFlow.
"""

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
