"""What the Inside the network tab shows that needs more than one input: the test images that
activate each channel most, and the feature-space map (a PCA of the pooled features), both
computed over the test set by `python -m cifar_demo.evaluate --write-top-activations` into
a compact file beside the weights; and the contributions of the pooled features to a logit.
NumPy only, no Gradio.

The file (`<name>.inside.npz`, artifacts.inside_path_for) holds, for every one of the nine
convolutions (3 x 64 + 3 x 128 + 3 x 256 channels), the indices and peak values of the TOP_K
test images per channel, and the pixels of each distinct image among them once,
PNG-compressed as one strip: many channels share their favourite images, so the 12,096
(channel, image) pairs of the shipped weights need far fewer distinct images (the file's
size is in the README). The feature map's projection (the first PCA_COMPONENTS principal axes of
the 10,000 test images' pooled features), every test image's 2-D position and label, and
the stored images' positions in PCA_COMPONENTS dimensions (their nearest-neighbour search
space) complete it; the neighbours of an input are found among the stored images.

A model trained in a session gets the same views from its run's test evaluation, in the
same pass (RunningTopK, TrainedTopActivations), with indices in place of pixels.
"""

import io
from dataclasses import dataclass

import keras
import numpy as np
from PIL import Image

from cifar_demo.artifacts import UNREADABLE_NPZ
from cifar_demo.model import FEATURES_LAYER, LOGITS_LAYER

TOP_K = 9                   # test images per channel
PCA_COMPONENTS = 32         # the nearest-neighbour search space; the map shows the first two
NEIGHBOURS = 8
FORMAT_VERSION = 1


def top_layers(layer_names):
    """The layers whose top images are stored: every convolution's ReLU output."""
    return [name for name in layer_names if name.endswith("_relu")]


def top_k_per_channel(peaks, k=TOP_K):
    """(N, C) peak values -> (indices (C, k), values (C, k)): per channel, the k images with
    the largest values, largest first; ties go to the lower image index."""
    peaks = np.asarray(peaks, dtype=np.float32)
    if peaks.ndim != 2 or not 1 <= k <= len(peaks):
        raise ValueError(f"top_k_per_channel needs (N, C) peaks with N >= k = {k}, got shape {peaks.shape}")
    order = np.argsort(-peaks, axis=0, kind="stable")[:k].T
    return order, np.take_along_axis(peaks.T, order, axis=1)


@dataclass(frozen=True)
class TrainedTopActivations:
    """TopActivations of a session's model, kept during its run's test evaluation (the same
    pass, RunningTopK and trained_top_activations): each stored channel's top test images
    as indices and peaks, no pixels (those stay in the dataset the run used), and the
    feature map, every tested image in the PCA search space (1.3 MB for 10,000 images)."""

    layers: tuple               # top_layers of the model
    indices: dict               # layer -> int (C, <= TOP_K) test-image indices, largest peak first
    values: dict                # layer -> float32 (C, <= TOP_K) their peaks
    tested: int                 # the first `tested` test images (fewer when the run was stopped)
    mean: np.ndarray            # float32 (D,): the tested images' pooled features' mean
    axes: np.ndarray            # float32 (components, D)
    explained: np.ndarray       # float32 (components,)
    points: np.ndarray          # float32 (tested, components): each tested image on the axes

    def nearest(self, features, count=NEIGHBOURS):
        """(test-image indices, distances) of the tested images nearest to one input's
        pooled features, in the PCA search space; nearest first."""
        distances = np.linalg.norm(self.points - project(features, self.mean, self.axes), axis=1)
        order = np.argsort(distances, kind="stable")[:count]
        return order, distances[order]


class RunningTopK:
    """Each channel's top k images over batches that arrive in order, keeping only k
    candidates per channel between batches, so a whole test set never sits in memory. The
    result equals top_k_per_channel over all the batches at once, ties included: the kept
    candidates precede the new batch (lower indices) and the sort is stable."""

    def __init__(self, layers, k=TOP_K):
        if not k >= 1:
            raise ValueError(f"RunningTopK keeps k >= 1 images per channel, got k = {k!r}")
        self.layers, self.k, self.seen = tuple(layers), k, 0
        self._indices, self._values = {}, {}

    def add(self, peaks):
        """Takes the next batch's {layer: (n, C) peaks} (Predictor.channel_peaks); other layers are ignored."""
        counts = {len(peaks[name]) for name in self.layers}
        if len(counts) != 1:
            raise ValueError(f"RunningTopK.add needs one batch of images for every layer, got sizes {sorted(counts)}")
        count = counts.pop()
        if count == 0:
            return
        for name in self.layers:
            values = np.asarray(peaks[name], np.float32)
            indices = np.broadcast_to(np.arange(self.seen, self.seen + count)[:, None], values.shape)
            if name in self._values:
                values = np.concatenate([self._values[name].T, values])
                indices = np.concatenate([self._indices[name].T, indices])
            order, self._values[name] = top_k_per_channel(values, min(self.k, len(values)))
            self._indices[name] = np.take_along_axis(indices.T, order, axis=1)
        self.seen += count

    def kept(self):
        """(indices, values): {layer: (C, min(k, seen))} each, largest first."""
        return dict(self._indices), dict(self._values)


def trained_top_activations(running, features):
    """TrainedTopActivations from a RunningTopK fed every tested image and those images'
    pooled features (N, D), in the same order."""
    features = np.asarray(features, np.float32)
    if len(features) != running.seen:
        raise ValueError(f"trained_top_activations needs the features of the {running.seen} images the top images "
                         f"were chosen from, got {len(features)}")
    mean, axes, explained = fit_pca(features)
    return TrainedTopActivations(running.layers, *running.kept(), running.seen, mean, axes, explained,
                                 project(features, mean, axes))


def fit_pca(features, components=PCA_COMPONENTS):
    """Principal axes of (N, D) features by SVD of the centred data: (mean (D,), axes
    (components, D), explained variance ratio (components,)). Each axis is signed so that its
    largest entry is positive (SVD's sign is arbitrary)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"fit_pca needs (N, D) features with N >= 2, got shape {features.shape}")
    components = min(int(components), *features.shape)
    mean = features.mean(axis=0)
    _, singular, axes = np.linalg.svd(features - mean, full_matrices=False)
    axes = axes[:components]
    axes *= np.where(axes[np.arange(components), np.argmax(np.abs(axes), axis=1)] < 0, -1.0, 1.0)[:, None]
    variance = singular**2
    return mean.astype(np.float32), axes.astype(np.float32), (variance[:components] / variance.sum()).astype(np.float32)


def project(features, mean, axes):
    """(N, D) or (D,) features -> their coordinates on the principal axes."""
    return (np.asarray(features, dtype=np.float32) - mean) @ axes.T


def dense_weights(predictor):
    """The final Dense layer's kernel (C, classes) and bias (classes,) as float32 arrays."""
    dense = predictor.model.get_layer(LOGITS_LAYER)
    return tuple(keras.ops.convert_to_numpy(variable).astype(np.float32) for variable in (dense.kernel, dense.bias))


def contributions(predictor, features, class_index):
    """(per-feature contributions (C,), bias) to the logit of `class_index`: the Dense
    kernel's column times each pooled feature. Their sum plus the bias is the logit."""
    kernel, bias = dense_weights(predictor)
    return np.asarray(features, np.float32) * kernel[:, class_index], float(bias[class_index])


def kernels_of(predictor, layer, channel):
    """The 3x3 kernels (3, 3, inputs) of one output channel of the convolution before a ReLU
    layer (`stage1_conv1_relu` -> stage1_conv1's kernel), as the model holds them."""
    conv = predictor.model.get_layer(layer.removesuffix("_relu"))
    return keras.ops.convert_to_numpy(conv.kernel).astype(np.float32)[:, :, :, channel]


@dataclass
class TopActivations:
    """The precomputed file's contents (see the module docstring)."""

    layers: list                # layer names with stored top images
    indices: dict               # layer -> int (C, TOP_K) test-image indices
    values: dict                # layer -> float32 (C, TOP_K) their peak activations
    image_indices: np.ndarray   # int (M,), sorted: the test images whose pixels are stored
    images: np.ndarray          # uint8 (M, 32, 32, 3)
    mean: np.ndarray            # float32 (D,): the pooled features' mean
    axes: np.ndarray            # float32 (PCA_COMPONENTS, D)
    explained: np.ndarray       # float32 (PCA_COMPONENTS,): share of the variance on each axis
    map_points: np.ndarray      # float32 (N, 2): every test image on the first two axes
    map_labels: np.ndarray      # uint8 (N,)
    image_points: np.ndarray    # float32 (M, PCA_COMPONENTS): the stored images in the search space
    image_labels: np.ndarray    # uint8 (M,)
    weights_sha256: str = ""

    def image(self, index):
        """The pixels of test image `index` (one of the stored ones)."""
        position = np.searchsorted(self.image_indices, index)
        if position >= len(self.image_indices) or self.image_indices[position] != index:
            raise KeyError(f"test image {index} is not stored")
        return self.images[position]

    def nearest(self, features, count=NEIGHBOURS):
        """(positions in image_indices, distances) of the stored images nearest to one input's
        pooled features, in the PCA search space; nearest first."""
        point = project(features, self.mean, self.axes)
        distances = np.linalg.norm(self.image_points - point, axis=1)
        order = np.argsort(distances, kind="stable")[:count]
        return order, distances[order]

    def save(self, path):
        strip = io.BytesIO()
        Image.fromarray(self.images.reshape(-1, 32, 3)).save(strip, "PNG", optimize=True)
        np.savez(
            path, version=np.int32(FORMAT_VERSION), layers=np.array(self.layers),
            top_indices=np.concatenate([self.indices[name] for name in self.layers]).astype(np.int16),
            top_values=np.concatenate([self.values[name] for name in self.layers]).astype(np.float16),
            channels=np.array([len(self.indices[name]) for name in self.layers], np.int32),
            image_indices=self.image_indices.astype(np.int16), images_png=np.frombuffer(strip.getvalue(), np.uint8),
            mean=self.mean, axes=self.axes, explained=self.explained,
            map_points=self.map_points.astype(np.float16), map_labels=self.map_labels.astype(np.uint8),
            image_points=self.image_points.astype(np.float16), image_labels=self.image_labels.astype(np.uint8),
            weights_sha256=np.array(self.weights_sha256),
        )

    @classmethod
    def load(cls, path):
        """Reads a file written by save(); ValueError saying what is wrong otherwise."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                if int(stored["version"]) != FORMAT_VERSION:
                    raise ValueError(f"format version {int(stored['version'])}, this app reads {FORMAT_VERSION}")
                layers = [str(name) for name in stored["layers"]]
                bounds = np.cumsum([0, *stored["channels"]])
                indices = stored["top_indices"].astype(np.int64)
                values = stored["top_values"].astype(np.float32)
                image_indices = stored["image_indices"].astype(np.int64)
                strip = np.asarray(Image.open(io.BytesIO(stored["images_png"].tobytes())).convert("RGB"))
                loaded = cls(
                    layers, {name: indices[bounds[i]:bounds[i + 1]] for i, name in enumerate(layers)},
                    {name: values[bounds[i]:bounds[i + 1]] for i, name in enumerate(layers)},
                    image_indices, strip.reshape(-1, 32, 32, 3), stored["mean"], stored["axes"], stored["explained"],
                    stored["map_points"].astype(np.float32), stored["map_labels"],
                    stored["image_points"].astype(np.float32), stored["image_labels"], str(stored["weights_sha256"]))
        except FileNotFoundError:
            raise ValueError(f"{path} not found (python -m cifar_demo.evaluate --write-top-activations)") from None
        except UNREADABLE_NPZ as error:
            raise ValueError(f"{path} is not a readable top-activations file: {error}") from None
        if len(loaded.images) != len(image_indices):
            raise ValueError(f"{path} is not a readable top-activations file: {len(loaded.images)} images for "
                             f"{len(image_indices)} indices")
        return loaded


def compute_top_activations(predictor, images, labels, weights_sha256="", progress=None):
    """One pass of the test `images` through `predictor` (Predictor.channel_peaks, in chunks
    so `progress(done, total)` can report) -> TopActivations."""
    images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
    if len(images) < TOP_K or len(images) != len(labels):
        raise ValueError(f"need at least {TOP_K} labelled images, got {len(images)} images, {len(labels)} labels")
    chunk = 1024
    parts = []
    for start in range(0, len(images), chunk):
        parts.append(predictor.channel_peaks(images[start : start + chunk]))
        if progress is not None:
            progress(min(start + chunk, len(images)), len(images))
    peaks = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    layers = top_layers(list(peaks))
    indices, values = {}, {}
    for name in layers:
        indices[name], values[name] = top_k_per_channel(peaks[name])
    image_indices = np.unique(np.concatenate([indices[name].ravel() for name in layers]))
    features = peaks[FEATURES_LAYER]
    mean, axes, explained = fit_pca(features)
    points = project(features, mean, axes)
    return TopActivations(layers, indices, values, image_indices, images[image_indices], mean, axes, explained,
                          points[:, :2], labels.astype(np.uint8), points[image_indices],
                          labels[image_indices].astype(np.uint8), weights_sha256)
