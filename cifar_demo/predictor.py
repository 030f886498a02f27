"""Predictor: trained weights -> class probabilities, with no Gradio in sight."""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from cifar_demo import CLASSES
from cifar_demo.evaluate import apply_temperature
from cifar_demo.images import to_model_input
from cifar_demo.model import build_model, scaled_widths

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "cifar10_cnn.weights.h5"
SHIPPED_METRICS = WEIGHTS_DIR / "cifar10_cnn.metrics.json"  # what `evaluate --json` measured
SHIPPED_TEST_PREDICTIONS = WEIGHTS_DIR / "test_predictions.npz"  # `evaluate --write-predictions`
BATCH_SIZE = 256


def config_path_for(weights_path):
    """The JSON config saved beside a weights file: x.weights.h5 -> x.config.json."""
    return companion_path(weights_path, "config")


def calibration_path_for(weights_path):
    """The fitted temperature saved beside a weights file: x.weights.h5 -> x.calibration.json."""
    return companion_path(weights_path, "calibration")


def companion_path(weights_path, kind):
    weights_path = Path(weights_path)
    stem = weights_path.name.removesuffix(".weights.h5").removesuffix(".h5")
    return weights_path.with_name(f"{stem}.{kind}.json")


class Predictor:
    """Wraps a Keras model in one traced tf.function, so a request costs milliseconds
    instead of the tens that `model.predict` spends setting itself up on every call."""

    def __init__(self, model, temperature=1.0):
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.model = model
        self.temperature = float(temperature)  # divides the logits; fitted on held-out images
        self._forward = tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32)],
        )

    @classmethod
    def load(cls, path=None):
        """Loads weights (the shipped ones when `path` is None) and warms the model up.

        The architecture's width comes from the JSON config saved beside the weights
        (`<name>.config.json`, written by the training CLI); without one, the blog's widths.
        The temperature comes from `<name>.calibration.json` (`evaluate --fit-temperature`);
        without one, the probabilities are the network's own.
        """
        path = Path(path) if path is not None else SHIPPED_WEIGHTS
        if not path.is_file():
            raise ValueError(f"weights file not found: {path}")
        width_mult = 1.0
        config_path = config_path_for(path)
        if config_path.is_file():
            width_mult = float(json.loads(config_path.read_text()).get("width_mult", 1.0))
        model = build_model(scaled_widths(width_mult))
        try:
            model.load_weights(path)
        except Exception as error:
            raise ValueError(f"{path} does not hold weights for this model: {error}") from None
        temperature = 1.0
        calibration_path = calibration_path_for(path)
        if calibration_path.is_file():
            temperature = float(json.loads(calibration_path.read_text())["temperature"])
        predictor = cls(model, temperature)
        predictor.predict_proba(np.zeros((1, 32, 32, 3), dtype=np.uint8))  # trace once now
        return predictor

    def predict_proba(self, images, tta=False):
        """uint8 (N, 32, 32, 3) -> float32 (N, 10) probabilities whose rows sum to 1,
        temperature-calibrated. `tta` averages each image with its mirror image (both go
        through the network in one batch, so one image costs one call)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise ValueError(
                f"predict_proba takes uint8 images of shape (N, 32, 32, 3), got {images.dtype} {images.shape}"
            )
        step = BATCH_SIZE // 2 if tta else BATCH_SIZE
        outputs = []
        for start in range(0, len(images), step):
            batch = images[start : start + step]
            if tta:
                batch = np.concatenate([batch, batch[:, :, ::-1]])
            probabilities = self._forward(tf.constant(batch, dtype=tf.float32)).numpy().astype(np.float32)
            if self.temperature != 1.0:
                probabilities = apply_temperature(probabilities, self.temperature)
            if tta:
                half = len(batch) // 2
                probabilities = (probabilities[:half] + probabilities[half:]) / 2
            outputs.append(probabilities)
        if not outputs:
            return np.zeros((0, len(CLASSES)), dtype=np.float32)
        probabilities = np.concatenate(outputs)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def label(self, pixels, tta=False):
        """{class name: probability} for one uint8 (32, 32, 3) model input."""
        probabilities = self.predict_proba(pixels[None], tta=tta)[0]
        return {name: float(p) for name, p in zip(CLASSES, probabilities)}

    def classify(self, image, tta=False):
        """A PIL image, an array of any size or a file path -> {class name: probability}.

        Unreadable input raises ValueError with a message a person understands.
        """
        return self.label(to_model_input(image), tta=tta)
