"""The explanation views the Classify and Mistakes tabs share, on a tiny model."""

import numpy as np
import pytest

from cifar_demo import CLASSES, describe
from cifar_demo.images import upscale_nearest
from cifar_demo.model import build_model
from cifar_demo.predictor import Predictor
from cifar_demo.ui import explain_views


@pytest.fixture(scope="module")
def predictor():
    return Predictor(build_model((4, 8, 16)))


def test_explained_class_follows_the_choice_or_the_top_probability():
    probabilities = np.array([0.1, 0.05, 0.5, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    assert explain_views.explained_class(explain_views.TOP_CLASS, probabilities) == 2
    assert explain_views.explained_class(None, probabilities) == 2
    assert explain_views.explained_class("truck", probabilities) == 9


def test_explanation_blends_the_map_over_the_enlarged_input(predictor):
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    probabilities = predictor.predict_proba(pixels[None])[0]
    overlay, caption = explain_views.explanation(predictor, pixels, probabilities, "cat", 0.0, 4)
    np.testing.assert_array_equal(overlay, upscale_nearest(pixels, 4))  # opacity 0: the input alone
    assert caption.startswith(f"Why cat ({probabilities[CLASSES.index('cat')]:.0%})?")
    heatmap = predictor.explain_pixels(pixels, CLASSES.index("cat"), side=128)
    assert caption.endswith(f"(Grad-CAM on the last convolution): {describe.where_strongest(heatmap)}.")
    full, _ = explain_views.explanation(predictor, pixels, probabilities, "cat", 1.0, 4)
    assert full.shape == (128, 128, 3) and not np.array_equal(full, overlay)


def test_ood_notice_says_the_verdict_and_shows_the_score():
    flagged = explain_views.ood_notice_html({"score": 4.391, "threshold": 2.77, "out_of_distribution": True})
    assert "Probably none of these" in flagged and "ood-flagged" in flagged and "score 4.39, threshold 2.77" in flagged
    fine = explain_views.ood_notice_html({"score": -0.6, "threshold": 2.77, "out_of_distribution": False})
    assert "Looks like a CIFAR-10 photo" in fine and "Probably" not in fine and "score -0.60" in fine


def test_drawings_get_their_own_notice_rather_than_none_of_these():
    drawing = explain_views.ood_notice_html({"score": 4.391, "threshold": 2.77, "out_of_distribution": False,
                                             "looks_like_drawing": True})
    assert "Looks like a drawing" in drawing and "ood-drawing" in drawing and "grain of salt" in drawing
    assert "Probably none of these" not in drawing and "score 4.39, threshold 2.77" in drawing


def test_nearest_training_images_are_the_bank_images_nearest_first_with_their_labels(predictor):
    from cifar_demo import ood

    rng = np.random.default_rng(5)
    bank_images = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(30) % 10
    features = predictor.predict_features(bank_images).features
    detector = ood.OodDetector(predictor, "energy", 0.0, {"bank_features": features, "bank_indices": np.arange(30)})
    bank = ood.TrainingBank(bank_images, labels, np.arange(30))
    shown = explain_views.nearest_training_images(detector, bank, bank_images[12])
    assert len(shown) == ood.NEIGHBOURS
    np.testing.assert_array_equal(shown[0][0], upscale_nearest(bank_images[12], explain_views.NEIGHBOUR_SCALE))
    assert shown[0][1] == f"{CLASSES[2]} (0.00)"  # itself first, at distance 0
    distances = [float(caption.split("(")[1].rstrip(")")) for _, caption in shown]
    assert distances == sorted(distances)


@pytest.mark.same_on_every_backend
def test_classify_tab_says_why_when_the_nearest_images_file_is_missing(predictor, tmp_path, monkeypatch):
    """The app still serves: the gallery's label says what is wrong, the answer stays."""
    import gradio as gr

    from cifar_demo import ood
    from cifar_demo.ui import classify_tab

    monkeypatch.setattr(ood, "neighbours_path_for", lambda weights: tmp_path / "missing.neighbours.npz")
    features = predictor.predict_features(np.zeros((10, 32, 32, 3), np.uint8)).features
    detector = ood.OodDetector(predictor, "energy", 0.0, {"bank_features": features, "bank_indices": np.arange(10)})
    with gr.Blocks() as demo:
        classify_tab.build(predictor, gr.State(), detector)
    [neighbours] = [block.fn for block in demo.fns.values() if block.name == "neighbours"]
    shown = neighbours(np.zeros((32, 32, 3), np.uint8))
    assert shown["value"] is None and "cannot be shown: no training images for the nearest neighbours" in shown["label"]
    assert neighbours(None)["label"] == explain_views.NEIGHBOURS_LABEL
