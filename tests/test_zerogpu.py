"""The ZeroGPU flavour, on the CPU: with a stand-in `spaces` package (tests/fake_spaces)
that runs the decorated generator in a forked process and pickles everything across, as
ZeroGPU does. What a real ZeroGPU Space adds (its scheduler, quotas, a GPU) cannot be
tried here; README says so."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                reason="the ZeroGPU flavour runs on torch (pip install -r requirements-torch.txt)")

ON_ZEROGPU = """
import json, sys, time
import cifar_demo  # runs zerogpu.prepare() first
import keras, spaces
from cifar_demo.ui import training_runs
from cifar_demo.ui.training_runs import StopSignal, TrainedWeights, on_this_machine
from cifar_demo.training import BatchEnded, RunStarted, TrainConfig
from tests.conftest import toy_dataset

config = TrainConfig(epochs=int(sys.argv[1]), batch_size=32, val_size=64, train_size=192, width_mult=0.125,
                     learning_rate=0.05, augment=False, seed=1)
data = toy_dataset(train=256, test=50)
stop = StopSignal()
kinds, started, final = [], None, None
for event in training_runs.RUN_ON_DEVICE(config, data, stop, 600, 0.05):
    if event is None:
        continue
    kinds.append(type(event).__name__)
    if isinstance(event, RunStarted):
        started = event.device
    if isinstance(event, BatchEnded) and sys.argv[2] == "stop":
        stop.set()
    if isinstance(event, TrainedWeights):
        final = event
here = on_this_machine(final)
again = here.predictor.predict_proba(data.x_test)
print("RESULT " + json.dumps({
    "backend": keras.backend.backend(), "torch_device": __import__("os").environ.get("KERAS_TORCH_DEVICE"),
    "spaces_before_torch": not spaces.TORCH_IMPORTED_FIRST, "durations": spaces.durations,
    "wrapped": training_runs.RUN_ON_DEVICE is not training_runs.training_events,
    "kinds": sorted(set(kinds)), "device": started, "stopped": final.stopped, "steps": final.steps,
    "max_difference": float(abs(again - final.probabilities).max()),
    "parameter_device": str(here.result.model.get_layer("stage1_conv1").kernel.value.device),
}))
"""


def run_on_zerogpu(epochs, mode):
    environment = {name: value for name, value in os.environ.items() if name != "KERAS_BACKEND"}
    environment.update(SPACES_ZERO_GPU="true", CIFAR10_STUDIO_GPU_SECONDS="90",
                       PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "fake_spaces"), str(REPO)]))
    done = subprocess.run([sys.executable, "-c", ON_ZEROGPU, str(epochs), mode], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def test_a_training_run_crosses_from_the_gpu_worker_intact():
    result = run_on_zerogpu(epochs=2, mode="run")
    assert result["backend"] == "torch" and result["torch_device"] == "cpu"  # classification stays on the CPU
    assert result["spaces_before_torch"] and result["wrapped"] and result["durations"] == [90]
    assert {"RunStarted", "BatchEnded", "EpochEnded", "RunEnded", "EvaluationProgress", "TrainedWeights"} <= set(
        result["kinds"])
    assert "PyTorch" in result["device"]
    assert not result["stopped"] and result["steps"] == 12
    # The weights that came back give, rebuilt on this side's CPU, the worker's test answers.
    assert result["max_difference"] < 1e-5 and result["parameter_device"] == "cpu"


def test_a_stop_reaches_the_run_in_the_gpu_worker():
    result = run_on_zerogpu(epochs=50, mode="stop")
    assert result["stopped"] and result["steps"] < 50 * 6  # stopped long before its 50 epochs of 6 steps
