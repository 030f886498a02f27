"""What the Classify, Mistakes and Robustness tabs show to explain an answer: a Grad-CAM overlay on the
enlarged 32x32 input, the out-of-distribution or drawing verdict, and the training images
nearest to the input. No Gradio here."""

import html

import numpy as np

from cifar_demo import CLASSES, describe, images

TOP_CLASS = "the top class"     # the explain-class choice that follows the prediction
DEFAULT_OPACITY = 0.5
EXPLAIN_LABEL = "Why this class? (Grad-CAM)"
NEIGHBOURS_LABEL = "The training images nearest to it, as the network sees them"
NEIGHBOUR_SCALE = 3             # the 32x32 training images are shown at 96x96


def explained_class(choice, probabilities):
    """The class index to explain: the chosen class, or the most probable one."""
    if choice in (None, TOP_CLASS):
        return int(np.argmax(probabilities))
    return CLASSES.index(choice)


def explanation(predictor, pixels, probabilities, choice, opacity, scale):
    """The Grad-CAM overlay for the chosen class (the most probable one by default) and its
    caption: the 32x32 input enlarged `scale` times with crisp pixels, under the map
    interpolated once to that size, blended at `opacity`. The caption says in words where the
    map is strongest, so it serves as the overlay's alt text too."""
    class_index = explained_class(choice, probabilities)
    side = pixels.shape[0] * scale
    heatmap = predictor.explain_pixels(pixels, class_index, side=side)
    overlay = images.overlay_heatmap(images.upscale_nearest(pixels, scale), heatmap, float(opacity))
    caption = (f"Why {CLASSES[class_index]} ({probabilities[class_index]:.0%})? Red marks where the evidence for it "
               f"lies (Grad-CAM on the last convolution): {describe.where_strongest(heatmap)}.")
    return overlay, caption


def ood_notice_html(assessment):
    """A banner for inputs unlike CIFAR-10, a milder one for drawings (the model learned
    mostly from photos), a quiet line for the rest; all show the score."""
    if assessment.get("unavailable"):
        return ('<div class="ood-notice ood-flagged"><strong>The “none of these” check is unavailable.</strong> '
                f"{html.escape(assessment['unavailable'])}</div>")
    numbers = (f"out-of-distribution score {assessment['score']:.2f}, threshold {assessment['threshold']:.2f}; "
               "higher means less like the training photos")
    if assessment.get("looks_like_drawing"):
        return ('<div class="ood-notice ood-drawing"><strong>Looks like a drawing.</strong> The model learned from '
                "photos and from drawing-like versions of them, not from real drawings, so take its answer with a "
                "grain of salt."
                f'<div class="ood-numbers">{html.escape(numbers)}</div></div>')
    if assessment["out_of_distribution"]:
        return ('<div class="ood-notice ood-flagged"><strong>Probably none of these.</strong> This does not look '
                "like a CIFAR-10 photo, so the classes below are only the model's forced guess."
                f'<div class="ood-numbers">{html.escape(numbers)}</div></div>')
    return f'<div class="ood-notice ood-ok">Looks like a CIFAR-10 photo ({html.escape(numbers)}).</div>'


def nearest_training_images(detector, bank, pixels, count=None):
    """[(enlarged training image, caption)] of the training images of `bank` (an
    ood.TrainingBank) nearest to the uint8 (32, 32, 3) `pixels` in the detector's kNN
    feature space, nearest first; the caption is the true label and the distance."""
    positions, distances = detector.nearest(pixels, count) if count else detector.nearest(pixels)
    return [(images.upscale_nearest(bank.images[position], NEIGHBOUR_SCALE),
             f"{CLASSES[int(bank.labels[position])]} ({distance:.2f})")
            for position, distance in zip(positions, distances, strict=True)]
