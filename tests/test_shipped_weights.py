"""The shipped weights on the real official test set (needs CIFAR10_PATH)."""

import json

import pytest

from cifar_demo import Predictor
from cifar_demo.data import load_cifar10
from cifar_demo.evaluate import evaluate_predictor
from cifar_demo.predictor import SHIPPED_METRICS, SHIPPED_WEIGHTS
from tests.conftest import cifar10_path, requires_cifar10

MINIMUM_ACCURACY = 0.88


def test_shipped_files_exist_and_carry_no_optimizer_state():
    assert SHIPPED_WEIGHTS.is_file()
    assert SHIPPED_WEIGHTS.stat().st_size < 10_000_000  # 1.93M float32 parameters is ~8 MB
    recorded = json.loads(SHIPPED_METRICS.read_text())
    assert recorded["accuracy"] >= MINIMUM_ACCURACY


@requires_cifar10
def test_shipped_weights_reach_the_recorded_accuracy():
    data = load_cifar10(cifar10_path())
    report = evaluate_predictor(Predictor.load(), data.x_test, data.y_test)
    recorded = json.loads(SHIPPED_METRICS.read_text())
    assert report["images"] == 10_000
    assert report["accuracy"] >= MINIMUM_ACCURACY
    # The model card's figure is what evaluate measured; allow 3 images of float round-off.
    assert report["accuracy"] == pytest.approx(recorded["accuracy"], abs=3e-4)
