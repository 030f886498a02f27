"""About the model: its layers, how it was trained, how good it is, and how far to trust it.

Everything comes from the files shipped beside the weights (model card, metrics, curves,
test predictions), so the tab shows what was measured, not what was hoped. Its figures,
and what needs the model itself (its layers, the out-of-distribution threshold), are
computed once after launch and sent when a page first opens the tab (first_view.FirstView):
the page config stays small and the model loads after the server answers.
"""

import json

import gradio as gr
import pandas as pd

from cifar_demo import plots
from cifar_demo.artifacts import (
    SHIPPED_CURVES,
    SHIPPED_MODEL_CARD,
    SHIPPED_WEIGHTS,
    config_path_for,
    corruptions_path_for,
)
from cifar_demo.metrics import apply_temperature
from cifar_demo.model import describe_layers
from cifar_demo.ood import TARGET_FLAG_RATE, describe_score
from cifar_demo.ui import robustness_views
from cifar_demo.ui.first_view import FirstView
from cifar_demo.ui.internals import ShownImage, ShownPlot

RECIPE_SECTION = "## How it was made"


def card_section(card_text, heading):
    """The model card's section under `heading`, up to the next section, without the heading."""
    start = card_text.find(heading)
    if start < 0:
        raise ValueError(f"the model card has no {heading!r} section")
    body = card_text[start + len(heading):]
    end = body.find("\n## ")
    return (body if end < 0 else body[:end]).strip()


def layer_frame(model):
    frame = pd.DataFrame(describe_layers(model))
    frame["parameters"] = [f"{count:,}" if count else "" for count in frame["parameters"]]
    return frame


def summary_markdown(metrics, predictor):
    return (
        f"**{metrics['accuracy']:.2%}** top-1 on the {metrics['images']:,} official test images "
        f"(**{metrics['tta_accuracy']:.2%}** averaging each image with its mirror: the Classify tab's "
        f"test-time augmentation), {predictor.model.count_params():,} parameters. The blog this model "
        "comes from reached 62% with the same layers."
    )


def calibration_markdown(metrics, held_out):
    """What the temperature did, from the metrics file; `held_out` images were fitted on."""
    temperature = metrics["temperature"]
    leaning = "underconfident" if temperature < 1 else "overconfident"
    if abs(temperature - 1) < 0.1:  # within a tenth of 1 the logits barely change
        direction = f"**nearly calibrated**, a little {leaning}"
    elif temperature < 1:
        direction = "**underconfident** (label smoothing, for one, trains a network to hold back)"
    else:
        direction = "**overconfident**"
    return (
        "A probability should mean what it says: of the images the model calls 80% sure, about 80% "
        f"should be right. The network alone is {direction}, "
        f"so its logits are divided by a temperature **T = {temperature:.3f}** fitted on {held_out:,} "
        "held-out training images. On the test set the expected calibration error (15 bins) falls from "
        f"**{metrics['ece_uncalibrated']:.2%} to {metrics['ece']:.2%}**, and the negative log-likelihood "
        f"goes from {metrics['nll_uncalibrated']:.4f} to {metrics['nll']:.4f}. "
        "Every probability the app shows is calibrated."
    )


def ood_markdown(detector, held_out):
    """How the "probably none of these" warning decides, and how often it fires, from what
    `python -m cifar_demo.ood --fit` measured (`held_out`: the images the threshold was set on)."""
    if detector.unavailable_reason:
        return f"The **“Probably none of these”** check is unavailable: {detector.unavailable_reason}"
    rates = detector.record.get("flag_rate", {})
    drawings = (detector.record.get("drawing") or {}).get("share called a drawing", {})
    per_set = detector.record.get("generated_per_set")
    rows = "\n".join(f"| {name} | {rate:.1%} | {drawings[name]:.1%} |" if name in drawings else
                     f"| {name} | {rate:.1%} | |" for name, rate in rates.items())
    table = f"\n\n| images | score over the threshold | called a drawing |\n|---|---|---|\n{rows}" if rows else ""
    return (
        "The Classify tab warns **“Probably none of these”** when an input looks unlike CIFAR-10, instead "
        "of asserting one of the ten classes. The score measures how unlike the training photos the network finds "
        f"the input ({describe_score(detector.score_name)}, `{detector.score_name}`"
        + ("; the mean over the input and its mirror image" if detector.views == 2 else "")
        + f"); above **{detector.threshold:.2f}** "
        f"the warning shows. The threshold flags {TARGET_FLAG_RATE:.0%} of {held_out:,} held-out CIFAR-10 training "
        "images, so a few real photos get the warning too"
        + (f"; the generated inputs below are {per_set:,} each." if per_set else ".") + table +
        "\n\nThe *photos* rows are real photos that Python packages ship (devsets/README.md: 19 of other things, "
        "5 close to a class such as a lion or a motorcycle, one cat), 6 crops each; *class drawings* are "
        "generated drawings of the ten classes. An input called a drawing gets the “looks like a drawing” notice "
        "instead of the warning, whatever its score. "
        "A real photo of something outside the ten classes may still pass."
    )


def reliability_figure(predictions, temperature):
    """Before/after diagrams from the shipped (calibrated) test probabilities: T = 1 is
    recovered by applying 1/T, since calibration only rescaled the logits."""
    raw = apply_temperature(predictions.probabilities, 1 / temperature)
    return plots.reliability_diagram(raw, predictions.labels, temperature,
                                     title="Calibration on the official test set")


def corruption_views(path):
    """The corruption section's text and table from the report at `path`; without a readable
    report, a message saying why and no table."""
    report, problem = robustness_views.read_report(path)
    if report is None:
        return problem, None
    return (robustness_views.report_summary(report) + " The Robustness tab shows what each does to one image.",
            robustness_views.report_frame(report))


def build(tab, predictor, detector, metrics, predictions):
    """Lays out `tab` for the shipped `predictor`, its OOD `detector`, its `metrics` (what
    `evaluate --json` measured), its test-set `predictions` (a PredictionSet) and the files
    beside them (the predictor and detector may be first_view.Lazy: nothing here reads them
    before the tab is first opened). Returns the FirstView that fills the tab."""
    held_out = json.loads(config_path_for(SHIPPED_WEIGHTS).read_text())["val_size"]
    card = SHIPPED_MODEL_CARD.read_text()

    summary = gr.Markdown(elem_id="about-summary")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            layers = gr.Dataframe(interactive=False, max_height=420, elem_id="layer-table",
                                  label="Architecture: the blog's nine convolutions (output shapes per image)")
        with gr.Column(scale=2):
            per_class = ShownPlot(show_label=False, format="png", elem_id="about-per-class")
    gr.Markdown("### How it was trained")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            gr.Markdown(card_section(card, RECIPE_SECTION))
        with gr.Column(scale=1):
            ShownImage(str(SHIPPED_CURVES), label="Training curves of the shipped weights' runs", interactive=False,
                       buttons=[], alt_text="Training curves of the shipped weights' five runs: loss falls and "
                       "accuracy rises over the first; each of the two fine-tunes that also show drawings starts with "
                       "a jump in training loss and a dip in validation accuracy, then recovers; the two short "
                       "finishes on plain labels (of the last, the seed-0 one of the three averaged) end with the "
                       "lowest loss and about 94% validation accuracy")
    gr.Markdown("### How far to trust its confidence")
    gr.Markdown(calibration_markdown(metrics, held_out))
    reliability = ShownPlot(show_label=False, format="png", elem_id="reliability-diagram")
    gr.Markdown("### When it says “probably none of these”")
    ood = gr.Markdown(elem_id="ood-about")
    gr.Markdown("### How it holds up under noise, blur, light and occlusion")
    corruption_summary = gr.Markdown(elem_id="corruption-about")
    corruption_table = gr.Dataframe(interactive=False, elem_id="corruption-table",
                                    label="Accuracy on the test images under each corruption, severity 1 (mild) to 5")

    def first_view():
        return (summary_markdown(metrics, predictor), layer_frame(predictor.model),
                plots.per_class_accuracy_figure(metrics["per_class_accuracy"], title="Test accuracy per class"),
                reliability_figure(predictions, metrics["temperature"]), ood_markdown(detector, held_out),
                *corruption_views(corruptions_path_for(SHIPPED_WEIGHTS)))

    return FirstView(tab, [summary, layers, per_class, reliability, ood, corruption_summary, corruption_table],
                     first_view)
