"""Inference latency and throughput, side by side in one run.

    python -m bench.inference [--weights PATH] [--repeats 200]

Prints p50/p90 latency of Predictor.classify on one 32x32 image, with and without
horizontal-flip test-time augmentation, against plain `model.predict` on the same
image, and predict_proba throughput on the official test set (10,000 images; random
images of the same shape when CIFAR-10 is absent).
"""

import argparse
import time

import numpy as np

from bench.results import record
from bench.timing import percentiles, time_calls
from cifar_demo import Predictor
from cifar_demo.data import load_cifar10


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights to load (default: shipped)")
    parser.add_argument("--repeats", type=int, default=200, help="calls timed per method")
    args = parser.parse_args()

    predictor = Predictor.load(args.weights)
    try:
        data = load_cifar10()
        images, source = data.x_test, "official test set"
    except ValueError:
        images = np.random.default_rng(0).integers(0, 256, size=(10000, 32, 32, 3), dtype=np.uint8)
        source = "random images (CIFAR-10 not available)"
    one = images[0]
    batch_of_one = one[None].astype("float32")

    predictor.classify(one)
    predictor.classify(one, tta=True)
    predictor.model.predict(batch_of_one, verbose=0)  # every path warmed up before timing
    classify_p50, classify_p90 = percentiles(time_calls(lambda: predictor.classify(one), args.repeats))
    tta_p50, tta_p90 = percentiles(time_calls(lambda: predictor.classify(one, tta=True), args.repeats))
    predict_p50, predict_p90 = percentiles(
        time_calls(lambda: predictor.model.predict(batch_of_one, verbose=0), max(20, args.repeats // 4))
    )
    start = time.perf_counter()
    predictor.predict_proba(images)
    seconds = time.perf_counter() - start

    print(f"one 32x32 image, {args.repeats} calls each (ms):")
    print(f"  {'method':<28}{'p50':>8}{'p90':>8}")
    print(f"  {'Predictor.classify':<28}{classify_p50:8.2f}{classify_p90:8.2f}")
    print(f"  {'Predictor.classify, flip TTA':<28}{tta_p50:8.2f}{tta_p90:8.2f}")
    print(f"  {'model.predict':<28}{predict_p50:8.2f}{predict_p90:8.2f}")
    print(f"  speed-up at p50: {predict_p50 / classify_p50:.1f}x")
    print(f"predict_proba on {len(images)} images ({source}): {seconds:.1f} s, {len(images) / seconds:.0f} images/s")
    record("inference", {
        "Predictor.classify, one 32x32 image, p50": (classify_p50, "ms"),
        "Predictor.classify, one 32x32 image, p90": (classify_p90, "ms"),
        "the same with flip TTA (tta=True), p50": (tta_p50, "ms"),
        "the same with flip TTA (tta=True), p90": (tta_p90, "ms"),
        "model.predict, same image, p50": (predict_p50, "ms"),
        "model.predict, same image, p90": (predict_p90, "ms"),
        f"predict_proba, {len(images):,} images ({source})": (seconds, "s"),
        "predict_proba throughput": (len(images) / seconds, "images/s"),
    })

if __name__ == "__main__":
    main()
