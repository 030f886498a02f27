"""CIFAR-10 Studio: a Keras CIFAR-10 classifier and the pieces of its Gradio demo.

`Predictor` is imported lazily so that light users of the package (data loading,
image preprocessing) do not pay for importing TensorFlow.
"""

from cifar_demo import quiet_logs

# Here because this runs first for every entry point (`python -m cifar_demo.<cli>`,
# `python app.py`, a Space), before any module imports Keras and TensorFlow; it costs
# nothing until TensorFlow is imported and only drops its start-up INFO lines
# (TF_CPP_MIN_LOG_LEVEL=0 brings them back). See cifar_demo/quiet_logs.py.
quiet_logs.install()

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
