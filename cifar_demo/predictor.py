"""Predictor: trained weights -> class probabilities, with no Gradio in sight."""

import json
import threading
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from cifar_demo import CLASSES
from cifar_demo.metrics import apply_temperature
from cifar_demo.images import MODEL_SIZE, resize_for_model, square_crop_box, to_model_input, to_rgb_image
from cifar_demo.model import EARLY_LAYER, FEATURES_LAYER, LOGITS_LAYER, build_model, scaled_widths

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "cifar10_cnn.weights.h5"
SHIPPED_METRICS = WEIGHTS_DIR / "cifar10_cnn.metrics.json"  # what `evaluate --json` measured
SHIPPED_TEST_PREDICTIONS = WEIGHTS_DIR / "test_predictions.npz"  # `evaluate --write-predictions`
BATCH_SIZE = 256
# Grad-CAM explains the last convolution, the one global pooling reads. There Grad-CAM
# equals CAM exactly: the class score is the Dense kernel applied to the spatial mean of
# these activations, so each channel's gradient is its kernel weight / 64 at every
# position. Its 8x8 grid (4 px cells) is coarse, but it is where the network's class
# evidence is. Measured with `bench/gradcam.py --compare-layers` (153 CIFAR-10 test
# images pasted at random on a grey canvas twice their size, still classified right):
# share of the map on the object / peak on the object, chance 25%:
#   stage3_conv3_relu (8x8) 71% / 100%, stage3_conv1_relu (8x8) 47% / 68%,
#   stage2_conv3_relu (16x16) 56% / 84%, stage2_conv1_relu (16x16) 47% / 70%.
# The 16x16 maps look sharper but scatter over edges and background: their gradients
# still pass through the whole last stage, which mixes positions.
EXPLAIN_LAYER = "stage3_conv3_relu"


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

    def __init__(self, model, temperature=1.0, explain_layer=EXPLAIN_LAYER):
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.model = model
        self.temperature = float(temperature)  # divides the logits; fitted on held-out images
        self.explain_layer = explain_layer
        self._forward = tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32)],
        )
        # Built on first use: training evaluates through a Predictor every epoch and never
        # needs them. Each is one Functional sub-model in one tf.function traced once.
        self._features_function = None
        self._gradcam_function = None
        # The app's worker threads share one Predictor: the functions above are built once,
        # on first use, under this lock.
        self._build_lock = threading.Lock()

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
        images = _check_batch(images, "predict_proba")
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

    def predict_features(self, images):
        """uint8 (N, 32, 32, 3) -> NetworkOutputs of float32 arrays, in one pass:

        logits (N, 10), the network's own before the temperature; features (N, C), what the
        final Dense layer reads; early_statistics (N, 2 * C1), the per-channel mean and
        standard deviation over positions of the first stage's last activations (colour and
        texture statistics). Out-of-distribution scores are computed from them.
        """
        images = _check_batch(images, "predict_features")
        if self._features_function is None:
            with self._build_lock:
                if self._features_function is None:
                    self._features_function = self._build_features()
        if len(images) == 0:  # the convolutions reject an empty batch
            widths = (len(CLASSES), self.model.get_layer(FEATURES_LAYER).output.shape[-1],
                      2 * self.model.get_layer(EARLY_LAYER).output.shape[-1])
            return NetworkOutputs(*(np.zeros((0, width), np.float32) for width in widths))
        batches = [
            self._features_function(tf.constant(images[start : start + BATCH_SIZE], dtype=tf.float32))
            for start in range(0, len(images), BATCH_SIZE)
        ]
        return NetworkOutputs(*(np.concatenate([batch[i].numpy() for batch in batches]) for i in range(3)))

    def _build_features(self):
        early = self.model.get_layer(EARLY_LAYER).output
        features_model = keras.Model(self.model.inputs, [early, self.model.get_layer(FEATURES_LAYER).output])

        def outputs(batch):
            activations, features = features_model(batch, training=False)
            activations = tf.cast(activations, tf.float32)
            early_statistics = tf.concat(
                [tf.reduce_mean(activations, axis=(1, 2)), tf.math.reduce_std(activations, axis=(1, 2))], axis=1
            )
            features = tf.cast(features, tf.float32)
            return self._logits(features), features, early_statistics

        return tf.function(outputs, input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32)])

    def explain(self, image, class_name=None):
        """Grad-CAM: where in `image` the evidence for `class_name` lies (the top class of
        the plain, un-augmented prediction when None), as float32 (H, W) in [0, 1] matching
        the upright image (after EXIF rotation, i.e. `images.to_rgb_image(image)`), 1 at the
        strongest evidence; all 0 when nothing in the image speaks for the class.

        The model sees the centred square resized to 32x32, so the map covers that square,
        smoothly upsampled, and is 0 on the cropped-off margins. An unknown class name
        raises ValueError listing the classes.
        """
        class_index = None if class_name is None else class_index_of(class_name)
        upright = to_rgb_image(image)
        pixels = np.asarray(resize_for_model(upright), dtype=np.uint8)
        width, height = upright.size
        left, top, side = square_crop_box(width, height)
        heatmap = np.zeros((height, width), dtype=np.float32)
        heatmap[top : top + side, left : left + side] = _upsample(self._class_activation_map(pixels, class_index), side)
        return heatmap

    def explain_pixels(self, pixels, class_index=None, side=MODEL_SIZE):
        """Grad-CAM of one uint8 (32, 32, 3) model input for class `class_index` (the top
        class when None): float32 (side, side) in [0, 1], bilinear from the map's own grid
        (pass a larger `side` to draw it over an enlarged input in one interpolation)."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.shape != (MODEL_SIZE, MODEL_SIZE, 3):
            raise ValueError(f"explain_pixels takes one uint8 image of shape (32, 32, 3), got {pixels.dtype} {pixels.shape}")
        if class_index is not None and (isinstance(class_index, (bool, str)) or int(class_index) != class_index
                                        or not 0 <= class_index < len(CLASSES)):
            raise ValueError(f"class_index must be an integer in 0..{len(CLASSES) - 1}, got {class_index!r}")
        if int(side) != side or side < 1:
            raise ValueError(f"side must be a positive integer, got {side!r}")
        return _upsample(self._class_activation_map(pixels, class_index), int(side))

    def _class_activation_map(self, pixels, class_index):
        """The ReLU'd Grad-CAM of one image at the explained layer's resolution, max 1."""
        if self._gradcam_function is None:
            with self._build_lock:
                if self._gradcam_function is None:
                    self._gradcam_function = self._build_gradcam()
        requested = -1 if class_index is None else int(class_index)
        cam = self._gradcam_function(
            tf.constant(pixels[None], dtype=tf.float32), tf.constant([requested], dtype=tf.int32)
        )[0].numpy()
        return _normalise(cam)

    def _build_gradcam(self):
        try:
            layer = self.model.get_layer(self.explain_layer)
        except ValueError:
            raise ValueError(f"the model has no layer {self.explain_layer!r} to explain") from None
        grad_model = keras.Model(self.model.inputs, [layer.output, self.model.get_layer(FEATURES_LAYER).output])

        def gradcam(images, class_indices):
            """Grad-CAM (Selvaraju et al. 2017) of each image for its class (-1: the top
            class): the activations weighted by the spatial mean of the class score's
            gradient, summed over channels and ReLU'd. The score is the pre-softmax logit:
            the softmax's gradient vanishes for confident classes and mixes in the others."""
            with tf.GradientTape() as tape:
                activations, features = grad_model(images, training=False)
                logits = self._logits(tf.cast(features, tf.float32))
                chosen = tf.where(class_indices < 0, tf.argmax(logits, axis=1, output_type=tf.int32), class_indices)
                scores = tf.gather(logits, chosen, batch_dims=1)
            # Images are independent (inference-mode BatchNorm), so the gradient of the sum
            # holds each image's own gradient.
            gradients = tf.cast(tape.gradient(scores, activations), tf.float32)
            weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
            return tf.nn.relu(tf.reduce_sum(weights * tf.cast(activations, tf.float32), axis=-1))

        return tf.function(
            gradcam,
            input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32), tf.TensorSpec((None,), tf.int32)],
        )

    def _logits(self, features):
        """The final Dense layer without its softmax: float32 features (N, C) -> (N, 10)."""
        dense = self.model.get_layer(LOGITS_LAYER)
        return tf.matmul(features, tf.convert_to_tensor(dense.kernel)) + tf.convert_to_tensor(dense.bias)


class NetworkOutputs(NamedTuple):
    """What Predictor.predict_features computes for N images (see there)."""

    logits: np.ndarray
    features: np.ndarray
    early_statistics: np.ndarray


def class_index_of(class_name):
    """The index of a CIFAR-10 class name; ValueError listing the classes otherwise."""
    if class_name not in CLASSES:
        raise ValueError(f"unknown class {class_name!r}; the classes are: {', '.join(CLASSES)}")
    return CLASSES.index(class_name)


def _check_batch(images, caller):
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (MODEL_SIZE, MODEL_SIZE, 3):
        raise ValueError(f"{caller} takes uint8 images of shape (N, 32, 32, 3), got {images.dtype} {images.shape}")
    return images


def _normalise(heatmap):
    """Clips at 0 and scales the maximum to 1; a map with no positive evidence stays all 0."""
    heatmap = np.maximum(np.asarray(heatmap, dtype=np.float32), 0.0)
    peak = float(heatmap.max()) if heatmap.size else 0.0
    return heatmap / peak if peak > 0 else np.zeros_like(heatmap)


def _upsample(heatmap, side):
    """A square [0, 1] map -> (side, side), bilinear, rescaled to max 1. Done as two small
    matrix products: on a 12 MP photo ten times faster than PIL's resize."""
    weights = _bilinear_weights(heatmap.shape[0], side)
    upsampled = weights @ heatmap @ weights.T  # rows of weights sum to 1: stays in [0, 1]
    peak = float(upsampled.max())
    if peak > 0:
        upsampled *= 1.0 / peak
    return upsampled


def _bilinear_weights(size, side):
    """(side, size) bilinear interpolation weights with pixel centres aligned, as PIL and
    tf.image.resize(half_pixel_centers) place them."""
    position = np.clip((np.arange(side) + 0.5) * size / side - 0.5, 0, size - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, size - 1)
    weights = np.zeros((side, size), dtype=np.float32)
    np.add.at(weights, (np.arange(side), low), (1 - position + low).astype(np.float32))
    np.add.at(weights, (np.arange(side), high), (position - low).astype(np.float32))
    return weights
