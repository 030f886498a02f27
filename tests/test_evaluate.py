import numpy as np
import pytest

from cifar_demo import CLASSES
from cifar_demo.evaluate import confusion_matrix, per_class_accuracy, summarize


def test_confusion_matrix_against_a_loop_oracle():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    predictions = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 10, 500))
    expected = np.zeros((10, 10), dtype=np.int64)
    for true, predicted in zip(labels, predictions):
        expected[true, predicted] += 1
    np.testing.assert_array_equal(confusion_matrix(labels, predictions), expected)


def test_summary_on_known_inputs():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    probabilities = np.eye(10, dtype=np.float32)[predicted] * 0.9 + 0.01
    report = summarize(probabilities, labels)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_class_accuracy"]["airplane"] == pytest.approx(0.5)
    assert report["per_class_accuracy"]["automobile"] == pytest.approx(2 / 3)
    assert report["per_class_accuracy"]["bird"] == pytest.approx(1.0)
    assert np.isnan(report["per_class_accuracy"]["truck"])  # absent class
    assert report["confusion_matrix"][1][0] == 1 and report["images"] == 6
    assert list(report["per_class_accuracy"]) == list(CLASSES)


def test_per_class_accuracy_is_recall():
    confusion = np.array([[3, 1], [2, 2]])
    np.testing.assert_allclose(per_class_accuracy(confusion), [0.75, 0.5])


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError):
        confusion_matrix([0, 10], [0, 1])
