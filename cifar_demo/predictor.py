"""Predictor: trained weights -> class probabilities, with no Gradio in sight.

Written in keras.ops for every Keras backend; cifar_demo.backend compiles its forward
passes for the backend that runs.
"""

import json
import threading
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from cifar_demo import CLASSES
from cifar_demo.artifacts import SHIPPED_WEIGHTS, calibration_path_for, config_path_for
from cifar_demo.backend import compile_inference, input_gradient
from cifar_demo.images import (
    MODEL_SIZE,
    check_model_input,
    resize_for_model,
    square_crop_box,
    to_model_input,
    to_rgb_image,
)
from cifar_demo.model import (
    EARLY_LAYER,
    EXPLAIN_LAYER,
    FEATURES_LAYER,
    LOGITS_LAYER,
    build_model,
    scaled_widths,
)

BATCH_SIZE = 256


class Predictor:
    """Wraps a Keras model in forward passes compiled once for the running backend, so a
    request costs milliseconds instead of the tens that `model.predict` spends setting
    itself up on every call.

    The temperature (fitted on held-out images, see cifar_demo.evaluate.calibrate) is
    fixed at construction and applied inside the compiled pass: softmax(logits / T).
    BatchNorm is folded into the convolutions (FoldedNetwork) when the Predictor is made;
    after the model's weights change, `refresh_weights()` makes it answer with the new ones.
    """

    def __init__(self, model, temperature=1.0, explain_layer=EXPLAIN_LAYER):
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.model = model
        self._temperature = float(temperature)
        self.explain_layer = explain_layer
        self._network = FoldedNetwork(model)

        def forward(images):
            logits = keras.ops.cast(self._network.outputs(images)[LOGITS_LAYER], "float32")
            return logits, keras.ops.softmax(logits / self._temperature, axis=-1)

        self._forward = compile_inference(self._network.variables, forward)
        # Built on first use: training evaluates through a Predictor every epoch and never
        # needs them. The app's worker threads share one Predictor, so each is built once,
        # under this lock.
        self._features_function = None
        self._explain_function = None
        self._layer_functions = {}  # tuple of layer names -> compiled pass (_layer_function)
        self._evaluation_functions = {}  # tuple of layer names -> compiled pass (predict_with_peaks)
        self._build_lock = threading.Lock()

    def refresh_weights(self):
        """Re-reads the model's weights (the training engine calls it before each validation)."""
        self._network.refold()

    @property
    def temperature(self):
        """Divides the logits before the softmax; 1.0 leaves the network's own probabilities."""
        return self._temperature

    @classmethod
    def load(cls, path=None, precision="float32"):
        """Loads weights (the shipped ones when `path` is None) and warms the model up.
        `precision` "mixed_bfloat16" computes in bf16 (faster where the CPU has AMX or on a
        GPU; bench/backends.py measures it); the answers stay float32.

        The architecture's width comes from the JSON config saved beside the weights
        (`<name>.config.json`, written by the training CLI); without one, the blog's widths.
        The temperature comes from `<name>.calibration.json` (`evaluate --fit-temperature`);
        without one, the probabilities are the network's own.
        """
        path = SHIPPED_WEIGHTS if path is None else Path(path)
        if not path.is_file():
            raise ValueError(f"weights file not found: {path}")
        width_mult = 1.0
        config_path = config_path_for(path)
        if config_path.is_file():
            width_mult = float(json.loads(config_path.read_text()).get("width_mult", 1.0))
        model = build_model(scaled_widths(width_mult), precision=precision)
        try:
            model.load_weights(path)
        except Exception as error:
            raise ValueError(f"{path} does not hold weights for this model: {error}") from None
        temperature = 1.0
        calibration_path = calibration_path_for(path)
        if calibration_path.is_file():
            temperature = float(json.loads(calibration_path.read_text())["temperature"])
        predictor = cls(model, temperature)
        predictor.predict_proba(np.zeros((1, MODEL_SIZE, MODEL_SIZE, 3), dtype=np.uint8))  # compile once now
        return predictor

    def predict_logits(self, images):
        """uint8 (N, 32, 32, 3) -> float32 (N, 10): the network's logits, before the
        temperature (what calibration is fitted on)."""
        return self._batched(images, "predict_logits", lambda batch: self._forward(batch)[0])

    def predict_proba(self, images, tta=False):
        """uint8 (N, 32, 32, 3) -> float32 (N, 10) probabilities whose rows sum to 1,
        temperature-calibrated. `tta` averages each image with its mirror image (both go
        through the network in one batch, so one image costs one call)."""
        if not tta:
            return self._batched(images, "predict_proba", lambda batch: self._forward(batch)[1])

        def mirrored(batch):
            probabilities = self._forward(np.concatenate([batch, batch[:, :, ::-1]]))[1]
            half = len(batch)
            averaged = (probabilities[:half] + probabilities[half:]) / 2
            return averaged / averaged.sum(axis=1, keepdims=True)

        return self._batched(images, "predict_proba", mirrored, BATCH_SIZE // 2)

    def _batched(self, images, caller, function, step=BATCH_SIZE):
        images = _check_batch(images, caller)
        outputs = [
            np.asarray(function(images[start : start + step].astype(np.float32)), dtype=np.float32)
            for start in range(0, len(images), step)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0, len(CLASSES)), dtype=np.float32)

    def label(self, pixels, tta=False):
        """{class name: probability} for one uint8 (32, 32, 3) model input."""
        probabilities = self.predict_proba(pixels[None], tta=tta)[0]
        return {name: float(p) for name, p in zip(CLASSES, probabilities, strict=True)}

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
        features_function = self._built("_features_function", self._build_features)
        if len(images) == 0:  # the convolutions reject an empty batch
            widths = (len(CLASSES), self.model.get_layer(FEATURES_LAYER).output.shape[-1],
                      2 * self.model.get_layer(EARLY_LAYER).output.shape[-1])
            return NetworkOutputs(*(np.zeros((0, width), np.float32) for width in widths))
        batches = [features_function(images[start : start + BATCH_SIZE].astype(np.float32))
                   for start in range(0, len(images), BATCH_SIZE)]
        return NetworkOutputs(*(np.concatenate([batch[i] for batch in batches]).astype(np.float32) for i in range(3)))

    def _build_features(self):
        def outputs(images):
            layers = self._network.outputs(images)
            early, features, logits = (keras.ops.cast(layers[name], "float32")
                                       for name in (EARLY_LAYER, FEATURES_LAYER, LOGITS_LAYER))
            early_statistics = keras.ops.concatenate(
                [keras.ops.mean(early, axis=(1, 2)), keras.ops.std(early, axis=(1, 2))], axis=1
            )
            return logits, features, early_statistics

        return compile_inference(self._network.variables, outputs)

    def activations(self, pixels):
        """uint8 (32, 32, 3) -> OrderedDict {layer name: float32 array} in the order data
        flows: every convolution stage's output after BatchNorm and ReLU (H, W, C), each
        pooling output (H, W, C) and the pooled features (C,). Named as the model's layers;
        one compiled pass, built on first use."""
        pixels = check_model_input(pixels, "activations")
        return OrderedDict((name, value[0]) for name, value in self.batch_activations(pixels[None]).items())

    def batch_activations(self, images):
        """activations() of N images at once: uint8 (N, 32, 32, 3) -> {name: (N, ...)}, in one pass."""
        images = _check_batch(images, "batch_activations")
        if len(images) == 0:
            raise ValueError("batch_activations needs at least one image")
        names = self.activation_layers()
        values = self._layer_function(names)(images.astype(np.float32))
        return OrderedDict((name, np.asarray(value, dtype=np.float32)) for name, value in zip(names, values,
                                                                                               strict=True))

    def activation_layers(self):
        """The names `activations` returns, in the order data flows: each ReLU, each
        pooling layer and the global pooling."""
        kinds = (keras.layers.ReLU, keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D)
        return [layer.name for layer in self._network.layers if isinstance(layer, kinds)]

    def channel_peaks(self, images):
        """uint8 (N, 32, 32, 3) -> OrderedDict {layer name: float32 (N, C)}: for each
        convolution stage's ReLU output, every channel's largest value over positions (how
        strongly each image activates it), then the pooled features (FEATURES_LAYER); one
        pass per batch. What the top images per channel and the feature map are computed from."""
        images = _check_batch(images, "channel_peaks")
        names = [name for name in self.activation_layers() if name.endswith("_relu")] + [FEATURES_LAYER]
        if len(images) == 0:
            return OrderedDict((name, np.zeros((0, self.model.get_layer(name).output.shape[-1]), np.float32))
                               for name in names)
        return self.predict_with_peaks(images, names)[1]

    def predict_with_peaks(self, images, layers):
        """(predict_proba (N, 10), {layer: channel_peaks (N, C)} for `layers`) in one pass of
        uint8 (N, 32, 32, 3) images: a run's test evaluation keeps each channel's top images
        without a second pass over the test set."""
        layers = tuple(layers)
        images = self._check_layer_request(images, layers, "predict_with_peaks")
        with self._build_lock:
            if layers not in self._evaluation_functions:
                self._evaluation_functions[layers] = self._build_evaluation(layers)
        function = self._evaluation_functions[layers]
        batches = [function(images[start : start + BATCH_SIZE].astype(np.float32))
                   for start in range(0, len(images), BATCH_SIZE)]
        probabilities = np.concatenate([batch[0] for batch in batches]).astype(np.float32)
        return probabilities, OrderedDict(
            (name, np.concatenate([batch[i + 1] for batch in batches]).astype(np.float32))
            for i, name in enumerate(layers))

    def _check_layer_request(self, images, layer_names, caller):
        """The checks of a pass that returns named layers: a uint8 batch of at least one image,
        and layers the model has (ValueError naming the first it lacks)."""
        images = _check_batch(images, caller)
        for name in layer_names:
            self.model.get_layer(name)
        if len(images) == 0:
            raise ValueError(f"{caller} needs at least one image")
        return images

    def _build_evaluation(self, layers):
        def outputs(images):
            computed = self._network.outputs(images)
            logits = keras.ops.cast(computed[LOGITS_LAYER], "float32")
            return (keras.ops.softmax(logits / self._temperature, axis=-1),
                    *(_peaks(computed, name) for name in layers))

        return compile_inference(self._network.variables, outputs)

    def _layer_function(self, names):
        """One compiled pass giving the float32 outputs of the layers `names`, in that order;
        built once per tuple of names, under the lock."""
        names = tuple(names)
        with self._build_lock:
            if names not in self._layer_functions:
                def outputs(images):
                    layers = self._network.outputs(images)
                    return tuple(keras.ops.cast(layers[name], "float32") for name in names)

                self._layer_functions[names] = compile_inference(self._network.variables, outputs)
        return self._layer_functions[names]

    def predict_reduced(self, images, layer_names, reduce):
        """uint8 (N, 32, 32, 3) -> {key: (N, ...)}: `reduce` (a NumPy function of one batch's
        {layer name: float32 activations (n, H, W, C)} returning {key: (n, ...) array}) applied
        batch by batch and concatenated. Statistics of layers too large to keep whole for
        thousands of images (Gram matrices, per-stage statistics for out-of-distribution fits)."""
        layer_names = tuple(layer_names)
        images = self._check_layer_request(images, layer_names, "predict_reduced")
        function = self._layer_function(layer_names)
        batches = []
        for start in range(0, len(images), BATCH_SIZE):
            outputs = function(images[start : start + BATCH_SIZE].astype(np.float32))
            batches.append(reduce({name: np.asarray(value) for name, value in zip(layer_names, outputs, strict=True)}))
        return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}

    def _built(self, attribute, build):
        """The lazily built function in `attribute`, built once under the lock."""
        if getattr(self, attribute) is None:
            with self._build_lock:
                if getattr(self, attribute) is None:
                    setattr(self, attribute, build())
        return getattr(self, attribute)

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
        pixels = check_model_input(pixels, "explain_pixels")
        if class_index is not None and (isinstance(class_index, (bool, str)) or int(class_index) != class_index
                                        or not 0 <= class_index < len(CLASSES)):
            raise ValueError(f"class_index must be an integer in 0..{len(CLASSES) - 1}, got {class_index!r}")
        if int(side) != side or side < 1:
            raise ValueError(f"side must be a positive integer, got {side!r}")
        return _upsample(self._class_activation_map(pixels, class_index), int(side))

    def _class_activation_map(self, pixels, class_index):
        """The ReLU'd Grad-CAM of one image at the explained layer's resolution, max 1."""
        explain_function = self._built("_explain_function", self._build_explain)
        requested = -1 if class_index is None else int(class_index)
        return _normalise(explain_function(pixels[None].astype(np.float32), np.array([requested], np.int32))[0])

    def _build_explain(self):
        """At the layer global pooling reads, Grad-CAM is CAM: compiled, no gradient. At any
        other layer, Grad-CAM through the backend's autodiff (gradcam_by_autodiff)."""
        try:
            self.model.get_layer(self.explain_layer)
        except ValueError:
            raise ValueError(f"the model has no layer {self.explain_layer!r} to explain") from None
        if self.explain_layer != EXPLAIN_LAYER:
            return partial(gradcam_by_autodiff, self.model, self.explain_layer)
        kernel = self.model.get_layer(LOGITS_LAYER).kernel

        def class_activation_map(images, class_indices):
            """CAM (Zhou et al. 2016), which equals Grad-CAM (Selvaraju et al. 2017) here:
            the class score is the Dense kernel applied to the spatial mean of these
            activations, so each channel's gradient is its kernel weight / positions at
            every position. The score is the pre-softmax logit: the softmax's gradient
            vanishes for confident classes and mixes in the others."""
            layers = self._network.outputs(images)
            activations, logits = layers[EXPLAIN_LAYER], layers[LOGITS_LAYER]
            chosen = _chosen_classes(logits, class_indices)
            weights = keras.ops.take(keras.ops.transpose(keras.ops.cast(kernel, "float32")), chosen, axis=0)
            weighted = keras.ops.einsum("nhwc,nc->nhw", keras.ops.cast(activations, "float32"), weights)
            return keras.ops.relu(weighted)

        return compile_inference(self._network.variables, class_activation_map)


class FoldedNetwork:
    """The model's chain of layers for inference, each Conv2D followed by BatchNormalization
    computed as one convolution. Inference-mode BatchNorm is a per-channel affine map,
    which folds into the convolution's kernel and bias: kernel * s and
    (bias - mean) * s + beta, with s = gamma / sqrt(variance + epsilon). One operation
    instead of two per convolution, which the backends' CPU kernels fuse with the ReLU
    after it (bench/RESULTS.md, section backends). The folded kernels live in variables of
    their own, in each convolution's compute dtype, set by `refold()` from the model's
    weights: at construction, and again whenever those weights change."""

    def __init__(self, model):
        self.model = model
        self.layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        for previous, layer in zip(self.layers, self.layers[1:], strict=False):
            if layer.input is not previous.output:
                raise ValueError(f"Predictor needs a chain of layers (as build_model makes); {layer.name!r} "
                                 f"does not read the output of {previous.name!r}")
        self.folded = {}  # convolution name -> (its BatchNormalization, kernel variable, bias variable)
        for convolution, batch_norm in zip(self.layers, self.layers[1:], strict=False):
            if isinstance(convolution, keras.layers.Conv2D) and isinstance(batch_norm, keras.layers.BatchNormalization):
                dtype = convolution.compute_dtype
                kernel = keras.Variable(np.zeros(convolution.kernel.shape, np.float32), dtype=dtype, trainable=False,
                                        name=f"{convolution.name}_folded_kernel")
                bias = keras.Variable(np.zeros(convolution.filters, np.float32), dtype=dtype, trainable=False,
                                      name=f"{convolution.name}_folded_bias")
                self.folded[convolution.name] = (batch_norm, kernel, bias)
        self.refold()

    @property
    def variables(self):
        """Every variable `outputs` reads: the model's and the folded ones."""
        return [*self.model.variables, *(v for _, kernel, bias in self.folded.values() for v in (kernel, bias))]

    def refold(self):
        """Recomputes the folded kernels and biases from the model's current weights."""
        def value(variable):
            return keras.ops.convert_to_numpy(variable).astype(np.float32)

        for name, (batch_norm, kernel, bias) in self.folded.items():
            convolution = self.model.get_layer(name)
            scale = 1.0 / np.sqrt(value(batch_norm.moving_variance) + batch_norm.epsilon)
            if batch_norm.scale:
                scale *= value(batch_norm.gamma)
            shift = -value(batch_norm.moving_mean)
            if convolution.use_bias:
                shift += value(convolution.bias)
            shift *= scale
            if batch_norm.center:
                shift += value(batch_norm.beta)
            kernel.assign(value(convolution.kernel) * scale)
            bias.assign(shift)

    def outputs(self, images):
        """{layer name: output} in inference mode, computed once through the chain; a
        BatchNormalization layer's entry is its folded convolution's output."""
        outputs, x, skip = {}, images, False
        for layer in self.layers:
            if skip:
                skip = False
                continue
            if layer.name in self.folded:
                batch_norm, kernel, bias = self.folded[layer.name]
                x = keras.ops.conv(keras.ops.cast(x, layer.compute_dtype), kernel, strides=layer.strides,
                                   padding=layer.padding, data_format=layer.data_format,
                                   dilation_rate=layer.dilation_rate) + bias
                outputs[batch_norm.name] = x
                skip = True
                continue
            x = layer(x)
            outputs[layer.name] = x
        return outputs


def gradcam_by_autodiff(model, layer_name, images, class_indices):
    """Grad-CAM (Selvaraju et al. 2017) at any layer, through the backend's autodiff: the
    layer's activations weighted by the spatial mean of the class logit's gradient,
    summed over channels and ReLU'd. float32 images (N, 32, 32, 3) and class indices (N,)
    (-1: the top class) -> float32 (N, h, w). Images are independent (inference-mode
    BatchNorm), so the gradient of the sum holds each image's own gradient."""
    layer = model.get_layer(layer_name)
    logits_output = model.get_layer(LOGITS_LAYER).output
    activations, logits = keras.Model(model.input, [layer.output, logits_output])(images, training=False)
    activations = keras.ops.convert_to_numpy(keras.ops.cast(activations, "float32"))
    chosen = keras.ops.convert_to_numpy(_chosen_classes(logits, keras.ops.convert_to_tensor(class_indices)))
    head = keras.Model(layer.output, logits_output)
    one_hot = keras.ops.convert_to_tensor(np.eye(len(CLASSES), dtype=np.float32)[chosen])
    gradients = input_gradient(
        lambda tensor: keras.ops.cast(head(tensor, training=False), "float32") * one_hot, activations
    )
    weights = gradients.mean(axis=(1, 2), keepdims=True)
    return np.maximum((weights * activations).sum(axis=-1), 0.0).astype(np.float32)


def _peaks(layers, name):
    """float32 (N, C): each channel's largest value over positions in layer `name` of the
    computed `layers`, or the pooled features themselves (FEATURES_LAYER)."""
    value = layers[name] if name == FEATURES_LAYER else keras.ops.max(layers[name], axis=(1, 2))
    return keras.ops.cast(value, "float32")


def _chosen_classes(logits, class_indices):
    """Each image's requested class, or its top class where the request is -1."""
    top = keras.ops.cast(keras.ops.argmax(logits, axis=1), "int32")
    return keras.ops.where(class_indices < 0, top, keras.ops.cast(class_indices, "int32"))


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
