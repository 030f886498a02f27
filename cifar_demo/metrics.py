"""Metrics of a classifier's answers, in NumPy alone: accuracy and the confusion matrix,
per-class accuracy, calibration (reliability bins, ECE, NLL, temperature) and softmax.

A leaf: it imports nothing else of the package but the class names, so the predictor,
the training engine, evaluation and the UI can all use it.
"""

import numpy as np

from cifar_demo import CLASSES

NUM_CLASSES = len(CLASSES)


def confusion_matrix(labels, predictions, num_classes=NUM_CLASSES):
    """counts[true, predicted] as int64 (num_classes, num_classes)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    if labels.size and (min(labels.min(), predictions.min()) < 0
                        or max(labels.max(), predictions.max()) >= num_classes):
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
        "per_class_accuracy": {name: float(a) for name, a in zip(CLASSES, per_class_accuracy(confusion), strict=True)},
        "confusion_matrix": confusion.tolist(),
    }


def compare_predictions(first, second, labels):
    """Where two models' predicted classes differ on the same labelled images: index arrays
    (ascending) of every change, of those `second` fixed (first wrong, second right), broke
    (first right, second wrong) and where both are wrong in different ways."""
    first, second, labels = (np.asarray(a).reshape(-1) for a in (first, second, labels))
    if not len(first) == len(second) == len(labels):
        raise ValueError(f"predictions ({len(first)}, {len(second)}) and labels ({len(labels)}) "
                         "must cover the same images")
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


def softmax(logits, temperature=1.0):
    """Row-wise softmax(logits / temperature) in float64, shifted by each row's maximum so
    that exp cannot overflow."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    logits = np.asarray(logits, dtype=np.float64) / temperature
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def apply_temperature(probabilities, temperature):
    """softmax(logits / T) for stored probabilities whose logits are gone: log p differs
    from the logits by a constant per row, which the softmax removes. Where logits exist,
    use softmax(logits, T): the logs of clipped probabilities lose the smallest ones."""
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))
    return softmax(logits, temperature).astype(np.float32)


def negative_log_likelihood(probabilities, labels):
    """Mean -log p(true class), probabilities clipped at 1e-12."""
    picked = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def fit_temperature(logits, labels, low=0.05, high=20.0):
    """The temperature minimising the negative log-likelihood of `labels` under
    softmax(logits / T) (golden-section search on log T; the NLL is unimodal in T)."""
    if len(labels) == 0:
        raise ValueError("fitting a temperature needs at least one labelled image")

    def loss(log_temperature):
        return negative_log_likelihood(softmax(logits, np.exp(log_temperature)), labels)

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
