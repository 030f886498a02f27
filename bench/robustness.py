"""The Robustness tab's live update and the `evaluate --corruptions` run, timed.

    CIFAR10_PATH=.../cifar10.npz python -m bench.robustness [--images 1000] [--repeats 30]

Live: one 32x32 test image through each corruption (severity 3) and everything the tab
updates (predict_proba, Grad-CAM, the out-of-distribution verdict), p50/p90 per
corruption after warm-up (goal: 150 ms p50); beside it the same without the corruption,
and the adversarial searches on one image (FGSM and PGD over epsilon 1-8).
Evaluation: cifar_demo.robustness.corruption_accuracy on the first --images test images
(all corruptions x 5 severities, the CLI's code path), extrapolated linearly to the
10,000 test images (goal: 15 minutes), and the share of it the corruptions take alone;
in float32 (the figures of record) and, side by side, in mixed_bfloat16.
Without CIFAR-10 the images are the shipped test images (weights/test_predictions.npz).
"""

import argparse
import time

import numpy as np

from bench.gradcam import test_images
from bench.results import record
from bench.timing import percentiles, time_calls
from cifar_demo import Predictor
from cifar_demo.adversarial import smallest_flipping_epsilon
from cifar_demo.corruptions import CORRUPTIONS, SEVERITIES
from cifar_demo.ood import OodDetector
from cifar_demo.robustness import corruption_accuracy

FULL_TEST_SET = 10_000
GOAL_MINUTES = 15
LIVE_SEVERITY = 3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights to load (default: shipped)")
    parser.add_argument("--images", type=int, default=1000, help="test images the timed evaluation covers")
    parser.add_argument("--repeats", type=int, default=30, help="live updates timed per corruption")
    args = parser.parse_args()

    predictor = Predictor.load(args.weights)
    detector = OodDetector.load(predictor)
    images, labels, source = test_images()
    one = images[0]
    rng = np.random.default_rng(0)

    def live(corrupt):
        pixels = corrupt(one[None], LIVE_SEVERITY, rng)[0]
        predictor.predict_proba(pixels[None])
        predictor.explain_pixels(pixels)
        detector.assess(pixels)

    figures = {}
    print(f"live update, one image, severity {LIVE_SEVERITY}, {args.repeats} calls each (ms):")
    clean_p50, clean_p90 = percentiles(time_calls(lambda: live(lambda batch, severity, rng: batch), args.repeats))
    print(f"  {'no corruption':<16}{clean_p50:8.2f}{clean_p90:8.2f}")
    figures["live update without corruption (predict, Grad-CAM, OOD), p50"] = (clean_p50, "ms")
    worst = 0.0
    for name, corrupt in CORRUPTIONS.items():
        live(corrupt)  # warm-up
        p50, p90 = percentiles(time_calls(lambda corrupt=corrupt: live(corrupt), args.repeats))
        worst = max(worst, p50)
        print(f"  {name:<16}{p50:8.2f}{p90:8.2f}")
        figures[f"live update, {name}, p50"] = (p50, "ms")
    figures["live update, slowest corruption's p50"] = (worst, "ms")

    for method in ("fgsm", "pgd"):
        smallest_flipping_epsilon(predictor, one, method)  # warm-up
        seconds = np.median(time_calls(lambda method=method: smallest_flipping_epsilon(predictor, one, method), 3))
        print(f"smallest flipping epsilon by {method}, one image: {seconds * 1000:.0f} ms")
        figures[f"smallest flipping epsilon by {method} (epsilon 1-8 in one batch), one image"] = (
            seconds * 1000, "ms")

    count = min(args.images, len(images))
    subset, subset_labels = images[:count], labels[:count]
    start = time.perf_counter()
    for corrupt in CORRUPTIONS.values():
        for severity in SEVERITIES:
            corrupt(subset, severity, np.random.default_rng(severity))
    corrupting = time.perf_counter() - start
    passes = len(CORRUPTIONS) * len(SEVERITIES) + 1
    for precision in ("float32", "mixed_bfloat16"):
        scorer = predictor if precision == "float32" else Predictor.load(args.weights, precision=precision)
        start = time.perf_counter()
        report = corruption_accuracy(scorer, subset, subset_labels)
        seconds = time.perf_counter() - start
        full_minutes = seconds * FULL_TEST_SET / count / 60
        print(f"{precision}: evaluation on {count:,} images ({source}) x {len(CORRUPTIONS)} corruptions x "
              f"{len(SEVERITIES)} severities + clean: {seconds:.1f} s, {passes * count / seconds:.0f} images/s; "
              f"mean corruption accuracy {report['mean_corruption_accuracy'] * 100:.2f}% "
              f"(clean {report['clean_accuracy'] * 100:.2f}%)")
        print(f"  extrapolated to {FULL_TEST_SET:,} images: T({FULL_TEST_SET:,}) = T({count:,}) x {FULL_TEST_SET:,} / "
              f"{count:,} = {seconds:.1f} s x {FULL_TEST_SET / count:g} = {full_minutes:.1f} min "
              f"(goal {GOAL_MINUTES} min)")
        figures.update({
            f"{precision}: evaluation, {count:,} images x {len(CORRUPTIONS)} x {len(SEVERITIES)} + clean": (
                seconds, "s"),
            f"{precision}: evaluation throughput": (passes * count / seconds, "images/s"),
            f"{precision}: extrapolated to {FULL_TEST_SET:,} images (x {FULL_TEST_SET / count:g})": (
                full_minutes, "min"),
        })
    print(f"corrupting alone, {count:,} images x {passes - 1}: {corrupting:.1f} s")
    figures["of which corrupting alone (both precisions)"] = (corrupting, "s")
    record("robustness", figures, notes=f"live path in float32; images: {source}; shared 2-core machine, "
           "other sessions' work may be running")


if __name__ == "__main__":
    main()
