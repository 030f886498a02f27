"""The Train tab's Quick preset end to end on the real CIFAR-10, as the tab runs it.

    CIFAR10_PATH=../shared/data/cifar10/cifar10.npz python -m bench.quick_preset [--preset Quick]

Runs the preset through the same TrainingSlot the tab uses (training, per-epoch
validation, then the official 10,000 test images) and prints the wall time from start
to the final result, the training throughput and the test accuracy.
"""

import argparse
import statistics
import sys
import time

from bench.results import record
from cifar_demo import training
from cifar_demo.data import load_cifar10
from cifar_demo.ui.training_runs import RunFailed, RunFinished, TrainingSlot


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="Quick", choices=sorted(training.PRESETS))
    args = parser.parse_args()
    data = load_cifar10()
    config = training.preset(args.preset)
    print(f"{args.preset} preset:\n{config.to_json()}", flush=True)
    started = time.perf_counter()
    rates, epochs = [], []
    final = None
    for event in TrainingSlot().start(config, data, owner="bench").events():
        if isinstance(event, training.BatchEnded):
            rates.append(event.images_per_second)
        elif isinstance(event, training.EpochEnded):
            epochs.append(event)
            print(f"epoch {event.epoch}: {event.seconds:.1f} s, val accuracy {event.val_accuracy:.4f}", flush=True)
        elif isinstance(event, training.RunEnded):
            print(f"training done after {time.perf_counter() - started:.1f} s; testing", flush=True)
        elif isinstance(event, (RunFinished, RunFailed)):
            final = event
    wall = time.perf_counter() - started
    if isinstance(final, RunFailed):
        sys.exit(f"run failed: {final.message}")
    throughput = statistics.median(rates)
    accuracy = final.report["accuracy"]
    print(f"\n{args.preset}: {wall:.1f} s wall ({wall / 60:.1f} min) from start to test result; "
          f"median training throughput {throughput:.0f} images/s; "
          f"test accuracy {accuracy:.4f} on {final.report['images']:,} official test images")
    record(f"quick_preset ({args.preset})", {
        "start to test result": (wall, "s"),
        "median training throughput": (throughput, "images/s"),
        f"test accuracy on {final.report['images']:,} official test images": (accuracy * 100, "%"),
    }, notes=f"precision {config.precision}")

if __name__ == "__main__":
    main()
