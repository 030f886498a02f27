"""Test-time augmentation on the official test set: which views are worth their cost.

    CIFAR10_PATH=.../cifar10.npz python -m bench.tta [--weights PATH] [--shift 2]

Runs the calibrated model on each view of the 10,000 test images once (the image, its
mirror, and the image moved by --shift pixels up, down, left and right with reflect
padding, as the training crops padded it, each also mirrored) and prints the accuracy of
averaging the probabilities of several view sets, with the number of network passes
each costs per image.
"""

import argparse
import time

import numpy as np

from bench.results import record
from cifar_demo import Predictor
from cifar_demo.data import load_cifar10


def shifted(images, rows, cols):
    """Images moved by (rows, cols) pixels, the uncovered border filled by reflection."""
    pad = max(abs(rows), abs(cols))
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    top, left = pad - rows, pad - cols
    return np.ascontiguousarray(padded[:, top : top + 32, left : left + 32])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights to load (default: shipped)")
    parser.add_argument("--shift", type=int, default=2, help="pixels each shifted view moves (default 2)")
    args = parser.parse_args()

    predictor = Predictor.load(args.weights)
    data = load_cifar10()
    offsets = [(0, 0), (-args.shift, 0), (args.shift, 0), (0, -args.shift), (0, args.shift)]
    views = {}
    start = time.perf_counter()
    for rows, cols in offsets:
        moved = shifted(data.x_test, rows, cols) if (rows, cols) != (0, 0) else data.x_test
        views[(rows, cols, False)] = predictor.predict_proba(moved)
        views[(rows, cols, True)] = predictor.predict_proba(np.ascontiguousarray(moved[:, :, ::-1]))
    seconds = time.perf_counter() - start

    def accuracy(keys):
        mean = np.mean([views[key] for key in keys], axis=0)
        return float(np.mean(np.argmax(mean, axis=1) == data.y_test)) * 100

    shifts_only = [(r, c, False) for r, c in offsets]
    candidates = {
        "single view": [(0, 0, False)],
        "flip": [(0, 0, False), (0, 0, True)],
        f"{args.shift} px shifts, no flip": shifts_only,
        f"flip + {args.shift} px shifts": list(views),
    }
    print(f"{len(data.y_test):,} test images, {len(views)} views in {seconds:.0f} s")
    print(f"  {'views averaged':<24}{'passes':>7}{'accuracy':>10}{'vs single':>11}")
    single = accuracy(candidates["single view"])
    figures = {}
    for name, keys in candidates.items():
        value = accuracy(keys)
        print(f"  {name:<24}{len(keys):>7}{value:>9.2f}%{value - single:>+10.2f}")
        figures[f"{name} ({len(keys)} passes)"] = (value, f"% of {len(data.y_test):,} test images")
    figures["all views"] = (seconds, "s")
    record("tta", figures)


if __name__ == "__main__":
    main()
