"""Data-parallel training through Keras' DataParallel on two simulated CPU devices (JAX),
against a single-device run with the same global batch; and the device checks."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from cifar_demo import backend
from cifar_demo.training import TrainConfig, Trainer
from tests.conftest import REPO

# Same seed, same batches, same global batch: data parallelism only splits each batch's
# forward and backward pass (BatchNorm statistics and the gradient are still reduced over
# the whole batch), so the losses differ only by float32 reduction order.
LOSS_TOLERANCE = 1e-3  # relative, after every step

RUN_BOTH = """
import json
from cifar_demo.training import BatchEnded, TrainConfig, Trainer
from tests.conftest import toy_dataset

data = toy_dataset()
config = TrainConfig(epochs=2, batch_size=32, train_size=192, val_size=64, width_mult=0.125, learning_rate=0.05,
                     augment=False, seed=1)
results = {}
for name, distribute in (("single", False), ("parallel", True)):
    losses = []
    trainer = Trainer(config, callbacks=[lambda e: losses.append(e.loss) if isinstance(e, BatchEnded) else None],
                      distribute=distribute)
    result = trainer.run(data)
    kernel = result.model.get_layer("stage1_conv1").kernel.value
    results[name] = {"losses": losses, "steps": result.steps, "kernel_devices": len(kernel.sharding.device_set),
                     "mesh_devices": 0 if trainer.distribution is None
                     else int(trainer.distribution.device_mesh.devices.size)}
print("RESULT " + json.dumps(results))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax (pip install -r requirements-jax.txt)")
def test_data_parallel_training_on_two_devices_matches_one_device():
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO),
                   "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", RUN_BOTH], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.split("RESULT ", 1)[1])
    single, parallel = results["single"], results["parallel"]
    assert parallel["mesh_devices"] == 2 and parallel["kernel_devices"] == 2  # both devices hold the model
    assert single["kernel_devices"] == 1
    assert parallel["steps"] == single["steps"] == 12
    for step, (one, two) in enumerate(zip(single["losses"], parallel["losses"], strict=True), start=1):
        assert two == pytest.approx(one, rel=LOSS_TOLERANCE), f"step {step}"


def test_distribute_needs_the_jax_backend():
    if backend.BACKEND == "jax":
        pytest.skip("this backend has the distribution API")
    with pytest.raises(ValueError, match="--distribute needs KERAS_BACKEND=jax"):
        Trainer(TrainConfig(), distribute=True)


def test_a_gpu_that_is_not_there_is_a_clear_error():
    if backend.gpu_count():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="sees no GPU"):
        Trainer(TrainConfig(), device="gpu")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, gpu"):
        Trainer(TrainConfig(), device="tpu")
    assert Trainer(TrainConfig(), device="auto").device == "cpu"
