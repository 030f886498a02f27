"""Classify tab: upload a photo or draw one, see the top-5 classes and the 32x32 the model saw."""

from pathlib import Path

import gradio as gr
import numpy as np

from cifar_demo import CLASSES, describe, images
from cifar_demo.artifacts import EXAMPLES_DIR, without_server_paths
from cifar_demo.drawing_style import BRUSH_SIZE, CANVAS_SIZE, PALETTE
from cifar_demo.ood import TrainingBank
from cifar_demo.ui import camera, explain_views
from cifar_demo.ui.current_input import current_input
from cifar_demo.ui.explain_views import DEFAULT_OPACITY, EXPLAIN_LABEL, NEIGHBOURS_LABEL, TOP_CLASS
from cifar_demo.ui.first_view import Deferred
from cifar_demo.ui.internals import DrawingCanvas, ShownGallery, ShownImage, ShownLabel, UploadedImage

SEEN_SCALE = 8              # the 32x32 input is shown at 256x256
SHIPPED_LABEL = "What the shipped model thinks (top 5)"
GUESS_LABEL = "The shipped model's forced guess among the ten classes (top 5)"
INPUT_FROM_UPLOAD = "your image from the Classify tab"
INPUT_FROM_DRAWING = "your drawing from the Classify tab"
DRAW_HINT = "*Draw something on the canvas: the model answers as you draw.*"
SELECT_BRUSH_JS = """() => {
  let tries = 0;
  const pick = () => {
    const brush = document.querySelector('#drawing button[aria-label="Brush"]');
    if (brush) brush.click();
    else if (++tries < 50) setTimeout(pick, 100);
  };
  setTimeout(pick, 50);
}"""


def example_paths():
    """The shipped example images (real CIFAR-10 test images), sorted by file name."""
    return sorted(str(path) for path in Path(EXAMPLES_DIR).glob("*.png"))


def tta_label(metrics):
    """The toggle's label, with the effect measured on the test set (None: no measurement)."""
    base = "Test-time augmentation: also look at the mirror image and average (twice the compute)"
    if not metrics or "tta_accuracy" not in metrics:
        return base
    gain = (metrics["tta_accuracy"] - metrics["accuracy"]) * 100
    return f"{base}; on the test set {metrics['accuracy']:.2%} → {metrics['tta_accuracy']:.2%} ({gain:+.2f} points)"


def tta_flag(value):
    """The TTA toggle's value as a bool; None (left out of an API call) is off. Anything else,
    such as the string "false" (truthy in Python), is refused rather than guessed at."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise gr.Error(f"tta must be true or false, got {value!r}.", title="Cannot read this request")


def build(predictor, trained_model, detector, metrics=None, shared_input=None):
    """Lays out the tab and wires its events; `predictor` answers every request, `detector`
    (an ood.OodDetector for it) says when an input is unlike CIFAR-10, and the session's
    `trained_model` state (a session.TrainedModel, once the person chose to use one)
    answers beside it. `metrics` (the shipped metrics file) states the TTA effect. Every
    new 32x32 input also goes to `shared_input`, the session's current_input.CurrentInput
    gr.State, when given."""

    def model_input_or_error(source):
        try:
            return images.to_model_input(source)
        except ValueError as error:
            raise gr.Error(str(error), title="Cannot read this image") from None

    def classify(image_path, tta=False):
        """Class probabilities for an uploaded image (the /classify API endpoint; `tta`
        averages with the mirror image), and the 32x32 input kept in session state (not
        part of the API) for the enlarged view and the explanation."""
        if image_path is None:  # the image was cleared
            return None, None
        pixels = model_input_or_error(image_path)
        return predictor.label(pixels, tta=tta_flag(tta)), pixels

    def relabel(pixels, tta):
        """The shipped model's answer again when the TTA toggle changes."""
        return None if pixels is None else predictor.label(pixels, tta=tta_flag(tta))

    def enlarge(pixels):
        """The 32x32 input enlarged, with its alt text."""
        if pixels is None:
            return None
        return gr.update(value=images.upscale_nearest(pixels, SEEN_SCALE), alt_text=describe.model_input(pixels))

    def classify_drawing(sketch, tta=False):
        """Class probabilities for the canvas, the enlarged 32x32 input, and a hint when blank;
        the 32x32 input also goes to session state (not part of the API) for the comparison."""
        composite = None if sketch is None else sketch.get("composite")
        parts = [] if sketch is None else [sketch.get("background"), *(sketch.get("layers") or ())]
        if composite is None and any(part is not None for part in parts):
            raise gr.Error("The drawing has layers but no composite (the flattened picture, which is what gets "
                           "classified): send it as 'composite'.", title="Cannot read this drawing")
        if composite is None or images.is_blank(composite):
            return None, None, DRAW_HINT, None
        pixels = model_input_or_error(composite)
        return predictor.label(pixels, tta=tta_flag(tta)), enlarge(pixels), "", pixels

    def compare(pixels, model, tta):
        """The session's own model's answer for the same 32x32 input, when it has one in use."""
        if model is None:
            return gr.update(visible=False, value=None)
        answer = None if pixels is None else model.predictor.label(pixels, tta=tta_flag(tta))
        return gr.update(visible=True, value=answer, label=f"Your trained model ({model.summary})")

    def explain(pixels, choice, opacity, tta):
        """The Grad-CAM overlay for the chosen class (or the top one) and the verdict on
        whether the input looks like CIFAR-10 at all."""
        if pixels is None:
            return gr.update(value=None, label=EXPLAIN_LABEL), "", gr.update(label=SHIPPED_LABEL)
        probabilities = predictor.predict_proba(pixels[None], tta=tta_flag(tta))[0]
        overlay, caption = explain_views.explanation(predictor, pixels, probabilities, choice, opacity, SEEN_SCALE)
        assessment = detector.assess(pixels)
        return (gr.update(value=overlay, label=caption, alt_text=caption),
                explain_views.ood_notice_html(assessment),
                gr.update(label=GUESS_LABEL if assessment["out_of_distribution"] else SHIPPED_LABEL))

    # The shipped nearest-neighbour images, read once by the first request that needs them
    # (concurrent ones wait for it; a missing file is tried again by the next).
    training_bank = Deferred(lambda: TrainingBank.load(detector=detector))

    def neighbours(pixels):
        """The training images nearest to the 32x32 input, with their labels: evidence by example."""
        if pixels is None:
            return gr.update(value=None, label=NEIGHBOURS_LABEL)
        try:
            gallery = explain_views.nearest_training_images(detector, training_bank.get(), pixels)
        except ValueError as error:
            return gr.update(value=None,
                             label=f"The nearest training images cannot be shown: {without_server_paths(error)}")
        return gr.update(value=gallery, label=NEIGHBOURS_LABEL)

    gr.Markdown(
        "Upload a photo, draw a picture or use your camera. The model only ever sees a **32x32** image, "
        "the centre square of yours shrunk down, shown below the prediction."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            with gr.Tabs(overflow_behavior="wrap"):
                with gr.Tab("Upload", id="upload"):
                    upload = UploadedImage(
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard"],
                        label="Your image",
                        elem_classes=["pixelated", "fill-image"],
                        height=340,
                    )
                    examples = example_paths()
                    if examples:
                        gr.Examples(examples=examples, inputs=upload, label="CIFAR-10 test images: click one")
                with gr.Tab("Draw", id="draw") as draw_tab:
                    sketch = DrawingCanvas(
                        image_mode="RGB",
                        type="numpy",
                        canvas_size=(CANVAS_SIZE, CANVAS_SIZE),
                        fixed_canvas=True,
                        brush=gr.Brush(default_size=BRUSH_SIZE, colors=list(PALETTE), default_color="#000000",
                                       color_mode="defaults"),
                        layers=False,
                        elem_id="drawing",
                        label="Draw a picture (use the trash icon to clear)",
                    )
                    draw_hint = gr.Markdown(DRAW_HINT)
                snapshot, _ = camera.build(predictor)
        with gr.Column(scale=1):
            ood_notice = gr.HTML("", elem_id="ood-notice")
            label = gr.Label(num_top_classes=5, label=SHIPPED_LABEL, elem_id="shipped-label")
            trained_label = ShownLabel(num_top_classes=5, visible=False, elem_id="trained-label")
            tta = gr.Checkbox(False, label=tta_label(metrics), elem_id="tta")
            with gr.Row(equal_height=False):
                seen = gr.Image(
                    label="What the model sees (32x32, enlarged)",
                    interactive=False,
                    height=272,
                    format="png",
                    elem_classes=["pixelated"],
                    elem_id="seen",
                    buttons=[],
                )
                heatmap = ShownImage(label=EXPLAIN_LABEL, interactive=False, height=272, format="png",
                                   elem_id="heatmap", buttons=[])
            with gr.Row():
                explain_class = gr.Dropdown([TOP_CLASS, *CLASSES], value=TOP_CLASS,
                                            label="Explain which class? (why not cat?)", elem_id="explain-class")
                opacity = gr.Slider(0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label="Heatmap opacity")
            nearest = ShownGallery([], columns=8, format="png", height="auto", allow_preview=False,
                                   elem_id="neighbours", buttons=[], label=NEIGHBOURS_LABEL)

    # The canvas opens with no tool selected; pick the brush so a person can draw at once.
    draw_tab.select(None, js=SELECT_BRUSH_JS)
    model_input = gr.State()
    # A camera snapshot is an upload taken by the camera: the same handler, the same views.
    answered = []
    for image, api_name, source in ((upload, "classify", INPUT_FROM_UPLOAD),
                                    (snapshot, "classify_snapshot", camera.INPUT_FROM_CAMERA)):
        classified = image.change(classify, inputs=[image, tta], outputs=[label, model_input], api_name=api_name)
        classified.success(enlarge, inputs=model_input, outputs=seen, api_visibility="private", show_progress="hidden")
        # A refused upload must not leave the previous image's answer on screen.
        classified.failure(lambda: (None, None, None), outputs=[label, seen, model_input], api_visibility="private")
        answered.append((classified, source))
    drawn = sketch.change(
        classify_drawing,
        inputs=[sketch, tta],
        outputs=[label, seen, draw_hint, model_input],
        api_name="classify_drawing",
        trigger_mode="always_last",
        show_progress="hidden",
    )
    # Whatever changed the 32x32 input (upload, drawing, a refused file) or the model in
    # use, the session's own model answers again beside the shipped one.
    for trigger in (model_input.change, trained_model.change, tta.change):
        trigger(compare, inputs=[model_input, trained_model, tta], outputs=trained_label,
                api_visibility="private", show_progress="hidden")
    tta.change(relabel, inputs=[model_input, tta], outputs=label, api_visibility="private", show_progress="hidden")
    if shared_input is not None:
        for event, source in (*answered, (drawn, INPUT_FROM_DRAWING)):
            event.success(lambda pixels, source=source: current_input(pixels, source), inputs=model_input,
                             outputs=shared_input, api_visibility="private", show_progress="hidden")
    model_input.change(neighbours, inputs=model_input, outputs=nearest, api_visibility="private",
                       show_progress="hidden")
    for trigger in (model_input.change, explain_class.change, opacity.release, tta.change):
        trigger(explain, inputs=[model_input, explain_class, opacity, tta], outputs=[heatmap, ood_notice, label],
                api_visibility="private", show_progress="hidden")
