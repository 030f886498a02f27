import numpy as np

from cifar_demo.plots import smooth, training_curves


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
        "epochs": [{"step": 10, "val_loss": 1.0, "val_accuracy": 0.5}, {"step": 20, "val_loss": 0.8, "val_accuracy": 0.6}],
    }
    figure = training_curves(history)
    loss_axis, accuracy_axis = figure.axes
    assert [len(line.get_xdata()) for line in loss_axis.lines] == [29, 2]
    assert accuracy_axis.lines[1].get_ydata().tolist() == [0.5, 0.6]
