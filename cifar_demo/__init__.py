"""CIFAR-10 Studio: a Keras CIFAR-10 classifier and the pieces of its Gradio demo.

`Predictor` is imported lazily so that light users of the package (data loading,
image preprocessing) do not pay for importing TensorFlow. The Keras backend is checked
first (cifar_demo.runtime), so a missing one is a one-line message, not a traceback.
"""

from cifar_demo import cpu_quota, quiet_logs, zerogpu
from cifar_demo.runtime import check_keras_backend

# Here because this runs first for every entry point (`python -m cifar_demo.<cli>`,
# `python app.py`, a Space), before any module imports Keras: the thread pools are sized
# to the CPU quota before any library that reads it loads (cifar_demo/cpu_quota.py, the
# standard library only: first, since on a ZeroGPU Space `import spaces` imports torch);
# on a ZeroGPU Space, torch and `spaces` are set up next (cifar_demo/zerogpu.py); a missing
# or unknown backend stops with one line (cifar_demo/runtime.py); TensorFlow's start-up
# INFO lines are dropped (TF_CPP_MIN_LOG_LEVEL=0 brings them back; cifar_demo/quiet_logs.py).
cpu_quota.limit_threads()
zerogpu.prepare()
check_keras_backend()
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
