"""Accuracy, per-class accuracy, the confusion matrix and the test set's mistakes.

CLI: `python -m cifar_demo.evaluate [--write-predictions]`.
"""

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_demo import CLASSES

GRID_IMAGES = 100           # the blog's grid: the first 100 official test images
MISTAKE_ORDERS = ("confidence", "margin", "index")


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
    return summarize_predictions(np.argmax(probabilities, axis=1), labels)


def summarize_predictions(predictions, labels):
    """The same summary from predicted classes (N,) vs labels (N,)."""
    confusion = confusion_matrix(labels, predictions)
    return {
        "images": int(len(labels)),
        "accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        "per_class_accuracy": {name: float(a) for name, a in zip(CLASSES, per_class_accuracy(confusion))},
        "confusion_matrix": confusion.tolist(),
    }


def evaluate_predictor(predictor, images, labels):
    return summarize(predictor.predict_proba(images), labels)


def rank_mistakes(probabilities, labels, true_class=None, predicted_class=None, order="confidence", predictions=None):
    """Indices of misclassified images, optionally of one true and/or predicted class.

    `predictions` (N,) overrides the argmax of `probabilities`: rounding probabilities to
    float16 can tie two classes, and the model's own answer is what counts.

    order "confidence": the most confident mistakes first (highest probability on the
    wrong class); "margin": the closest calls first (smallest gap between the top two
    classes); "index": official test-set order. Ties keep test-set order.
    """
    if order not in MISTAKE_ORDERS:
        raise ValueError(f"order must be one of {', '.join(MISTAKE_ORDERS)}, got {order!r}")
    probabilities = np.asarray(probabilities, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    predictions = np.argmax(probabilities, axis=1) if predictions is None else np.asarray(predictions).reshape(-1)
    keep = predictions != labels
    if true_class is not None:
        keep &= labels == true_class
    if predicted_class is not None:
        keep &= predictions == predicted_class
    indices = np.flatnonzero(keep)
    if order == "index":
        return indices
    top_two = -np.sort(-probabilities[indices], axis=1)[:, :2]
    key = -top_two[:, 0] if order == "confidence" else top_two[:, 0] - top_two[:, 1]
    return indices[np.argsort(key, kind="stable")]


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class PredictionSet:
    """A model's answers on the official test set, with only the pixels the UI shows.

    Written by `python -m cifar_demo.evaluate --write-predictions` so that the Mistakes tab
    opens without the dataset and without running the model.
    """

    probabilities: np.ndarray   # float32 (10000, 10), official order (stored as float16)
    labels: np.ndarray          # uint8 (10000,)
    predictions: np.ndarray     # uint8 (10000,): the model's argmax before the float16 rounding
    image_indices: np.ndarray   # int (M,), sorted: every mistake and the first GRID_IMAGES
    images: np.ndarray          # uint8 (M, 32, 32, 3), the pixels of those images
    weights_sha256: str = ""    # of the weights file the probabilities came from

    def image(self, index):
        """The pixels of test image `index`; KeyError when the file does not hold it."""
        position = np.searchsorted(self.image_indices, index)
        if position >= len(self.image_indices) or self.image_indices[position] != index:
            raise KeyError(f"test image {index} is not stored (it is neither a mistake nor in the grid)")
        return self.images[position]

    @classmethod
    def from_arrays(cls, probabilities, labels, all_images, weights_sha256=""):
        """Keeps the pixels of the mistakes and of the grid, nothing else of the dataset."""
        predictions = np.argmax(probabilities, axis=1).astype(np.uint8)
        probabilities = np.asarray(probabilities, dtype=np.float16).astype(np.float32)
        labels = np.asarray(labels, dtype=np.uint8).reshape(-1)
        keep = predictions != labels
        keep[:GRID_IMAGES] = True
        indices = np.flatnonzero(keep)
        return cls(probabilities, labels, predictions, indices, np.asarray(all_images)[indices], weights_sha256)

    def save(self, path):
        np.savez_compressed(
            path, probabilities=self.probabilities.astype(np.float16), labels=self.labels, predictions=self.predictions,
            image_indices=self.image_indices.astype(np.int32), images=self.images,
            weights_sha256=np.array(self.weights_sha256),
        )

    @classmethod
    def load(cls, path):
        try:
            with np.load(path) as archive:
                return cls(
                    archive["probabilities"].astype(np.float32), archive["labels"], archive["predictions"],
                    archive["image_indices"],
                    archive["images"], str(archive["weights_sha256"]),
                )
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"{path} is not a test-predictions file: {error}") from None


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
    parser.add_argument("--write-predictions", nargs="?", const="", default=None, metavar="NPZ",
                        help="also write the test-set probabilities and the mistakes' pixels for the Mistakes tab "
                        "(default file: weights/test_predictions.npz, for the shipped weights)")
    args = parser.parse_args(argv)

    from cifar_demo.data import load_cifar10
    from cifar_demo.predictor import SHIPPED_TEST_PREDICTIONS, SHIPPED_WEIGHTS, Predictor

    try:
        data = load_cifar10(args.data)
        predictor = Predictor.load(args.weights)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    probabilities = predictor.predict_proba(data.x_test)
    report = summarize(probabilities, data.y_test)
    report["weights"] = str(args.weights) if args.weights else f"{SHIPPED_WEIGHTS.parent.name}/{SHIPPED_WEIGHTS.name}"
    print(json.dumps(report, indent=2) if args.json else format_report(report, report["weights"]))
    if args.write_predictions is not None:
        out = Path(args.write_predictions or SHIPPED_TEST_PREDICTIONS)
        weights = Path(args.weights) if args.weights else SHIPPED_WEIGHTS
        predictions = PredictionSet.from_arrays(probabilities, data.y_test, data.x_test, file_sha256(weights))
        predictions.save(out)
        print(f"wrote {out}: probabilities of {len(data.y_test):,} test images and the pixels of "
              f"{len(predictions.image_indices):,} of them (mistakes and the first {GRID_IMAGES})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
