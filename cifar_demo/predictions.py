"""The test-set predictions file the Mistakes tab reads, and how mistakes are ranked.

Written by `python -m cifar_demo.evaluate --write-predictions` so that the Mistakes tab
opens without the dataset and without running the model.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_demo.artifacts import UNREADABLE_NPZ

GRID_IMAGES = 100           # the blog's grid: the first 100 official test images
MISTAKE_ORDERS = ("confidence", "margin", "index")


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
        except UNREADABLE_NPZ as error:
            raise ValueError(f"{path} is not a test-predictions file: {error}") from None
