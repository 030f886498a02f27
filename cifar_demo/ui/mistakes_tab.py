"""Mistakes tab: where the model goes wrong on the official test set.

For the shipped model everything comes from weights/test_predictions.npz (probabilities
of all 10,000 test images and the pixels of the ones shown), so the tab opens at once
with no dataset and no model run; its first view is computed when the app is built,
except its two figures, drawn once after launch and sent when a page first opens the tab
(first_view.FirstView: the grid alone would be a third of the page config).
For a model trained in this browser session, the probabilities its run computed on the
test set and the dataset the run trained with are used instead.
"""

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pandas as pd

from cifar_demo import CLASSES, data, describe, images, plots
from cifar_demo.artifacts import SHIPPED_TEST_PREDICTIONS
from cifar_demo.metrics import compare_predictions, summarize_predictions
from cifar_demo.predictions import GRID_IMAGES, PredictionSet, rank_mistakes
from cifar_demo.ui import explain_views
from cifar_demo.ui.current_input import current_input
from cifar_demo.ui.explain_views import DEFAULT_OPACITY, TOP_CLASS
from cifar_demo.ui.first_view import FirstView
from cifar_demo.ui.internals import ShownGallery, ShownImage, ShownLabel, ShownPlot
from cifar_demo.ui.newest_view import NewestView

SHIPPED = "Shipped model"
TRAINED = "Your trained model"
ANY = "any"
ORDERS = {"Most confident first": "confidence", "Closest calls first": "margin", "Test-set order": "index"}
PAGE_SIZE = 36              # mistakes per gallery page (6 rows of 6)
GALLERY_COLUMNS = 6         # wide enough for "automobile → airplane (97%)" under each image
SHORT_NAMES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")  # table headers
THUMBNAIL_SCALE = 6         # 32x32 -> 192x192, nearest neighbour: crisp at any gallery size
LARGE_SCALE = 8             # 32x32 -> 256x256 for the opened image
CHANGE_KINDS = {            # the comparison's filter -> compare_predictions' key
    "All changed predictions": "changed",
    "Fixed by your model": "fixed",
    "Broken by your model": "broken",
    "Wrong both times, differently": "both_wrong",
}
CHANGES_SHOWN = 48          # images of the comparison's gallery
OPEN_HINT = "*Click an image above to open it.*"
NO_COMPARISON = "*Train a model in the Train tab and press “Use this model” to compare it with the shipped one here.*"
# The events that replace the model's views, and the first view's figures, in one queue
# group: first in, first out, one at a time, so the figures never overwrite a newer answer.
MODEL_VIEWS = "mistakes-model-views"


@dataclass
class Source:
    """A model's answers on the test set and a way to get the pixels of any image shown."""

    name: str
    probabilities: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    image: Callable[[int], np.ndarray]
    predictor: object            # the model's Predictor, for explanations

    def report(self):
        return summarize_predictions(self.predictions, self.labels)


def shipped_source(predictor, predictions=None):
    """The shipped model's answers: a PredictionSet (weights/test_predictions.npz when None)."""
    predictions = predictions if predictions is not None else PredictionSet.load(SHIPPED_TEST_PREDICTIONS)
    return Source(SHIPPED, predictions.probabilities, predictions.labels, predictions.predictions, predictions.image,
                  predictor)


def trained_source(model):
    """The session's model, with the official test images of the dataset it trained on (the
    first ones only, for a stopped run that was tested on a subset)."""
    dataset = data.load_cifar10_cached()
    probabilities = model.test_probabilities
    return Source(TRAINED, probabilities, dataset.y_test[: len(probabilities)], np.argmax(probabilities, axis=1),
                  lambda index: dataset.x_test[index], model.predictor)


def class_index(name):
    return None if name in (None, ANY) else CLASSES.index(name)


def confusion_table(confusion):
    """The confusion matrix as a styled table: rows true classes, columns predictions;
    mistakes shaded red by their share of the row, the diagonal green."""
    confusion = np.asarray(confusion)
    frame = pd.DataFrame(confusion, columns=list(SHORT_NAMES))
    frame.insert(0, "true class", list(CLASSES))
    shares = confusion / np.maximum(1, confusion.sum(axis=1, keepdims=True))

    def colours(table):
        styles = pd.DataFrame("", index=table.index, columns=table.columns)
        for row in range(len(CLASSES)):
            for col in range(len(CLASSES)):
                share = shares[row, col]
                if row == col:
                    styles.iat[row, col + 1] = "background-color: rgba(44, 160, 44, 0.25); font-weight: 600"
                elif confusion[row, col]:
                    styles.iat[row, col + 1] = f"background-color: rgba(214, 39, 40, {min(0.85, 0.08 + 3 * share):.2f})"
        return styles

    return frame.style.apply(colours, axis=None)


def per_class_table(report):
    totals = np.asarray(report["confusion_matrix"]).sum(axis=1)
    correct = np.diagonal(np.asarray(report["confusion_matrix"]))
    return pd.DataFrame({
        "class": list(CLASSES),
        "accuracy": [f"{report['per_class_accuracy'][name]:.1%}" for name in CLASSES],
        "mistakes": (totals - correct).tolist(),
        "images": totals.tolist(),
    })


def overview(source):
    """Summary line, per-class table and chart, confusion table and the blog's grid."""
    summary, per_class, confusion = overview_tables(source)
    chart, grid = overview_figures(source)
    return summary, per_class, chart, confusion, grid


def overview_tables(source):
    """Summary line, per-class table and confusion table."""
    report = source.report()
    mistakes = report["images"] - int(np.trace(np.asarray(report["confusion_matrix"])))
    summary = (
        f"**{source.name}: {report['accuracy']:.2%} test accuracy**, {mistakes:,} mistakes among the "
        f"{report['images']:,} official test images. Click a cell of the confusion matrix to see its images."
    )
    return summary, per_class_table(report), confusion_table(report["confusion_matrix"])


def overview_figures(source):
    """The per-class accuracy chart and the blog's grid of the first test images."""
    report = source.report()
    count = min(GRID_IMAGES, len(source.labels))
    grid_images = np.stack([source.image(index) for index in range(count)])
    grid = plots.prediction_grid(
        grid_images, source.labels[:count], source.predictions[:count],
        title=f"{source.name}: the first {count} test images, wrong predictions in red and marked “wrong”",
    )
    chart = plots.per_class_accuracy_figure(report["per_class_accuracy"], title=f"{source.name}: accuracy per class")
    return chart, grid


def gallery_page(source, true_name, predicted_name, order_name, page):
    """One page of mistakes: (gallery items, page line, test indices shown, page number)."""
    indices = rank_mistakes(source.probabilities, source.labels, class_index(true_name),
                            class_index(predicted_name), ORDERS[order_name], source.predictions)
    pages = max(1, -(-len(indices) // PAGE_SIZE))
    page = min(max(0, int(page)), pages - 1)
    shown = indices[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    items = []
    for index in shown:
        probabilities = source.probabilities[index]
        predicted = int(source.predictions[index])
        caption = f"{CLASSES[source.labels[index]]} → {CLASSES[predicted]} ({probabilities[predicted]:.0%})"
        items.append((images.upscale_nearest(source.image(int(index)), THUMBNAIL_SCALE), caption))
    which = " ".join(filter(None, [
        f"true class {true_name}" if class_index(true_name) is not None else "",
        f"predicted {predicted_name}" if class_index(predicted_name) is not None else "",
    ])) or "all classes"
    if len(indices):
        line = (f"Mistakes {page * PAGE_SIZE + 1}-{page * PAGE_SIZE + len(shown)} of {len(indices):,} "
                f"({which}) · page {page + 1} of {pages}")
    else:
        line = f"No mistakes for {which}."
    return items, line, [int(i) for i in shown], page


def opened_image(source, index):
    """The opened image large, its top-3 probabilities and a line about it."""
    probabilities = source.probabilities[index]
    predicted = int(source.predictions[index])
    top = np.argsort(-probabilities, kind="stable")[:3]
    label = {CLASSES[k]: float(probabilities[k]) for k in top}
    line = (f"Test image #{index}: really a **{CLASSES[source.labels[index]]}**, "
            f"the model said **{CLASSES[predicted]}** ({probabilities[predicted]:.1%}).")
    opened = gr.update(value=images.upscale_nearest(source.image(index), LARGE_SCALE),
                       alt_text=f"Test image #{index}, {describe.model_input(source.image(index))}")
    return opened, label, line


def opened_explanation(source, index, choice, opacity):
    """The opened image's Grad-CAM overlay for the chosen class (the predicted one by
    default; the true class answers "why not the right one?") and its caption."""
    return explain_views.explanation(source.predictor, source.image(index), source.probabilities[index], choice,
                                     opacity, LARGE_SCALE)


def test_image_input(source, index):
    """The opened test image as the session's current input."""
    return current_input(source.image(index), f"test image #{index} (really a {CLASSES[source.labels[index]]})")


def closed_views():
    """The opened image's views (image, label, line, heatmap, index) with nothing open."""
    return None, None, OPEN_HINT, gr.update(value=None, label=explain_views.EXPLAIN_LABEL), None


def comparison(shipped, trained, kind_name):
    """Where the session's model and the shipped one disagree on the test set: a summary
    and gallery items captioned "true: shipped → yours"."""
    tested = len(trained.labels)  # fewer than the whole test set for a stopped run: its first images
    if tested > len(shipped.labels) or not np.array_equal(trained.labels, shipped.labels[:tested]):
        return (f"Your model was tested on {tested:,} images that are not the official test set the "
                f"shipped predictions cover ({len(shipped.labels):,}), so there is nothing to compare."), []
    kinds = compare_predictions(shipped.predictions[:tested], trained.predictions, trained.labels)
    summary = (f"Your model changed **{len(kinds['changed']):,}** of the {tested:,} test predictions: "
               f"fixed {len(kinds['fixed']):,} (shipped wrong, yours right), broke {len(kinds['broken']):,}, "
               f"and {len(kinds['both_wrong']):,} are wrong both times in different ways.")
    chosen = kinds[CHANGE_KINDS[kind_name]][:CHANGES_SHOWN]
    items = [(images.upscale_nearest(trained.image(int(index)), THUMBNAIL_SCALE),
              f"{CLASSES[shipped.labels[index]]}: shipped {CLASSES[shipped.predictions[index]]} → "
              f"yours {CLASSES[trained.predictions[index]]}") for index in chosen]
    if len(kinds[CHANGE_KINDS[kind_name]]) > len(chosen):
        summary += f" Showing the first {len(chosen)} of {len(kinds[CHANGE_KINDS[kind_name]]):,} ({kind_name.lower()})."
    return summary, items


def build(tab, predictor, trained_model, predictions=None, shared_input=None):
    """Lays out `tab` with its first view computed for the shipped `predictor` and its
    test-set `predictions` (read from weights/test_predictions.npz when None);
    `trained_model` is the session's gr.State. An opened test image also becomes the
    session's current input (`shared_input`, a gr.State), when given. Returns the FirstView
    that fills its figures."""
    shipped = shipped_source(predictor, predictions)
    newest = NewestView()  # the gallery page of a page lands in the order its events were asked for
    first_summary, first_per_class, first_confusion = overview_tables(shipped)
    first_order = next(iter(ORDERS))
    first_items, first_line, first_shown, _ = gallery_page(shipped, ANY, ANY, first_order, 0)

    def source_for(choice, model):
        if choice == TRAINED:
            if model is None:
                raise gr.Error("Train a model in the Train tab and press “Use this model” first.",
                               title="No trained model")
            try:
                return trained_source(model)
            except ValueError as error:
                raise gr.Error(f"The test images are not available: {error}", title="No dataset") from None
        return shipped

    with gr.Row(equal_height=False):
        choice = gr.Radio([SHIPPED, TRAINED], value=SHIPPED, label="Model", scale=1)
        summary = gr.Markdown(first_summary, elem_id="mistakes-summary")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            confusion = gr.Dataframe(first_confusion, interactive=False, elem_id="confusion-table",
                                     label="Confusion matrix (rows: true class, columns: prediction); click a cell",
                                     max_height=520, column_widths=["19%"] + ["8.1%"] * len(CLASSES))
        with gr.Column(scale=2):
            per_class_chart = ShownPlot(show_label=False, format="png", elem_id="mistakes-per-class")
            with gr.Accordion("Per-class table", open=False):
                per_class = gr.Dataframe(first_per_class, interactive=False, show_label=False)
    with gr.Row():
        true_class = gr.Dropdown([ANY, *CLASSES], value=ANY, label="True class")
        predicted_class = gr.Dropdown([ANY, *CLASSES], value=ANY, label="Predicted class")
        order = gr.Radio(list(ORDERS), value=first_order, label="Sort")
    gallery = ShownGallery(first_items, columns=GALLERY_COLUMNS, format="png", height="auto", allow_preview=False,
                         elem_id="mistakes-gallery", elem_classes=["pixelated"],
                         label="Misclassified test images: true → predicted (confidence)", buttons=[])
    with gr.Row():
        previous_page = gr.Button("← Previous", size="sm", scale=0)
        page_line = gr.Markdown(first_line, elem_id="mistakes-page")
        next_page = gr.Button("Next →", size="sm", scale=0)
    with gr.Row(equal_height=False):
        opened = ShownImage(label="Opened image (32x32, enlarged)", interactive=False, height=272, width=272,
                          format="png", elem_classes=["pixelated"], buttons=[])
        opened_heatmap = ShownImage(label=explain_views.EXPLAIN_LABEL, interactive=False, height=272, width=272,
                                  format="png", buttons=[], elem_id="opened-heatmap")
        with gr.Column():
            opened_line = gr.Markdown(OPEN_HINT)
            opened_label = ShownLabel(num_top_classes=3, label="Top 3 probabilities", elem_id="opened-label")
            with gr.Row():
                opened_class = gr.Dropdown([TOP_CLASS, *CLASSES], value=TOP_CLASS,
                                           label="Explain which class? (pick the true one: why not it?)")
                opened_opacity = gr.Slider(0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label="Heatmap opacity")
    with gr.Accordion("The blog's grid: 100 test predictions, wrong ones in red and marked “wrong”", open=False):
        grid = ShownPlot(show_label=False, format="png", elem_id="mistakes-grid")
    with gr.Accordion("Compare: where your trained model and the shipped one disagree", open=False, elem_id="compare"):
        change_kind = gr.Radio(list(CHANGE_KINDS), value=next(iter(CHANGE_KINDS)), show_label=False)
        change_summary = gr.Markdown(NO_COMPARISON, elem_id="compare-summary")
        change_gallery = ShownGallery([], columns=GALLERY_COLUMNS, format="png", height="auto", allow_preview=False,
                                    elem_id="compare-gallery", elem_classes=["pixelated"], buttons=[],
                                    label="Test images: true class: shipped → yours")

    page = gr.State(0)
    shown = gr.State(first_shown)
    opened_index = gr.State()
    filters = [choice, true_class, predicted_class, order]
    page_outputs = [gallery, page_line, shown, page]

    def refresh(choice_value, true_value, predicted_value, order_value, model):
        return gallery_page(source_for(choice_value, model), true_value, predicted_value, order_value, 0)

    def switch_model(choice_value, true_value, predicted_value, order_value, model):
        """Every view for the chosen model; the opened image belonged to the other one, so it
        closes. A model that is not there is a warning and the choice goes back, with every
        view left as it was (an error would mark each of them failed)."""
        try:
            source = source_for(choice_value, model)
        except gr.Error as error:
            gr.Warning(error.message)
            return (SHIPPED, *[gr.skip()] * len(model_views))
        return (choice_value, *overview(source), *closed_views(),
                *gallery_page(source, true_value, predicted_value, order_value, 0))

    def pick_cell(choice_value, order_value, model, event: gr.SelectData):
        """A confusion cell filters to (true, predicted); a class-name cell to its true class."""
        row, col = event.index
        true_value = CLASSES[row]
        predicted_value = CLASSES[col - 1] if col >= 1 else ANY
        return (true_value, predicted_value,
                *gallery_page(source_for(choice_value, model), true_value, predicted_value, order_value, 0))

    def turn(step):
        def handler(choice_value, true_value, predicted_value, order_value, model, page_value):
            return gallery_page(source_for(choice_value, model), true_value, predicted_value, order_value,
                                page_value + step)
        return handler

    def open_image(choice_value, model, shown_indices, class_choice, opacity_value, event: gr.SelectData):
        source = source_for(choice_value, model)
        index = shown_indices[event.index]
        overlay, caption = opened_explanation(source, index, class_choice, opacity_value)
        return (*opened_image(source, index), gr.update(value=overlay, label=caption, alt_text=caption), index)

    def explain_opened(choice_value, model, index, class_choice, opacity_value):
        if index is None:
            return gr.skip()
        overlay, caption = opened_explanation(source_for(choice_value, model), index, class_choice, opacity_value)
        return gr.update(value=overlay, label=caption, alt_text=caption)

    def compare_models(model, kind_name):
        if model is None:
            return NO_COMPARISON, []
        try:
            return comparison(shipped, trained_source(model), kind_name)
        except ValueError as error:
            return f"The test images are not available: {error}", []

    def follow_model(choice_value, true_value, predicted_value, order_value, model):
        """A newly chosen trained model replaces the old one's views, if they are showing
        (`when=showing_trained` below)."""
        return switch_model(choice_value, true_value, predicted_value, order_value, model)[1:]

    def showing_trained(choice_value, *inputs):
        return choice_value == TRAINED

    # The gallery page goes last: a model switch that ends after a newer filter, cell or page
    # event of the same page started (the views run side by side, and the first use of a
    # trained model loads the test set) still draws the model's overview and closes the
    # opened image, but leaves the page to the newer event, which drew it for the same model
    # with the newer filters (newest_view). Filter and page events that end late change nothing.
    opened_views = [opened, opened_label, opened_line, opened_heatmap, opened_index]
    model_views = [summary, per_class, per_class_chart, confusion, grid, *opened_views, *page_outputs]
    kept = len(model_views) - len(page_outputs)
    choice.input(newest.only(switch_model, keep=1 + kept), inputs=[*filters, trained_model],
                 outputs=[choice, *model_views], api_visibility="private", concurrency_id=MODEL_VIEWS,
                 concurrency_limit=1)
    trained_model.change(newest.only(follow_model, when=showing_trained, keep=kept), inputs=[*filters, trained_model],
                         outputs=model_views, api_visibility="private", concurrency_id=MODEL_VIEWS, concurrency_limit=1)
    for control in (true_class, predicted_class, order):
        control.input(newest.only(refresh), inputs=[*filters, trained_model], outputs=page_outputs,
                      api_visibility="private")
    confusion.select(newest.only(pick_cell), inputs=[choice, order, trained_model],
                     outputs=[true_class, predicted_class, *page_outputs], api_visibility="private")
    previous_page.click(newest.only(turn(-1)), inputs=[*filters, trained_model, page], outputs=page_outputs,
                        api_visibility="private")
    next_page.click(newest.only(turn(+1)), inputs=[*filters, trained_model, page], outputs=page_outputs,
                    api_visibility="private")
    opening = gallery.select(open_image, inputs=[choice, trained_model, shown, opened_class, opened_opacity],
                             outputs=opened_views, api_visibility="private")
    if shared_input is not None:
        opening.success(lambda choice_value, model, index: test_image_input(source_for(choice_value, model), index),
                        inputs=[choice, trained_model, opened_index], outputs=shared_input, api_visibility="private",
                        show_progress="hidden")
    for trigger in (opened_class.change, opened_opacity.release):
        trigger(explain_opened, inputs=[choice, trained_model, opened_index, opened_class, opened_opacity],
                outputs=opened_heatmap, api_visibility="private", show_progress="hidden")
    for trigger in (trained_model.change, change_kind.input):
        trigger(compare_models, inputs=[trained_model, change_kind], outputs=[change_summary, change_gallery],
                api_visibility="private")
    return FirstView(tab, [per_class_chart, grid], lambda: overview_figures(shipped),
                     concurrency_id=MODEL_VIEWS, concurrency_limit=1)
