"""What a training run costs by width and batch size: the basis of the Train tab's cap on
a run's work (cifar_demo/ui/training_runs.py, run_cost).

    python -m bench.run_cost [--images 640] [--rounds 2]

Trains the recipe's compiled model (training.build_training_model, in the precision the
presets use here) with train_on_batch on random batches, for every width x batch size in
the grid, rounds alternating so that drift in the machine's speed hits all alike. Prints
images/second and each cell's cost per image relative to the full-width batch-128 model,
beside what the cap's cost model (training_runs.image_cost) assumes for it.
"""

import argparse
import itertools
import statistics
import time

import numpy as np

from bench.results import record
from cifar_demo.training import TrainConfig, build_training_model, fastest_precision
from cifar_demo.ui.training_runs import image_cost

WIDTHS = (0.125, 0.25, 0.5, 1.0)
BATCH_SIZES = (16, 128)


def images_per_second(model, batch_size, images, rng):
    x = rng.integers(0, 256, (batch_size, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, batch_size)]
    for _ in range(2):  # warm-up: tracing and the first allocations
        model.train_on_batch(x, y)
    steps = max(1, images // batch_size)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=640, help="images timed per cell and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    precision = fastest_precision("cpu")
    rng = np.random.default_rng(0)
    grid = list(itertools.product(WIDTHS, BATCH_SIZES))
    models = {(width, batch): build_training_model(TrainConfig(width_mult=width, batch_size=batch,
                                                               precision=precision), 1000)
              for width, batch in grid}
    rates = {cell: [] for cell in grid}
    for round_index in range(args.rounds):
        for cell in grid:
            rates[cell].append(images_per_second(models[cell], cell[1], args.images, rng))
            print(f"round {round_index + 1}: width {cell[0]:g}, batch {cell[1]}: {rates[cell][-1]:.1f} images/s",
                  flush=True)
    reference = statistics.median(rates[(1.0, 128)])
    figures = {}
    print(f"\n{precision}; cost per image relative to width 1, batch 128 (measured / cap's model):")
    for cell in grid:
        rate = statistics.median(rates[cell])
        measured = reference / rate
        print(f"width {cell[0]:<5g} batch {cell[1]:<4} {rate:8.1f} images/s  cost {measured:5.2f} / "
              f"{image_cost(*cell):5.2f}")
        figures[f"{precision}: width {cell[0]:g}, batch {cell[1]}"] = (rate, "images/s")
        figures[f"relative cost, width {cell[0]:g}, batch {cell[1]} (cap's model {image_cost(*cell):.2f})"] = (
            measured, "x")
    record("run_cost", figures, notes=f"{args.images} images per cell and round, {args.rounds} rounds, median")


if __name__ == "__main__":
    main()
