"""The one place that knows which Keras backend runs (KERAS_BACKEND: tensorflow, torch or
jax): compiled inference, gradients with respect to an input, and the devices there are.

Everything else in the package is written in `keras.ops` and calls these few functions,
so a backend is added or changed here alone. Backend packages are imported inside the
branch for that backend: only the one that runs is installed.
"""

import contextlib

import keras
import numpy as np

BACKEND = keras.backend.backend()
DEVICES = ("auto", "cpu", "gpu")


def compile_inference(model, function):
    """`function(*tensors)` -> tensor or tuple of tensors, written in keras.ops over layers
    of `model`, compiled once for this backend. Returns a callable that takes NumPy arrays
    and returns NumPy arrays, always reading the model's current weights (a training run
    validates through it every epoch).

    tensorflow: tf.function (retraced only for a new rank or dtype); jax: jax.jit over the
    model's variables passed as arguments, so new weights need no recompilation (one
    compilation per batch shape); torch: eager under inference_mode, which measured
    fastest on CPU (bench/backends.py).
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(function, reduce_retracing=True, autograph=False)

        def call(*arrays):
            return _to_numpy(compiled(*(tf.convert_to_tensor(a) for a in arrays)))

        return call
    if BACKEND == "jax":
        import jax

        variables = model.variables

        def stateless(values, *arrays):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return function(*arrays)

        compiled = jax.jit(stateless)

        def call(*arrays):
            return _to_numpy(compiled([variable.value for variable in variables], *arrays))

        return call
    if BACKEND == "torch":
        import torch

        def call(*arrays):
            with torch.inference_mode():
                return _to_numpy(function(*(keras.ops.convert_to_tensor(a) for a in arrays)))

        return call
    raise ValueError(f"unsupported Keras backend {BACKEND!r}")


def input_gradient(function, inputs):
    """The gradient of sum(function(inputs)) with respect to `inputs` (a float32 NumPy
    array), as a NumPy array: each backend's own autodiff, eagerly."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensor = tf.convert_to_tensor(inputs)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            total = tf.reduce_sum(function(tensor))
        return tape.gradient(total, tensor).numpy()
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(lambda tensor: function(tensor).sum())(keras.ops.convert_to_tensor(inputs)))
    if BACKEND == "torch":
        import torch

        tensor = keras.ops.convert_to_tensor(inputs).detach().requires_grad_(True)
        with torch.enable_grad():
            total = function(tensor).sum()
        return torch.autograd.grad(total, tensor)[0].detach().cpu().numpy()
    raise ValueError(f"unsupported Keras backend {BACKEND!r}")


def gpu_count():
    """How many GPUs this backend sees (0 on a CPU-only install)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if BACKEND == "torch":
        import torch

        return torch.cuda.device_count()
    if BACKEND == "jax":
        import jax

        return sum(device.platform == "gpu" for device in jax.devices())
    return 0


def resolve_device(requested="auto"):
    """"auto" -> "gpu" where the backend sees one, else "cpu"; "gpu" without one is a
    ValueError that says what to install."""
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    gpus = gpu_count()
    if requested == "gpu" and not gpus:
        raise ValueError(
            f"--device gpu, but the {BACKEND} backend sees no GPU: install its CUDA build "
            "(see README, 'Other backends and GPUs') or use --device cpu"
        )
    if requested == "auto":
        return "gpu" if gpus else "cpu"
    return requested


def device_scope(device):
    """A context in which Keras creates variables and runs computations on `device`
    ("cpu" or "gpu"); a no-op for "cpu" where the backend has no GPU to avoid."""
    if device == "gpu":
        return keras.device("gpu:0")
    if gpu_count():
        return keras.device("cpu:0")
    return contextlib.nullcontext()


def data_parallel(batch_size):
    """Keras' own DataParallel distribution over every local device (JAX backend only):
    each device gets batch_size / devices images of each batch, gradients are averaged."""
    if BACKEND != "jax":
        raise ValueError(
            f"--distribute needs KERAS_BACKEND=jax: Keras' distribution API (keras.distribution.DataParallel) "
            f"runs on the JAX backend only, and this is {BACKEND}"
        )
    devices = keras.distribution.list_devices()
    if batch_size % len(devices):
        raise ValueError(f"batch_size {batch_size} does not split evenly over the {len(devices)} devices")
    return keras.distribution.DataParallel(devices=devices)


def describe(device, distribution=None):
    """One line for logs and the Train tab: backend, version, device (and data parallelism)."""
    name = {"tensorflow": "TensorFlow", "torch": "PyTorch", "jax": "JAX"}.get(BACKEND, BACKEND)
    where = device.upper()
    if distribution is not None:
        where = f"data-parallel over {len(distribution.device_mesh.devices.reshape(-1))} devices"
    return f"Keras {keras.__version__} on {name} {_backend_version()}, {where}"


def _backend_version():
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.__version__
    if BACKEND == "torch":
        import torch

        return torch.__version__
    if BACKEND == "jax":
        import jax

        return jax.__version__
    return ""


def _to_numpy(outputs):
    if isinstance(outputs, (tuple, list)):
        return tuple(keras.ops.convert_to_numpy(output) for output in outputs)
    return keras.ops.convert_to_numpy(outputs)
