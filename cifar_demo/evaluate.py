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


def compare_predictions(first, second, labels):
    """Where two models' predicted classes differ on the same labelled images: index arrays
    (ascending) of every change, of those `second` fixed (first wrong, second right), broke
    (first right, second wrong) and where both are wrong in different ways."""
    first, second, labels = (np.asarray(a).reshape(-1) for a in (first, second, labels))
    if not len(first) == len(second) == len(labels):
        raise ValueError(f"predictions ({len(first)}, {len(second)}) and labels ({len(labels)}) must cover the same images")
    changed = first != second
    return {
        "changed": np.flatnonzero(changed),
        "fixed": np.flatnonzero(changed & (second == labels)),
        "broken": np.flatnonzero(changed & (first == labels)),
        "both_wrong": np.flatnonzero(changed & (first != labels) & (second != labels)),
    }


def reliability_bins(probabilities, labels, bins=15):
    """Equal-width bins of top-class confidence: (count, mean confidence, accuracy) per bin,
    the data behind a reliability diagram. Empty bins have NaN means."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    correct = np.argmax(probabilities, axis=1) == np.asarray(labels).reshape(-1)
    # Bin b holds confidences in (b/bins, (b+1)/bins]; the lowest bin also takes 0.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
    return counts, mean_confidence, accuracy


def expected_calibration_error(probabilities, labels, bins=15):
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence
    bins weighted by how many images fall in each (Guo et al. 2017)."""
    counts, mean_confidence, accuracy = reliability_bins(probabilities, labels, bins)
    filled = counts > 0
    return float(np.sum(counts[filled] * np.abs(accuracy[filled] - mean_confidence[filled])) / max(1, counts.sum()))


def apply_temperature(probabilities, temperature):
    """softmax(logits / T) computed from probabilities: log p differs from the logits by a
    constant per row, which the softmax removes."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)) / temperature
    return softmax(logits).astype(np.float32)


def softmax(logits):
    """Row-wise softmax in float64, shifted by each row's maximum so that exp cannot overflow."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities, labels):
    picked = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def fit_temperature(probabilities, labels, low=0.05, high=20.0):
    """The temperature minimising the negative log-likelihood of `labels` (golden-section
    search on log T; the NLL is unimodal in T)."""
    if len(labels) == 0:
        raise ValueError("fitting a temperature needs at least one labelled image")

    def loss(log_temperature):
        return negative_log_likelihood(apply_temperature(probabilities, np.exp(log_temperature)), labels)

    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    loss_c, loss_d = loss(c), loss(d)
    while b - a > 1e-5:
        if loss_c < loss_d:
            b, d, loss_d = d, c, loss_c
            c = b - ratio * (b - a)
            loss_c = loss(c)
        else:
            a, c, loss_c = c, d, loss_d
            d = a + ratio * (b - a)
            loss_d = loss(d)
    return float(np.exp((a + b) / 2))


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
    lines = [f"weights: {weights}", f"top-1 accuracy: {report['accuracy'] * 100:.2f}% on {report['images']} official test images"]
    if "tta_accuracy" in report:
        lines.append(f"with horizontal-flip test-time augmentation: {report['tta_accuracy'] * 100:.2f}%")
    lines.append(f"expected calibration error (15 bins): {report['ece'] * 100:.2f}% at temperature "
                 f"{report['temperature']:.3f}, {report['ece_uncalibrated'] * 100:.2f}% without")
    lines.append("per-class accuracy:")
    lines += [f"  {name:<10} {accuracy * 100:6.2f}%" for name, accuracy in report["per_class_accuracy"].items()]
    return "\n".join(lines)


def calibrate(predictor, weights_path, data):
    """Fits the predictor's temperature on the training images its run held out (the
    split is rebuilt from the config saved beside the weights; never the test set) and
    writes it to `<name>.calibration.json`, where Predictor.load finds it."""
    from cifar_demo.predictor import calibration_path_for, config_path_for
    from cifar_demo.training import TrainConfig, split_training_set

    config_path = config_path_for(weights_path)
    if not config_path.is_file():
        raise ValueError(f"{config_path} not found: it says which training images the run held out")
    config = TrainConfig.from_dict(json.loads(config_path.read_text()))
    if config.val_size == 0:
        raise ValueError(f"{weights_path} was trained on every training image: no held-out images to calibrate on")
    _, val_indices = split_training_set(len(data.x_train), config)
    predictor.temperature = 1.0
    raw = predictor.predict_proba(data.x_train[val_indices])
    labels = data.y_train[val_indices]
    temperature = fit_temperature(raw, labels)
    record = {
        "temperature": round(temperature, 6),
        "fitted_on": f"{len(val_indices):,} training images held out of training (seed {config.seed} split)",
        "held_out_nll_before": round(negative_log_likelihood(raw, labels), 5),
        "held_out_nll_after": round(negative_log_likelihood(apply_temperature(raw, temperature), labels), 5),
    }
    calibration_path_for(weights_path).write_text(json.dumps(record, indent=2) + "\n")
    predictor.temperature = temperature
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.evaluate",
        description="Evaluate weights on the official CIFAR-10 test set (10,000 images): accuracy, "
        "per-class accuracy, confusion matrix, calibration error; optionally flip-TTA accuracy.",
    )
    parser.add_argument("--weights", default=None, help="a .weights.h5 file (default: the shipped weights)")
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (with the confusion matrix)")
    parser.add_argument("--tta", action="store_true", help="also measure accuracy with horizontal-flip test-time augmentation")
    parser.add_argument("--fit-temperature", action="store_true",
                        help="first fit the calibration temperature on the run's held-out training images and "
                        "write it beside the weights (<name>.calibration.json)")
    parser.add_argument("--write-predictions", nargs="?", const="", default=None, metavar="NPZ",
                        help="also write the test-set probabilities and the mistakes' pixels for the Mistakes tab "
                        "(default file, for the shipped weights only: weights/test_predictions.npz)")
    args = parser.parse_args(argv)

    from cifar_demo.data import load_cifar10
    from cifar_demo.predictor import SHIPPED_TEST_PREDICTIONS, SHIPPED_WEIGHTS, Predictor

    weights = Path(args.weights) if args.weights else SHIPPED_WEIGHTS
    if args.write_predictions == "" and args.weights:
        print("error: --write-predictions needs a file name for weights other than the shipped ones "
              "(weights/test_predictions.npz belongs to the shipped weights)", file=sys.stderr)
        return 2
    try:
        data = load_cifar10(args.data)
        predictor = Predictor.load(weights)
        if args.fit_temperature:
            record = calibrate(predictor, weights, data)
            print(f"temperature {record['temperature']:.4f} fitted on {record['fitted_on']}: held-out NLL "
                  f"{record['held_out_nll_before']:.4f} -> {record['held_out_nll_after']:.4f}", file=sys.stderr)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    temperature = predictor.temperature
    predictor.temperature = 1.0
    raw = predictor.predict_proba(data.x_test)
    probabilities = apply_temperature(raw, temperature)
    report = summarize(probabilities, data.y_test)
    report.update(
        temperature=temperature,
        ece=expected_calibration_error(probabilities, data.y_test),
        ece_uncalibrated=expected_calibration_error(raw, data.y_test),
        nll=negative_log_likelihood(probabilities, data.y_test),
        nll_uncalibrated=negative_log_likelihood(raw, data.y_test),
    )
    if args.tta:
        predictor.temperature = temperature
        report["tta_accuracy"] = summarize(predictor.predict_proba(data.x_test, tta=True), data.y_test)["accuracy"]
    report["weights"] = str(args.weights) if args.weights else f"{SHIPPED_WEIGHTS.parent.name}/{SHIPPED_WEIGHTS.name}"
    print(json.dumps(report, indent=2) if args.json else format_report(report, report["weights"]))
    if args.write_predictions is not None:
        out = Path(args.write_predictions or SHIPPED_TEST_PREDICTIONS)
        predictions = PredictionSet.from_arrays(probabilities, data.y_test, data.x_test, file_sha256(weights))
        predictions.save(out)
        print(f"wrote {out}: probabilities of {len(data.y_test):,} test images and the pixels of "
              f"{len(predictions.image_indices):,} of them (mistakes and the first {GRID_IMAGES})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
