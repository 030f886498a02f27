"""The one place that knows which Keras backend runs (KERAS_BACKEND: tensorflow, torch or
jax): compiled inference, gradients with respect to an input, and the devices there are.

Everything else in the package is written in `keras.ops` and calls these few functions,
so a backend is added or changed here alone. Backend packages are imported inside the
branch for that backend: only the one that runs is installed.
"""

import contextlib
import logging
import threading

import keras
import numpy as np

from cifar_demo.cpu_quota import thread_limit

BACKEND = keras.backend.backend()
DEVICES = ("auto", "cpu", "gpu")
LOG = logging.getLogger(__name__)


def limit_threads(count):
    """The backend's own thread settings, intra-op and inter-op, set to `count` (None:
    unchanged). Run when this module loads, before the app's first computation; the
    environment variables cifar_demo/cpu_quota.py set before Keras loaded cover a library
    that computed earlier (its settings then cannot change, which is why the error is
    ignored). JAX has no such setting."""
    if count is None:
        return
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # TensorFlow already ran an op
            tf.config.threading.set_intra_op_parallelism_threads(count)
            tf.config.threading.set_inter_op_parallelism_threads(count)
    elif BACKEND == "torch":
        import torch

        torch.set_num_threads(count)
        with contextlib.suppress(RuntimeError):  # torch already ran inter-op work
            torch.set_num_interop_threads(count)


limit_threads(thread_limit())


def compile_inference(variables, function):
    """`function(*tensors)` -> tensor or tuple of tensors, written in keras.ops over layers
    and `variables` (every Keras variable it reads), compiled once for this backend.
    Returns a callable that takes NumPy arrays and returns NumPy arrays, always reading the
    variables' current values.

    tensorflow: tf.function (retraced only for a new rank or dtype); jax: jax.jit over the
    variables passed as arguments, so new values need no recompilation (one compilation
    per batch shape); torch: traced once per input shape into an aten graph over the
    variables (_TracedTorchFunction), run under inference_mode.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(function, reduce_retracing=True, autograph=False)

        def call(*arrays):
            return _to_numpy(compiled(*(tf.convert_to_tensor(a) for a in arrays)))

        return call
    if BACKEND == "jax":
        import jax

        variables = list(variables)
        compiled = jax.jit(_stateless(variables, function))

        def call(*arrays):
            return _to_numpy(compiled([variable.value for variable in variables], *arrays))

        return call
    if BACKEND == "torch":
        return _TracedTorchFunction(variables, function)
    raise ValueError(f"unsupported Keras backend {BACKEND!r}")


class _TracedTorchFunction:
    """torch: `function` traced once per input shape and dtype (make_fx, fake tensors)
    into a graph of aten ops that takes the model's variables as inputs, like the jax
    branch: each call passes their current values, so new weights need no retracing, and
    runs the graph under inference_mode. That skips the Python Keras spends per layer
    call (build checks, autocast and name scopes, NHWC <-> NCHW bookkeeping), and drops
    the redundant layout copy before each convolution (_drop_layout_copies). The options
    were measured side by side by bench/torch_inference.py (bench/RESULTS.md, section
    torch_inference): this one is the fastest that traces in about a second per new shape.
    torch.compile of the Keras function breaks its graph at every layer and was no faster
    than eager; inductor over this traced graph was faster again but compiles for tens of
    seconds per batch shape, too long for the app's start-up and for a Predictor per
    training run. Eager is the fallback for a function the tracer cannot follow (a Python
    branch on a tensor's value) and beyond MAX_SHAPES shapes.
    """

    MAX_SHAPES = 16

    def __init__(self, variables, function):
        self._function = function
        self._variables = list(variables)
        self._graphs = {}  # (shape, dtype) of each input -> traced graph, or None: run eagerly
        self._lock = threading.Lock()  # the app's worker threads share one Predictor

    def __call__(self, *arrays):
        import torch

        tensors = [keras.ops.convert_to_tensor(a) for a in arrays]
        key = tuple((tuple(t.shape), t.dtype) for t in tensors)
        graph = self._graphs.get(key, _UNTRACED)
        if graph is _UNTRACED:
            with self._lock:
                graph = self._graphs.get(key, _UNTRACED)
                if graph is _UNTRACED:
                    graph = self._trace(tensors) if len(self._graphs) < self.MAX_SHAPES else None
                    self._graphs[key] = graph
        with torch.inference_mode():
            if graph is None:
                return _to_numpy(self._function(*tensors))
            return _to_numpy(graph([variable.value for variable in self._variables], *tensors))

    def _trace(self, tensors):
        import torch
        from torch.fx.experimental.proxy_tensor import make_fx

        variables = self._variables
        try:
            with torch.no_grad():
                graph = make_fx(_stateless(variables, self._function), tracing_mode="fake")(
                    [v.value for v in variables], *tensors)
        except Exception:  # data-dependent Python the tracer cannot follow: stay eager
            LOG.debug("torch inference: tracing failed, running eagerly", exc_info=True)
            return None
        return _drop_layout_copies(graph)


_UNTRACED = object()


def _stateless(variables, function):
    """`function` with the variables' values as its first argument (a list, in `variables`'
    order) instead of read from the variables: what jax.jit and make_fx compile, so that new
    values need no recompilation."""

    def stateless(values, *inputs):
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return function(*inputs)

    return stateless


def _drop_layout_copies(graph):
    """Keras' torch conv turns NHWC into NCHW with permute + contiguous, then copies that
    to channels_last memory for oneDNN: two copies of every conv input, where the permuted
    NHWC tensor already is NCHW in channels_last memory. In a traced graph, a clone to
    channels_last of a contiguous clone becomes `.contiguous(channels_last)` of the
    original, which copies nothing when its layout already fits. Values are unchanged:
    the copies only moved memory, and the graph writes in place only into tensors it
    created for that purpose (BatchNorm's arithmetic), never into those."""
    import torch

    clone = torch.ops.aten.clone.default
    for node in list(graph.graph.nodes):
        if node.target is not clone or node.kwargs.get("memory_format") is not torch.channels_last:
            continue
        source = node.args[0]
        if (getattr(source, "target", None) is clone and len(source.users) == 1
                and source.kwargs.get("memory_format") in (None, torch.contiguous_format)):
            node.replace_input_with(source, source.args[0])
            graph.graph.erase_node(source)
        tensor = node.args[0]
        if any(str(user.target).endswith("_.default") for user in (*tensor.users, *node.users)):
            continue  # something writes into them in place: keep the copy
        with graph.graph.inserting_after(node):
            view = graph.graph.call_function(_channels_last, (tensor,))
        node.replace_all_uses_with(view)
        graph.graph.erase_node(node)
    graph.graph.lint()
    graph.recompile()
    return graph


def _channels_last(tensor):
    import torch

    return tensor.contiguous(memory_format=torch.channels_last)


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


def compile_input_gradient(variables, function):
    """`function(inputs, *others)` -> per-example values, written in keras.ops over layers
    and `variables` (every Keras variable it reads), turned into a callable that takes
    NumPy arrays and returns the gradient of the values' sum with respect to `inputs`:
    compiled once per input shape where the backend allows (tensorflow: tf.function around
    a GradientTape; jax: jax.jit of jax.grad over the variables passed as arguments), and
    input_gradient's eager autodiff on torch."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def gradient(inputs, *others):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                total = tf.reduce_sum(function(inputs, *others))
            return tape.gradient(total, inputs)

        compiled = tf.function(gradient, reduce_retracing=True, autograph=False)
        return lambda *arrays: _to_numpy(compiled(*(tf.convert_to_tensor(a) for a in arrays)))
    if BACKEND == "jax":
        import jax

        variables = list(variables)
        stateless = _stateless(variables, function)
        compiled = jax.jit(jax.grad(lambda values, *inputs: stateless(values, *inputs).sum(), argnums=1))
        return lambda *arrays: np.asarray(compiled([variable.value for variable in variables], *arrays))
    if BACKEND == "torch":
        def call(inputs, *others):
            tensors = [keras.ops.convert_to_tensor(other) for other in others]
            return input_gradient(lambda tensor: function(tensor, *tensors), inputs)

        return call
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
