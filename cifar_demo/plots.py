"""Matplotlib figures. CLI: `python -m cifar_demo.plots --history H --out PNG` draws a run's curves."""

import argparse
import json

import matplotlib

matplotlib.use("Agg")  # no display on servers and Spaces
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(history, title="Training curves"):
    """Loss and accuracy per step (training, smoothed) and per epoch (validation)."""
    steps = history.get("steps", [])
    epochs = history.get("epochs", [])
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    if steps:
        step_index = np.array([s["step"] for s in steps])
        loss_axis.plot(step_index, smooth([s["loss"] for s in steps]), label="training (smoothed)", color="tab:blue")
        accuracy_axis.plot(step_index, smooth([s["accuracy"] for s in steps]), label="training (smoothed)", color="tab:blue")
    if epochs:
        epoch_steps = [e["step"] for e in epochs]
        loss_axis.plot(epoch_steps, [e["val_loss"] for e in epochs], "o-", label="validation", color="tab:orange")
        accuracy_axis.plot(epoch_steps, [e["val_accuracy"] for e in epochs], "o-", label="validation", color="tab:orange")
    loss_axis.set(xlabel="step", ylabel="cross-entropy", title="Loss")
    accuracy_axis.set(xlabel="step", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return figure


def smooth(values, weight=0.9):
    """Exponential moving average with bias correction, as TensorBoard draws noisy curves."""
    smoothed, average = [], 0.0
    for count, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**count))
    return np.array(smoothed)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cifar_demo.plots", description="Draw a training run's curves.")
    parser.add_argument("--history", required=True, help="history.json written by python -m cifar_demo.train")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", default="Training curves")
    args = parser.parse_args(argv)
    with open(args.history) as handle:
        figure = training_curves(json.load(handle), args.title)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
