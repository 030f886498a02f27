"""The shipped weights on the real official test set (needs CIFAR10_PATH)."""

import json

import numpy as np
import pytest

from cifar_demo import Predictor
from cifar_demo.artifacts import SHIPPED_METRICS, SHIPPED_TEST_PREDICTIONS, SHIPPED_WEIGHTS
from cifar_demo.data import load_cifar10
from cifar_demo.metrics import summarize, summarize_predictions
from cifar_demo.predictions import PredictionSet, file_sha256
from tests.conftest import cifar10_path, requires_cifar10

MINIMUM_ACCURACY = 0.88


def test_shipped_files_exist_and_carry_no_optimizer_state():
    assert SHIPPED_WEIGHTS.is_file()
    assert SHIPPED_WEIGHTS.stat().st_size < 10_000_000  # 1.93M float32 parameters is ~8 MB
    recorded = json.loads(SHIPPED_METRICS.read_text())
    assert recorded["accuracy"] >= MINIMUM_ACCURACY


@pytest.fixture(scope="module")
def test_set_answers():
    """(official test data, the shipped model's probabilities on it), computed once."""
    data = load_cifar10(cifar10_path())
    return data, Predictor.load().predict_proba(data.x_test)


@requires_cifar10
def test_shipped_weights_reach_the_recorded_accuracy(test_set_answers):
    data, probabilities = test_set_answers
    report = summarize(probabilities, data.y_test)
    recorded = json.loads(SHIPPED_METRICS.read_text())
    assert report["images"] == 10_000
    assert report["accuracy"] >= MINIMUM_ACCURACY
    # The model card's figure is what evaluate measured; allow 3 images of float round-off.
    assert report["accuracy"] == pytest.approx(recorded["accuracy"], abs=3e-4)


def test_shipped_test_predictions_belong_to_the_shipped_weights():
    """Regenerate with `python -m cifar_demo.evaluate --write-predictions` when the weights change."""
    predictions = PredictionSet.load(SHIPPED_TEST_PREDICTIONS)
    assert predictions.weights_sha256 == file_sha256(SHIPPED_WEIGHTS)
    assert predictions.probabilities.shape == (10_000, 10) and predictions.labels.shape == (10_000,)
    report = summarize_predictions(predictions.predictions, predictions.labels)
    assert report["accuracy"] == pytest.approx(json.loads(SHIPPED_METRICS.read_text())["accuracy"], abs=1e-9)


@requires_cifar10
def test_shipped_test_predictions_agree_with_the_weights_and_the_labels(test_set_answers):
    data, probabilities = test_set_answers
    predictions = PredictionSet.load(SHIPPED_TEST_PREDICTIONS)
    np.testing.assert_array_equal(predictions.labels, data.y_test)
    recomputed = np.argmax(probabilities, axis=1)
    assert np.mean(recomputed == predictions.predictions) >= 0.999
    for index in predictions.image_indices[::50]:
        np.testing.assert_array_equal(predictions.image(int(index)), data.x_test[index])
