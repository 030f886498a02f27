import numpy as np

from cifar_demo import CLASSES
from cifar_demo.metrics import apply_temperature, expected_calibration_error, reliability_bins
from cifar_demo.plots import confusion_matrix_figure, prediction_grid, reliability_diagram, smooth, training_curves


def test_smooth_is_a_bias_corrected_moving_average():
    np.testing.assert_allclose(smooth([5.0, 5.0, 5.0]), [5.0, 5.0, 5.0])
    values = np.random.default_rng(0).normal(size=50)
    expected, average = [], 0.0
    for count, value in enumerate(values, start=1):
        average = 0.9 * average + 0.1 * value
        expected.append(average / (1 - 0.9**count))
    np.testing.assert_allclose(smooth(values), expected)


def test_training_curves_draws_both_panels():
    history = {
        "steps": [{"step": s, "loss": 2.0 / s, "accuracy": 1 - 1.0 / s, "learning_rate": 0.1} for s in range(1, 30)],
        "epochs": [
            {"step": 10, "val_loss": 1.0, "val_accuracy": 0.5},
            {"step": 20, "val_loss": 0.8, "val_accuracy": 0.6},
        ],
    }
    figure = training_curves(history)
    loss_axis, accuracy_axis = figure.axes
    assert [len(line.get_xdata()) for line in loss_axis.lines] == [29, 2]
    assert accuracy_axis.lines[1].get_ydata().tolist() == [0.5, 0.6]


def test_prediction_grid_titles_each_image_with_its_prediction_red_when_wrong():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(12) % 10
    predictions = labels.copy()
    predictions[[1, 5]] = (labels[[1, 5]] + 1) % 10
    figure = prediction_grid(images, labels, predictions)
    texts = figure.axes[0].texts
    assert [t.get_text() for t in texts] == [("wrong: " if i in (1, 5) else "") + CLASSES[p]
                                             for i, p in enumerate(predictions)]
    assert [i for i, t in enumerate(texts) if t.get_color() == "red"] == [1, 5]
    mosaic = figure.axes[0].images[0].get_array()
    assert mosaic.shape[:2] == (2 * 48, 10 * 36)  # 2 rows, 10 columns of 32 px + gaps and titles
    np.testing.assert_array_equal(mosaic[12:44, 2:34], images[0])  # the first cell, under its title band


def test_confusion_matrix_figure_writes_every_count():
    confusion = np.arange(100).reshape(10, 10)
    figure = confusion_matrix_figure(confusion)
    assert sorted(int(t.get_text()) for t in figure.axes[0].texts) == list(range(100))


def test_reliability_diagram_compares_before_and_after_the_temperature():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=500)
    logits = rng.normal(size=(500, 10)) + 3 * np.eye(10)[labels]
    probabilities = np.exp(2 * logits) / np.exp(2 * logits).sum(axis=1, keepdims=True)  # overconfident
    figure = reliability_diagram(probabilities, labels, temperature=2.0, bins=10)
    before, after = figure.axes
    assert f"ECE {expected_calibration_error(probabilities, labels, 10) * 100:.2f}%" in before.get_title()
    calibrated = apply_temperature(probabilities, 2.0)
    assert f"ECE {expected_calibration_error(calibrated, labels, 10) * 100:.2f}%" in after.get_title()
    assert "T = 2.000" in after.get_title()
    counts, _, accuracy = reliability_bins(probabilities, labels, 10)
    np.testing.assert_allclose([bar.get_height() for bar in before.containers[0]], accuracy[counts > 0])
