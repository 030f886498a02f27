"""Keras backends side by side on this machine, in float32 and mixed_bfloat16 each:
Predictor.classify p50/p90 on a 32x32 image, predict_proba over the 10,000 test images,
Grad-CAM (explain_pixels) p50, and full-model training images/s (train_on_batch of the
recipe's compiled model, batch 128).

    python -m bench.backends [--backends tensorflow torch jax] [--repeats 100] [--train-steps 12]

A backend is chosen when Keras is imported, so each (backend, precision) pair runs in a
worker process of its own; the pairs run one after another, alternating backends, so a
drift in the host's speed hits all alike. Backends that are not installed are listed as
such. The test images are the real ones with CIFAR10_PATH, else random pixels (same cost).
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

from bench.results import record
from cifar_demo.runtime import BACKENDS  # backend -> (its package, its install line)

PRECISIONS = ("float32", "mixed_bfloat16")
BATCH_FOR_WARMUP = 256  # Predictor's batch: the 10k run then compiles nothing new


def worker(precision, repeats, train_steps):
    """Runs in a process whose KERAS_BACKEND is set; prints one JSON line of figures."""
    from bench.timing import percentiles, time_calls
    from cifar_demo import Predictor
    from cifar_demo.backend import BACKEND
    from cifar_demo.data import load_cifar10
    from cifar_demo.training import NUM_CLASSES, TrainConfig, build_training_model

    figures = {}
    start = time.perf_counter()
    predictor = Predictor.load(precision=precision)
    figures["load_seconds"] = time.perf_counter() - start
    if os.environ.get("CIFAR10_PATH"):
        test_images = load_cifar10().x_test
    else:
        test_images = np.random.default_rng(0).integers(0, 256, size=(10000, 32, 32, 3), dtype=np.uint8)
    image = test_images[0]
    predictor.classify(image)
    figures["classify_p50_ms"], figures["classify_p90_ms"] = percentiles(
        time_calls(lambda: predictor.classify(image), repeats))
    predictor.predict_proba(test_images[:BATCH_FOR_WARMUP])  # compile the full-batch shape
    predictor.predict_proba(test_images[-16:])                 # and the last partial batch
    start = time.perf_counter()
    predictor.predict_proba(test_images)
    figures["test_set_seconds"] = time.perf_counter() - start
    predictor.explain_pixels(image)
    figures["gradcam_p50_ms"], _ = percentiles(time_calls(lambda: predictor.explain_pixels(image), repeats))

    config = TrainConfig(precision=precision, batch_size=128)
    model = build_training_model(config, total_steps=1000)
    rng = np.random.default_rng(1)
    images = test_images[:128].astype("float32")
    targets = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, 128)]
    for _ in range(2):  # compile and warm up
        model.train_on_batch(images, targets)
    start = time.perf_counter()
    for _ in range(train_steps):
        model.train_on_batch(images, targets)
    figures["train_images_per_second"] = 128 * train_steps / (time.perf_counter() - start)
    figures["backend"] = BACKEND
    print("FIGURES " + json.dumps(figures), flush=True)


def run_worker(backend, precision, repeats, train_steps):
    environment = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, "-m", "bench.backends", "--worker", precision, "--repeats", str(repeats),
               "--train-steps", str(train_steps)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("FIGURES "):
            return json.loads(line[len("FIGURES "):])
    raise RuntimeError(f"{backend} {precision} failed:\n{done.stderr[-3000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--repeats", type=int, default=100, help="calls timed for each latency")
    parser.add_argument("--train-steps", type=int, default=12, help="timed training steps of 128 images")
    parser.add_argument("--worker", choices=PRECISIONS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.repeats, args.train_steps)
        return 0

    installed = [b for b in args.backends if importlib.util.find_spec(BACKENDS[b][0]) is not None]
    missing = sorted(set(args.backends) - set(installed))
    results = {}
    for precision in PRECISIONS:
        for backend in installed:
            print(f"{backend} {precision} ...", file=sys.stderr, flush=True)
            results[backend, precision] = run_worker(backend, precision, args.repeats, args.train_steps)

    header = (f"{'backend':<11}{'precision':<16}{'classify p50':>13}{'p90':>8}{'10k test s':>12}{'Grad-CAM p50':>14}"
              f"{'train img/s':>13}")
    print(header)
    figures = {}
    for (backend, precision), row in results.items():
        print(f"{backend:<11}{precision:<16}{row['classify_p50_ms']:>11.2f}ms{row['classify_p90_ms']:>6.2f}ms"
              f"{row['test_set_seconds']:>12.2f}{row['gradcam_p50_ms']:>12.2f}ms{row['train_images_per_second']:>13.1f}")
        prefix = f"{backend} {precision}"
        figures[f"{prefix}: classify p50"] = (row["classify_p50_ms"], "ms")
        figures[f"{prefix}: classify p90"] = (row["classify_p90_ms"], "ms")
        figures[f"{prefix}: predict_proba, 10,000 test images"] = (row["test_set_seconds"], "s")
        figures[f"{prefix}: Grad-CAM p50"] = (row["gradcam_p50_ms"], "ms")
        figures[f"{prefix}: training, full width, batch 128"] = (row["train_images_per_second"], "images/s")
    notes = "one worker process per backend and precision, run one after another"
    if missing:
        notes += f"; not installed: {', '.join(missing)}"
    record("backends", figures, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
