"""The Mistakes tab's views on a generated prediction set (no dataset, no model)."""

import threading
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from cifar_demo import CLASSES, describe
from cifar_demo.model import build_model
from cifar_demo.predictions import PredictionSet
from cifar_demo.predictor import Predictor
from cifar_demo.ui import mistakes_tab


@pytest.fixture(scope="module")
def prediction_set(tmp_path_factory):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    logits = rng.normal(size=(500, 10))
    logits[np.arange(500), labels] += np.where(rng.random(500) < 0.7, 4.0, 0.0)  # about 70% right
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pixels = rng.integers(0, 256, (500, 32, 32, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("predictions") / "p.npz"
    PredictionSet.from_arrays(probabilities, labels, pixels).save(path)
    return PredictionSet.load(path)


@pytest.fixture(scope="module")
def source(prediction_set):
    return mistakes_tab.shipped_source(Predictor(build_model((4, 8, 16))), prediction_set)


def test_overview_counts_match_the_predictions(source):
    summary, per_class, chart, confusion, grid = mistakes_tab.overview(source)
    mistakes = int(np.sum(source.predictions != source.labels))
    assert f"{mistakes:,} mistakes" in summary and "500 official test images" in summary
    assert per_class["mistakes"].sum() == mistakes and per_class["images"].sum() == 500
    table = confusion.data
    assert list(table.columns[1:]) == list(mistakes_tab.SHORT_NAMES) and table.iloc[:, 1:].to_numpy().sum() == 500
    assert len(grid.axes[0].texts) == 100 and chart.axes


def test_gallery_pages_through_the_filtered_mistakes(source):
    everything = np.flatnonzero(source.predictions != source.labels)
    items, line, shown, page = mistakes_tab.gallery_page(source, "any", "any", "Test-set order", 0)
    assert shown == everything[: mistakes_tab.PAGE_SIZE].tolist() and page == 0
    assert f"of {len(everything)}" in line and "page 1 of" in line
    image, caption = items[0]
    assert image.shape == (32 * mistakes_tab.THUMBNAIL_SCALE,) * 2 + (3,)
    true_name, predicted_name = CLASSES[source.labels[shown[0]]], CLASSES[source.predictions[shown[0]]]
    assert caption.startswith(f"{true_name} → {predicted_name} (")
    _, _, last_shown, last_page = mistakes_tab.gallery_page(source, "any", "any", "Test-set order", 999)
    assert last_page == (len(everything) - 1) // mistakes_tab.PAGE_SIZE  # clamped to the last page
    assert last_shown == everything[last_page * mistakes_tab.PAGE_SIZE :].tolist()
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (source.labels, source.predictions), 1)
    np.fill_diagonal(confusion, 0)
    true, predicted = np.unravel_index(np.argmax(confusion), confusion.shape)  # the busiest mistake
    assert confusion[true, predicted] >= 2
    _, line, shown, _ = mistakes_tab.gallery_page(source, CLASSES[true], CLASSES[predicted], "Most confident first", 0)
    assert len(shown) == confusion[true, predicted]
    assert all(source.labels[i] == true and source.predictions[i] == predicted for i in shown)
    confidences = [source.probabilities[i, predicted] for i in shown]
    assert confidences == sorted(confidences, reverse=True)
    assert f"true class {CLASSES[true]} predicted {CLASSES[predicted]}" in line
    _, line, shown, _ = mistakes_tab.gallery_page(source, "cat", "cat", "Test-set order", 0)
    assert shown == [] and "No mistakes" in line


def test_opened_image_shows_the_top_three(source):
    index = int(np.flatnonzero(source.predictions != source.labels)[0])
    image, label, line = mistakes_tab.opened_image(source, index)
    assert image["value"].shape == (256, 256, 3) and len(label) == 3
    assert image["alt_text"] == f"Test image #{index}, {describe.model_input(source.image(index))}"
    assert max(label, key=label.get) == CLASSES[source.predictions[index]]
    assert f"#{index}" in line


def test_opened_image_is_explained_for_the_prediction_or_a_chosen_class(source):
    index = int(np.flatnonzero(source.predictions != source.labels)[0])
    overlay, caption = mistakes_tab.opened_explanation(source, index, mistakes_tab.TOP_CLASS, 0.5)
    assert overlay.shape == (256, 256, 3) and overlay.dtype == np.uint8
    assert caption.startswith(f"Why {CLASSES[source.predictions[index]]} (")
    true_name = CLASSES[source.labels[index]]
    _, caption = mistakes_tab.opened_explanation(source, index, true_name, 0.5)
    assert caption.startswith(f"Why {true_name} (")
    plain, _ = mistakes_tab.opened_explanation(source, index, true_name, 0.0)  # opacity 0: the image alone
    np.testing.assert_array_equal(plain, mistakes_tab.images.upscale_nearest(source.image(index), 8))


def test_comparison_lists_the_changed_predictions(source):
    rng = np.random.default_rng(9)
    flipped = rng.random(len(source.labels)) < 0.2
    probabilities = source.probabilities.copy()
    probabilities[flipped] = probabilities[flipped][:, ::-1]  # another top class for a fifth of the images
    trained = mistakes_tab.Source(mistakes_tab.TRAINED, probabilities, source.labels,
                                  np.argmax(probabilities, axis=1), source.image, source.predictor)
    changed = np.flatnonzero(trained.predictions != source.predictions)
    fixed = [i for i in changed if trained.predictions[i] == source.labels[i]]
    summary, items = mistakes_tab.comparison(source, trained, "Fixed by your model")
    assert f"changed **{len(changed):,}**" in summary and f"fixed {len(fixed):,}" in summary
    assert [caption for _, caption in items] == [
        f"{CLASSES[source.labels[i]]}: shipped {CLASSES[source.predictions[i]]} "
        f"→ yours {CLASSES[trained.predictions[i]]}"
        for i in fixed[: mistakes_tab.CHANGES_SHOWN]
    ]
    np.testing.assert_array_equal(items[0][0], mistakes_tab.images.upscale_nearest(source.image(fixed[0]), 6))
    # A stopped run was tested on the first images only: compared on those.
    subset = mistakes_tab.Source(mistakes_tab.TRAINED, probabilities[:50], source.labels[:50],
                                 trained.predictions[:50], source.image, source.predictor)
    summary, items = mistakes_tab.comparison(source, subset, "All changed predictions")
    assert f"changed **{np.count_nonzero(changed < 50):,}** of the 50 test predictions" in summary
    other_test_set = mistakes_tab.Source(mistakes_tab.TRAINED, probabilities[:10], (source.labels[:10] + 1) % 10,
                                         trained.predictions[:10], source.image, source.predictor)
    summary, items = mistakes_tab.comparison(source, other_test_set, "All changed predictions")
    assert "not the official test set" in summary and items == []


def test_a_model_switch_that_ends_after_a_newer_filter_leaves_the_filtered_page(source, prediction_set, monkeypatch):
    """The race of a slow model switch (the first use of a trained model loads the test set)
    and a filter chosen meanwhile: the switch still draws the model's overview but not its
    gallery page, which would show the old filter under the new one."""
    with gr.Blocks() as demo, gr.Tab("Mistakes") as tab:
        mistakes_tab.build(tab, source.predictor, gr.State(), predictions=prediction_set)
    events = {function.name: function.fn for function in demo.fns.values()}
    started, release = threading.Event(), threading.Event()
    trained = mistakes_tab.Source(mistakes_tab.TRAINED, source.probabilities, source.labels, source.predictions,
                                  source.image, source.predictor)

    def loading_slowly_once(model):
        if not started.is_set():
            started.set()
            release.wait(10)
        return trained

    monkeypatch.setattr(mistakes_tab, "trained_source", loading_slowly_once)
    page, order, model = SimpleNamespace(session_hash="page"), "Test-set order", object()
    switched = []
    switch = threading.Thread(target=lambda: switched.append(
        events["switch_model"](mistakes_tab.TRAINED, "any", "any", order, model, page)))
    switch.start()
    assert started.wait(10)
    items, line, shown, _ = events["refresh"](mistakes_tab.TRAINED, "cat", "any", order, model, page)
    assert "true class cat" in line and all(source.labels[index] == CLASSES.index("cat") for index in shown)
    release.set()
    switch.join(10)
    (outputs,) = switched
    assert outputs[0] == mistakes_tab.TRAINED and outputs[1].startswith(f"**{mistakes_tab.TRAINED}:")
    assert outputs[6:11] == mistakes_tab.closed_views()  # the opened image closed
    assert outputs[11:] == (gr.skip(),) * 4  # the page the filter drew stays
    # Without a newer event, a switch draws its page too.
    outputs = events["switch_model"](mistakes_tab.TRAINED, "any", "any", order, model, page)
    assert "all classes" in outputs[12] and outputs[13] == mistakes_tab.gallery_page(trained, "any", "any", order, 0)[2]
