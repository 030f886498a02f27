import numpy as np
import pytest

from cifar_demo import CLASSES
from cifar_demo.metrics import (
    apply_temperature,
    compare_predictions,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    per_class_accuracy,
    reliability_bins,
    summarize,
)
from cifar_demo.predictions import GRID_IMAGES, PredictionSet, rank_mistakes
from tests.conftest import damage_largest_member


def test_confusion_matrix_against_a_loop_oracle():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    predictions = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 10, 500))
    expected = np.zeros((10, 10), dtype=np.int64)
    for true, predicted in zip(labels, predictions, strict=True):
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


def random_probabilities(count, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(count, 10)) * 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities.astype(np.float32), rng.integers(0, 10, count)


@pytest.mark.parametrize("order", ["confidence", "margin", "index"])
@pytest.mark.parametrize("true_class, predicted_class", [(None, None), (3, None), (None, 5), (3, 5)])
def test_rank_mistakes_against_a_sorting_oracle(order, true_class, predicted_class):
    probabilities, labels = random_probabilities(400)
    expected = []
    for index, (row, label) in enumerate(zip(probabilities, labels, strict=True)):
        predicted = int(np.argmax(row))
        if predicted == label or true_class not in (None, label) or predicted_class not in (None, predicted):
            continue
        first, second = sorted(row, reverse=True)[:2]
        key = {"confidence": -first, "margin": first - second, "index": 0}[order]
        expected.append((key, index))
    expected = [index for _, index in sorted(expected)]
    assert rank_mistakes(probabilities, labels, true_class, predicted_class, order).tolist() == expected


def test_rank_mistakes_follows_given_predictions_over_tied_probabilities():
    probabilities = np.array([[0.5, 0.5] + [0.0] * 8], dtype=np.float32)
    assert rank_mistakes(probabilities, [1]).tolist() == [0]  # argmax picks class 0
    assert rank_mistakes(probabilities, [1], predictions=[1]).tolist() == []
    with pytest.raises(ValueError, match="order must be one of"):
        rank_mistakes(probabilities, [1], order="worst")


def test_prediction_set_keeps_only_mistakes_and_the_grid_and_round_trips(tmp_path):
    probabilities, labels = random_probabilities(300, seed=1)
    pixels = np.random.default_rng(2).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    saved = PredictionSet.from_arrays(probabilities, labels, pixels, weights_sha256="abc")
    mistakes = np.flatnonzero(np.argmax(probabilities, axis=1) != labels)
    assert saved.image_indices.tolist() == sorted(set(range(GRID_IMAGES)) | set(mistakes.tolist()))
    saved.save(tmp_path / "p.npz")
    loaded = PredictionSet.load(tmp_path / "p.npz")
    assert loaded.weights_sha256 == "abc"
    np.testing.assert_array_equal(loaded.predictions, np.argmax(probabilities, axis=1))
    np.testing.assert_allclose(loaded.probabilities, probabilities, atol=1e-3)  # float16 on disk
    for index in (0, 99, int(mistakes[-1])):
        np.testing.assert_array_equal(loaded.image(index), pixels[index])
    correct_outside_grid = next(i for i in range(GRID_IMAGES, 300) if i not in set(mistakes.tolist()))
    with pytest.raises(KeyError, match="not stored"):
        loaded.image(correct_outside_grid)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a test-predictions file"):
        PredictionSet.load(tmp_path / "bad.npz")
    damage_largest_member(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="not a test-predictions file"):
        PredictionSet.load(tmp_path / "p.npz")


def test_expected_calibration_error_against_a_loop_oracle():
    probabilities, labels = random_probabilities(1000, seed=3)
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    total = 0.0
    for b in range(15):
        low, high = b / 15, (b + 1) / 15
        members = (confidence > low) & (confidence <= high)
        if members.any():
            total += members.sum() * abs(np.mean(predicted[members] == labels[members]) - confidence[members].mean())
    assert expected_calibration_error(probabilities, labels) == pytest.approx(total / 1000, abs=1e-6)
    counts, _, _ = reliability_bins(probabilities, labels)
    assert counts.sum() == 1000


def test_temperature_fit_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(20000, 10)) * 4
    true_temperature = 2.5
    calibrated = np.exp(logits / true_temperature)
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in calibrated])
    overconfident = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    rescaled = apply_temperature(overconfident, fitted)
    np.testing.assert_allclose(rescaled.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(rescaled.argmax(axis=1), overconfident.argmax(axis=1))
    assert expected_calibration_error(rescaled, labels) < expected_calibration_error(overconfident, labels) / 3
    np.testing.assert_allclose(apply_temperature(overconfident, 1.0), overconfident, atol=1e-6)
    with pytest.raises(ValueError, match="temperature must be positive"):
        apply_temperature(overconfident, 0)


def test_compare_predictions_against_a_loop_oracle():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 10, 400)
    first = np.where(rng.random(400) < 0.7, labels, rng.integers(0, 10, 400))
    second = np.where(rng.random(400) < 0.7, labels, rng.integers(0, 10, 400))
    kinds = compare_predictions(first, second, labels)
    expected = {"changed": [], "fixed": [], "broken": [], "both_wrong": []}
    for index, (a, b, truth) in enumerate(zip(first, second, labels, strict=True)):
        if a == b:
            continue
        expected["changed"].append(index)
        if b == truth:
            expected["fixed"].append(index)
        elif a == truth:
            expected["broken"].append(index)
        else:
            expected["both_wrong"].append(index)
    assert {kind: found.tolist() for kind, found in kinds.items()} == expected
    assert len(kinds["fixed"]) + len(kinds["broken"]) + len(kinds["both_wrong"]) == len(kinds["changed"]) > 0
    with pytest.raises(ValueError, match="same images"):
        compare_predictions(first[:5], second, labels)
