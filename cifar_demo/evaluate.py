"""Accuracy, per-class accuracy and the confusion matrix; CLI: `python -m cifar_demo.evaluate`."""

import argparse
import json
import sys

import numpy as np

from cifar_demo import CLASSES


def confusion_matrix(labels, predictions, num_classes=len(CLASSES)):
    """counts[true, predicted] as int64 (num_classes, num_classes)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    if labels.size and (min(labels.min(), predictions.min()) < 0 or max(labels.max(), predictions.max()) >= num_classes):
        raise ValueError(f"labels and predictions must lie in 0..{num_classes - 1}")
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion):
    """Recall of each class: correct / images of that class (NaN for an absent class)."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diagonal(confusion) / totals


def summarize(probabilities, labels):
    """Accuracy, per-class accuracy and confusion matrix of probabilities (N, 10) vs labels (N,)."""
    predictions = np.argmax(probabilities, axis=1)
    confusion = confusion_matrix(labels, predictions)
    return {
        "images": int(len(labels)),
        "accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        "per_class_accuracy": {name: float(a) for name, a in zip(CLASSES, per_class_accuracy(confusion))},
        "confusion_matrix": confusion.tolist(),
    }


def evaluate_predictor(predictor, images, labels):
    return summarize(predictor.predict_proba(images), labels)


def format_report(report, weights):
    lines = [f"weights: {weights}", f"top-1 accuracy: {report['accuracy'] * 100:.2f}% on {report['images']} official test images", "per-class accuracy:"]
    lines += [f"  {name:<10} {accuracy * 100:6.2f}%" for name, accuracy in report["per_class_accuracy"].items()]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.evaluate",
        description="Evaluate weights on the official CIFAR-10 test set (10,000 images).",
    )
    parser.add_argument("--weights", default=None, help="a .weights.h5 file (default: the shipped weights)")
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (with the confusion matrix)")
    args = parser.parse_args(argv)

    from cifar_demo.data import load_cifar10
    from cifar_demo.predictor import SHIPPED_WEIGHTS, Predictor

    try:
        data = load_cifar10(args.data)
        predictor = Predictor.load(args.weights)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = evaluate_predictor(predictor, data.x_test, data.y_test)
    report["weights"] = str(args.weights) if args.weights else f"{SHIPPED_WEIGHTS.parent.name}/{SHIPPED_WEIGHTS.name}"
    print(json.dumps(report, indent=2) if args.json else format_report(report, report["weights"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
