"""The About tab's content comes from the shipped files and agrees with what was measured."""

import json
import re

import pytest

from cifar_demo.artifacts import SHIPPED_METRICS, SHIPPED_MODEL_CARD, SHIPPED_TEST_PREDICTIONS
from cifar_demo.metrics import apply_temperature, expected_calibration_error
from cifar_demo.predictions import PredictionSet
from cifar_demo.ui import about_tab
from cifar_demo.ui.app import shipped_accuracy_note


def test_card_section_takes_one_section_only():
    card = "# Card\n\n## How it was made\n\nrun this\n\n## Results\n\n93%\n"
    assert about_tab.card_section(card, "## How it was made") == "run this"
    assert about_tab.card_section(card, "## Results") == "93%"
    with pytest.raises(ValueError, match="no '## Limits' section"):
        about_tab.card_section(card, "## Limits")


def test_shipped_card_has_the_recipe_with_its_command():
    recipe = about_tab.card_section(SHIPPED_MODEL_CARD.read_text(), about_tab.RECIPE_SECTION)
    assert "python -m cifar_demo.train" in recipe and "label smoothing" in recipe


def test_uncalibrated_probabilities_recovered_from_the_shipped_ones_give_the_recorded_errors():
    """The diagram's 'before' panel undoes the temperature; both ECEs must match the
    metrics file that evaluate wrote from float32 probabilities (float16 storage aside)."""
    metrics = json.loads(SHIPPED_METRICS.read_text())
    predictions = PredictionSet.load(SHIPPED_TEST_PREDICTIONS)
    raw = apply_temperature(predictions.probabilities, 1 / metrics["temperature"])
    calibrated = apply_temperature(raw, metrics["temperature"])
    assert expected_calibration_error(raw, predictions.labels) == pytest.approx(metrics["ece_uncalibrated"], abs=2e-3)
    assert expected_calibration_error(calibrated, predictions.labels) == pytest.approx(metrics["ece"], abs=2e-3)
    figure = about_tab.reliability_figure(predictions, metrics["temperature"])
    shown = [float(re.search(r"ECE ([0-9.]+)%", axis.get_title()).group(1)) for axis in figure.axes]
    assert shown == pytest.approx([metrics["ece_uncalibrated"] * 100, metrics["ece"] * 100], abs=0.2)


def test_ood_section_reports_the_measured_rates():
    from cifar_demo import Predictor
    from cifar_demo.ood import OodDetector

    detector = OodDetector.load(Predictor.load())
    text = about_tab.ood_markdown(detector, held_out=2000)
    assert f"{detector.threshold:.2f}" in text and "5% of 2,000 held-out" in text
    assert f"are {detector.record['generated_per_set']:,} each" in text
    drawings = detector.record["drawing"]["share called a drawing"]
    for name, rate in detector.record["flag_rate"].items():
        assert f"| {name} | {rate:.1%} | {drawings[name]:.1%} |" in text
    assert "| CIFAR-10 test |" in text and "| drawings |" in text
    mirror = "the mean over the input and its mirror image"
    assert mirror in text and mirror not in about_tab.ood_markdown(
        OodDetector(detector.predictor, detector.score_name, detector.threshold, detector.statistics, views=1), 2000)


def test_calibration_text_follows_the_fitted_temperature():
    metrics = json.loads(SHIPPED_METRICS.read_text())
    shipped = about_tab.calibration_markdown(metrics, 2000)
    assert f"T = {metrics['temperature']:.3f}" in shipped and f"{metrics['ece']:.2%}" in shipped
    for temperature, direction in ((0.69, "**underconfident**"),
                                   (0.95, "**nearly calibrated**, a little underconfident"),
                                   (1.056, "**nearly calibrated**, a little overconfident"),
                                   (1.4, "**overconfident**")):
        text = about_tab.calibration_markdown(dict(metrics, temperature=temperature), 500)
        assert direction in text and f"T = {temperature:.3f}" in text and "fitted on 500 held-out" in text


def test_the_header_gives_the_accuracy_to_the_hundredth_like_the_card():
    assert "**93.97%** on the 10,000 official" in shipped_accuracy_note({"accuracy": 0.9397, "images": 10000})
    assert shipped_accuracy_note(None) == ""
