"""Grad-CAM latency, and which layer gives the most useful map.

    python -m bench.gradcam [--weights PATH] [--repeats 100]
    CIFAR10_PATH=.../cifar10.npz python -m bench.gradcam --compare-layers [--images 300]

Prints p50/p90 latency of Predictor.explain on one image in-process (a CIFAR-10 test
image as 32x32 model input, and the same enlarged to a 640x480 and a 12 MP photo),
after warm-up, beside classify on the same image. The goal is at most 100 ms.

--compare-layers pastes CIFAR-10 test images at a random place on a grey canvas twice
their size (the model sees each at half size, a quarter of its input) and, for each
candidate layer, prints where the map of the true class lies: its share of the map's
mass inside the pasted square (a quarter would be chance), how often its peak falls
inside (the pointing game). Only images the model still classifies right on the canvas
count. Without CIFAR-10 it uses the test images
shipped in weights/test_predictions.npz.
"""

import argparse

import numpy as np
from PIL import Image

from bench.results import record
from bench.timing import percentiles, time_calls
from cifar_demo import CLASSES, Predictor
from cifar_demo.artifacts import SHIPPED_TEST_PREDICTIONS
from cifar_demo.data import load_cifar10
from cifar_demo.predictions import PredictionSet

CANDIDATE_LAYERS = ("stage3_conv3_relu", "stage3_conv1_relu", "stage2_conv3_relu", "stage2_conv1_relu")
CANVAS_SIDE = 64    # pixels: twice a CIFAR-10 image
GREY = 128


def test_images():
    """(images, labels) of the official test set, or the shipped subset without it."""

    try:
        data = load_cifar10()
        return data.x_test, data.y_test, "official test set"
    except ValueError:
        return shipped_test_images()


def shipped_test_images():
    """(images, labels) of the test images whose pixels weights/test_predictions.npz keeps."""
    shipped = PredictionSet.load(SHIPPED_TEST_PREDICTIONS)
    return shipped.images, shipped.labels[shipped.image_indices], "test images shipped in weights/"


def pasted(image, rng):
    """`image` on a grey CANVAS_SIDE square at a random place, and that place's (top, left)."""
    canvas = np.full((CANVAS_SIDE, CANVAS_SIDE, 3), GREY, dtype=np.uint8)
    top, left = rng.integers(0, CANVAS_SIDE - 32 + 1, size=2)
    canvas[top : top + 32, left : left + 32] = image
    return canvas, (top, left)


def compare_layers(predictor, count):
    images, labels, source = test_images()
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(images), size=min(count, len(images)), replace=False)
    canvases, boxes, kept = [], [], []
    for index in chosen:
        canvas, box = pasted(images[index], rng)
        probabilities = predictor.classify(canvas)
        ranked = sorted(probabilities, key=probabilities.get, reverse=True)
        if ranked[0] == CLASSES[int(labels[index])]:
            canvases.append(canvas)
            boxes.append(box)
            kept.append(ranked[0])
    print(f"{len(kept)} of {len(chosen)} images from the {source} still classified right on a grey "
          f"{CANVAS_SIDE}x{CANVAS_SIDE} canvas")
    print(f"  {'layer':<20}{'grid':>6}{'mass inside':>13}{'peak inside':>13}")
    figures = {"images still classified right on the canvas": (len(kept), f"of {len(chosen)} from the {source}")}
    for layer in CANDIDATE_LAYERS:
        explainer = Predictor(predictor.model, predictor.temperature, explain_layer=layer)
        grid = predictor.model.get_layer(layer).output.shape[1]
        mass, peak = [], []
        for canvas, (top, left), name in zip(canvases, boxes, kept, strict=True):
            heatmap = explainer.explain(canvas, name)
            inside = heatmap[top : top + 32, left : left + 32]
            mass.append(inside.sum() / max(heatmap.sum(), 1e-12))
            peak.append(inside.max() == heatmap.max())
        print(f"  {layer:<20}{grid:>4}px{np.mean(mass) * 100:>12.1f}%{np.mean(peak) * 100:>12.1f}%")
        figures[f"{layer} ({grid}x{grid}): map mass on the object"] = (np.mean(mass) * 100, "%")
        figures[f"{layer} ({grid}x{grid}): peak on the object"] = (np.mean(peak) * 100, "%")
    record("gradcam_layers", figures, notes=f"chance is 25% mass; {CANVAS_SIDE}x{CANVAS_SIDE} grey canvas")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights to load (default: shipped)")
    parser.add_argument("--repeats", type=int, default=100, help="calls timed per case")
    parser.add_argument("--compare-layers", action="store_true", help="compare candidate layers instead of timing")
    parser.add_argument("--images", type=int, default=300, help="test images pasted for --compare-layers")
    args = parser.parse_args()

    predictor = Predictor.load(args.weights)
    if args.compare_layers:
        compare_layers(predictor, args.images)
        return
    images, _, _ = test_images()
    one = images[0]
    photo = np.asarray(Image.fromarray(one).resize((640, 480), Image.Resampling.BICUBIC))
    large = np.asarray(Image.fromarray(one).resize((4000, 3000), Image.Resampling.BICUBIC))  # a 12 MP camera photo
    cases = {
        "explain_pixels, 32x32 input": lambda: predictor.explain_pixels(one),
        "explain, 32x32 image": lambda: predictor.explain(one),
        "explain, 640x480 photo": lambda: predictor.explain(photo),
        "explain, 640x480, 'cat'": lambda: predictor.explain(photo, "cat"),
        "classify, 640x480 (reference)": lambda: predictor.classify(photo),
        "explain, 4000x3000 photo": lambda: predictor.explain(large),
        "classify, 4000x3000 (reference)": lambda: predictor.classify(large),
    }
    print(f"Grad-CAM at {predictor.explain_layer}, one image, {args.repeats} calls each after warm-up (ms):")
    print(f"  {'case':<32}{'p50':>8}{'p90':>8}")
    figures = {}
    for name, call in cases.items():
        for _ in range(3):
            call()  # compiles the backend's functions and warms caches
        p50, p90 = percentiles(time_calls(call, args.repeats))
        print(f"  {name:<32}{p50:8.2f}{p90:8.2f}")
        figures[f"{name}, p50"] = (p50, "ms")
        figures[f"{name}, p90"] = (p90, "ms")
    record("gradcam", figures, notes=f"Grad-CAM at {predictor.explain_layer}; goal 100 ms")


if __name__ == "__main__":
    main()
