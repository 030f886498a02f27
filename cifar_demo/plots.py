"""Matplotlib figures. CLI: `python -m cifar_demo.plots --history H --out PNG` draws a run's curves.

Figures are built as `matplotlib.figure.Figure` objects, never through pyplot: pyplot
keeps every figure in a global registry (a leak in a server that draws one per
request) and is not safe to use from the app's worker threads.
"""

import argparse
import json

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from cifar_demo import CLASSES
from cifar_demo.metrics import apply_temperature, expected_calibration_error, reliability_bins


def training_curves(history, title="Training curves"):
    """Loss and accuracy per step (training, smoothed) and per epoch (validation)."""
    steps = history.get("steps", [])
    epochs = history.get("epochs", [])
    figure = Figure(figsize=(11, 4), layout="constrained")
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    if steps:
        step_index = np.array([s["step"] for s in steps])
        loss_axis.plot(step_index, smooth([s["loss"] for s in steps]), label="training (smoothed)", color="tab:blue")
        accuracy_axis.plot(step_index, smooth([s["accuracy"] for s in steps]), label="training (smoothed)",
                           color="tab:blue")
    if epochs:
        epoch_steps = [e["step"] for e in epochs]
        loss_axis.plot(epoch_steps, [e["val_loss"] for e in epochs], "o-", label="validation", color="tab:orange")
        accuracy_axis.plot(epoch_steps, [e["val_accuracy"] for e in epochs], "o-", label="validation",
                           color="tab:orange")
    loss_axis.set(xlabel="step", ylabel="cross-entropy", title="Loss")
    accuracy_axis.set(xlabel="step", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        if steps or epochs:
            axis.legend()
    figure.suptitle(title)
    return figure


def confusion_matrix_figure(confusion, title="Confusion matrix"):
    """The 10x10 counts, rows the true class and columns the prediction, each cell
    shaded by the share of its row so that mistakes stand out beside the diagonal."""
    confusion = np.asarray(confusion)
    shares = confusion / np.maximum(1, confusion.sum(axis=1, keepdims=True))
    figure = Figure(figsize=(6.4, 5.6), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for row in range(confusion.shape[0]):
        for col in range(confusion.shape[1]):
            axis.text(col, row, str(confusion[row, col]), ha="center", va="center", fontsize=8,
                      color="white" if shares[row, col] > 0.5 else "black")
    ticks = np.arange(len(CLASSES))
    axis.set_xticks(ticks, CLASSES, rotation=45, ha="right")
    axis.set_yticks(ticks, CLASSES)
    axis.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.colorbar(image, ax=axis, label="share of the true class", shrink=0.8)
    return figure


def per_class_accuracy_figure(per_class, title="Accuracy per class"):
    """Horizontal bars of each class's test accuracy (a dict class name -> fraction)."""
    names = list(per_class)
    values = np.array([per_class[name] for name in names]) * 100
    figure = Figure(figsize=(5.2, 3.6), layout="constrained")
    axis = figure.subplots()
    bars = axis.barh(names[::-1], values[::-1], color="tab:blue")
    axis.bar_label(bars, labels=[f"{v:.1f}%" for v in values[::-1]], padding=3, fontsize=8)
    axis.set(xlim=(0, 110), xlabel="test accuracy (%)", title=title)
    axis.grid(axis="x", alpha=0.3)
    return figure


def prediction_grid(images, labels, predictions, title="Test predictions (wrong ones in red, marked “wrong”)"):
    """The blog's 10x10 grid of test predictions: each image titled with its predicted
    class, in red and marked "wrong:" when it is wrong (colour is not the only sign)."""
    if len(images) != len(labels) or len(images) != len(predictions):
        raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(predictions)} predictions must match")
    wrong = [int(label) != int(prediction) for label, prediction in zip(labels, predictions, strict=True)]
    titles = [("wrong: " if bad else "") + CLASSES[int(p)] for p, bad in zip(predictions, wrong, strict=True)]
    return image_grid(images, titles, title, highlighted=wrong)


def image_grid(images, titles, title, highlighted=None, columns=10):
    """The blog's grid: 32x32 images in rows of `columns`, each titled; titles of
    `highlighted` images in bold red.

    Drawn as one mosaic in one axes with a text label per cell: a hundred separate axes
    look the same but cost seconds of layout, too slow for a page that should open at once.
    """
    images = np.asarray(images)
    if len(images) != len(titles):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    highlighted = [False] * len(images) if highlighted is None else list(highlighted)
    cell, gap, title_band = 32, 4, 12  # pixels of the mosaic
    rows = max(1, int(np.ceil(len(images) / columns)))
    pitch_x, pitch_y = cell + gap, cell + gap + title_band
    mosaic = np.full((rows * pitch_y, columns * pitch_x, 3), 255, dtype=np.uint8)
    figure = Figure(figsize=(columns * 1.05, rows * 1.3 + 0.4))
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.45 / (rows * 1.3 + 0.4))
    axis = figure.subplots()
    for position, (image, text, marked) in enumerate(zip(images, titles, highlighted, strict=True)):
        row, col = divmod(position, columns)
        top, left = row * pitch_y + title_band, col * pitch_x + gap // 2
        mosaic[top : top + cell, left : left + cell] = image
        axis.text(left + cell / 2, top - 2, text, ha="center", va="bottom", fontsize=8,
                  color="red" if marked else "black", fontweight="bold" if marked else "normal")
    axis.imshow(mosaic, interpolation="nearest")
    axis.axis("off")
    figure.suptitle(title)
    return figure


def class_balance_figure(train_counts, test_counts, title="Images per class"):
    """Side-by-side bars of the training and test images of each class."""
    train_counts, test_counts = np.asarray(train_counts), np.asarray(test_counts)
    if train_counts.shape != (len(CLASSES),) or test_counts.shape != (len(CLASSES),):
        raise ValueError(f"counts must have one entry per class, got {train_counts.shape} and {test_counts.shape}")
    figure = Figure(figsize=(6.4, 3.6), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(CLASSES))
    for offset, counts, name, colour in ((-0.2, train_counts, "train", "tab:blue"),
                                         (0.2, test_counts, "test", "tab:orange")):
        bars = axis.bar(positions + offset, counts, width=0.4, label=f"{name} ({counts.sum():,})", color=colour)
        axis.bar_label(bars, labels=[f"{c:,}" for c in counts], fontsize=7, padding=2, rotation=90)
    axis.set_xticks(positions, CLASSES, rotation=45, ha="right")
    axis.set(ylabel="images", title=title, ylim=(0, max(1, train_counts.max(), test_counts.max()) * 1.25))
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="upper right", ncols=2)
    return figure


def reliability_diagram(probabilities, labels, temperature, bins=15, title="Calibration: confidence vs accuracy"):
    """Two reliability diagrams side by side: the network's own probabilities (N, 10) and
    the same after dividing the logits by `temperature`, each bar the accuracy of the
    images whose top-class confidence falls in that bin. Bars under the diagonal are
    overconfident. (From calibrated probabilities, pass apply_temperature(p, 1 / T).)"""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(f"probabilities (N, classes) and labels (N,) must match, "
                         f"got {probabilities.shape} and {labels.shape}")
    panels = [("network's own (T = 1)", probabilities),
              (f"calibrated (T = {temperature:.3f})", apply_temperature(probabilities, temperature))]
    edges = np.linspace(0, 1, bins + 1)
    figure = Figure(figsize=(10, 4.4), layout="constrained")
    for axis, (name, values) in zip(figure.subplots(1, 2, sharey=True), panels, strict=True):
        counts, mean_confidence, accuracy = reliability_bins(values, labels, bins)
        filled = counts > 0
        axis.bar(edges[:-1][filled], accuracy[filled], width=1 / bins, align="edge", color="tab:blue",
                 edgecolor="white", label="accuracy")
        # Hatched, not filled: where the network is underconfident the gap lies inside the bar.
        axis.bar(edges[:-1][filled], (mean_confidence - accuracy)[filled], bottom=accuracy[filled], width=1 / bins,
                 align="edge", color="none", edgecolor="tab:red", hatch="//", linewidth=0.8,
                 label="gap to mean confidence")
        axis.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ece = expected_calibration_error(values, labels, bins)
        axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-class probability)",
                 title=f"{name}: ECE {ece * 100:.2f}%")
        axis.grid(alpha=0.3)
    figure.axes[0].set_ylabel("accuracy")
    figure.axes[0].legend(loc="upper left")
    figure.suptitle(f"{title} ({len(labels):,} images, {bins} bins)")
    return figure


def corruption_curves(panels, title="Accuracy under corruption"):
    """Accuracy (%) against severity, one line per corruption starting from the clean
    accuracy at severity 0, and the clean accuracy dashed, for each (name, report) of
    `panels` (corruption reports, cifar_demo.robustness) side by side on the same axes,
    each titled with its mean corruption accuracy."""
    panels = list(panels)
    if not panels:
        raise ValueError("corruption_curves needs at least one (name, report) panel")
    figure = Figure(figsize=(4.2 * len(panels) + 2.2, 4.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(panels), sharey=True))
    colours = colormaps["tab10"].colors  # past ten corruptions, the colours come again dashed, square-marked
    for axis, (name, report) in zip(axes, panels, strict=True):
        clean = report["clean_accuracy"] * 100
        severities = [0, *report["severities"]]
        for index, row in enumerate(report["corruptions"].values()):
            again = index >= len(colours)
            axis.plot(severities, [clean, *(a * 100 for a in row["accuracy"])], marker="s" if again else "o",
                      markersize=3, linestyle="--" if again else "-", color=colours[index % len(colours)],
                      label=row["display_name"])
        axis.axhline(clean, color="black", linestyle=":", linewidth=1.2, label="clean")
        axis.set(xlabel="severity", xticks=severities, ylim=(0, 100),
                 title=f"{name}: mean {report['mean_corruption_accuracy']:.2%} (clean {clean / 100:.2%})")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"accuracy on {panels[0][1]['images']:,} test images (%)")
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
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
