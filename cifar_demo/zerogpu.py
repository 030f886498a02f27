"""The ZeroGPU flavour: the app on a Hugging Face ZeroGPU Space (PyTorch backend).

ZeroGPU lends a GPU only inside functions decorated with `@spaces.GPU`, which it runs in a
forked worker process: their arguments and everything they yield are pickled across, and
CUDA exists there alone. So here:

- `prepare()` runs before Keras is imported (cifar_demo/__init__.py): it imports `spaces`
  before torch, as ZeroGPU requires, makes torch the default backend (the flavour installs
  no TensorFlow) and keeps Keras' torch tensors on the CPU in the main process
  (KERAS_TORCH_DEVICE=cpu), so classification never waits for a GPU.
- `on_gpu(generator, duration)` wraps the Train tab's training generator in
  `spaces.GPU(duration=...)`; the run inside builds its model on the GPU it finds.

Outside ZeroGPU (SPACES_ZERO_GPU unset, or `spaces` not installed) both do nothing and the
generator runs in this process: the same code path, tested on the CPU.
"""

import importlib.util
import os

ENABLED = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
# Seconds of GPU time one training run may ask for (its run stops itself a little before,
# keeping what it learned). Free accounts get a few minutes of ZeroGPU a day.
GPU_SECONDS = int(os.environ.get("CIFAR10_STUDIO_GPU_SECONDS", "120"))
EVALUATION_MARGIN_SECONDS = 25  # building the model before the run, the test-set evaluation after it


def prepare():
    """Before Keras loads: on ZeroGPU, torch by default, `spaces` before torch, CPU for
    the main process. Does nothing elsewhere."""
    if not ENABLED:
        return
    os.environ.setdefault("KERAS_BACKEND", "torch")
    os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
    if importlib.util.find_spec("spaces") is not None:
        import spaces  # noqa: F401  (must come before torch: it patches torch's CUDA start-up)


def max_run_seconds():
    """How long a training run may last here: ZeroGPU's lease less the evaluation, else None
    (the server's own limit applies)."""
    return GPU_SECONDS - EVALUATION_MARGIN_SECONDS if ENABLED else None


def on_gpu(generator):
    """`generator` decorated with `spaces.GPU(duration=GPU_SECONDS)` on ZeroGPU, itself
    elsewhere."""
    if not ENABLED or importlib.util.find_spec("spaces") is None:
        return generator
    import spaces

    return spaces.GPU(duration=GPU_SECONDS)(generator)
