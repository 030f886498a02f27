""""Probably none of these", "looks like a drawing", and the training images nearest an input.

A classifier spreads all its belief over its ten classes even for a face, a doodle or
noise. This module scores each 32x32 model input from what the network computes
(higher means less like CIFAR-10) and flags inputs above a threshold fitted on CIFAR-10
images it never trained on. The scores compared (`python -m cifar_demo.ood --fit`):

- max_probability: 1 - the largest calibrated class probability (Hendrycks & Gimpel 2017);
- energy: -T * logsumexp(logits / T) (Liu et al. 2020);
- knn: the distance from the L2-normalised pooled features to their k-th nearest
  neighbour among a bank of training images' (Sun et al. 2022); with a bank of B of the
  50,000 training images, k = 50 * B / 50,000 (the paper's k for the full set, scaled by
  the sampling ratio as it does);
- mahalanobis, stage2_mahalanobis, early_mahalanobis: the smallest squared Mahalanobis
  distance to a class mean (shared covariance; Lee et al. 2018) of the pooled features,
  of the second stage's and of the first stage's per-channel means and standard
  deviations (colour and texture statistics): the network at three depths;
- gram: Gram-matrix deviations (Sastry & Oore 2020): each stage's Gram matrices of
  orders 1 and 2 against their smallest and largest values on training images of the
  predicted class, each layer's deviation divided by its mean on held-out images;
- combinations: the sum of their components, each standardised on held-out images.

A detector scores an input and its mirror image and flags on the mean of the two
(`views` 2, the default since 1 Dec 2026): CIFAR-10's photos are as likely mirrored, so the
mean keeps their scores and averages out part of one view's noise, and every score separates
CIFAR-10 from the development photos better (model card). The chosen score's threshold
flags TARGET_FLAG_RATE of held-out training images.

Drawings are unlike photos too, but they are no reason to give up: a logistic regression
on the first stage's colour and texture statistics, fitted on generated stroke drawings
(devsets/drawings.py) against CIFAR-10 images and generated noise, says "looks like a
drawing", and `assess` then reports that instead of "none of these".

`nearest` finds the training images of the bank closest to an input in the kNN score's
feature space: the evidence by example shown beside each answer; their pixels and labels
ship in a file of their own (TrainingBank) beside the weights.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cifar_demo import CLASSES
from cifar_demo.artifacts import (
    SHIPPED_WEIGHTS,
    UNREADABLE_NPZ,
    config_path_for,
    neighbours_path_for,
    ood_path_for,
)
from cifar_demo.data import load_cifar10
from cifar_demo.drawing_style import BRUSH_SIZE, CANVAS_SIZE
from cifar_demo.images import check_model_input, resize_for_model
from cifar_demo.metrics import softmax
from cifar_demo.model import EARLY_LAYER, EXPLAIN_LAYER, FEATURES_LAYER, LOGITS_LAYER
from cifar_demo.predictor import Predictor
from cifar_demo.training import TrainConfig

NUM_CLASSES = len(CLASSES)
STAGE2_LAYER = "stage2_conv3_relu"
GRAM_LAYERS = (EARLY_LAYER, STAGE2_LAYER, EXPLAIN_LAYER)  # each stage's last activations
GRAM_ORDERS = (1, 2)
SINGLE_SCORES = ("max_probability", "energy", "knn", "mahalanobis", "stage2_mahalanobis", "early_mahalanobis",
                 "gram")
COMBINED_SCORES = {
    "combined_mahalanobis": ("mahalanobis", "early_mahalanobis"),
    "all_mahalanobis": ("mahalanobis", "stage2_mahalanobis", "early_mahalanobis"),
    "knn+early_mahalanobis": ("knn", "early_mahalanobis"),
    "knn+stage2_mahalanobis": ("knn", "stage2_mahalanobis"),
    "knn+gram": ("knn", "gram"),
    "knn+energy": ("knn", "energy"),
    # three families at once: where the features lie, the colour and texture, the classifier's confidence
    "knn+early_mahalanobis+energy": ("knn", "early_mahalanobis", "energy"),
}
SCORES = SINGLE_SCORES + tuple(COMBINED_SCORES)
NEEDS = {"max_probability": "logits", "energy": "logits", "knn": "features", "mahalanobis": "features",
         "stage2_mahalanobis": "stage2", "early_mahalanobis": "early", "gram": "gram"}
FIT_COMMAND = "python -m cifar_demo.ood --fit"
TARGET_FLAG_RATE = 0.05      # share of held-out CIFAR-10 images the threshold flags
VIEWS = 2                   # a score is the mean over the input and its mirror image (1: the input alone)
# Training images whose features the kNN score compares with, and whose pixels the app
# shows as nearest neighbours (a random tenth of the training set). Measured with the
# first weights (knn + early Mahalanobis; model card, "Probably none of these"): banks of
# 1,000 / 2,000 / 5,000 / 10,000 flag 79.8 / 79.8 / 80.7 / 81.6% of the foreign photos at
# 5% of held-out images, AUROC in-class vs foreign 0.990 / 0.994 / 1.000 / 1.000; 5,000 is
# the smallest within a point of 10,000, and its images are 14 MB compressed (10,000: 28).
BANK_SIZE = 5000
KNN_K_FULL = 50              # Sun et al.'s k for all 50,000 CIFAR-10 training images
STATISTICS_IMAGES = 10_000   # training images the class means, covariances and Gram bounds come from
NEIGHBOURS = 8               # training images shown beside an answer
STROKE_WIDTHS = (BRUSH_SIZE - 8, BRUSH_SIZE + 8)  # pixels on that canvas: around the app's brush
# Ridge added to the shared covariance, as a share of its mean variance: dead ReLU
# channels (tiny models) make it singular; at this size the shipped model's distances
# change by well under 1%.
COVARIANCE_RIDGE = 1e-4
# A value's deviation from an empty Gram bound: as far outside as a value twice its bound.
EMPTY_BOUND_DEVIATION = 1.0
# Ridge of the drawing detector's logistic regression (on standardised statistics).
DRAWING_RIDGE = 1.0
GENERATED_SETS = ("uniform noise", "solid colours", "drawings", "blurred noise")
GENERATED_PER_SET = 1000     # images per generated set when fitting


DESCRIPTIONS = {
    "max_probability": "one minus the largest class probability",
    "energy": "the energy of the logits",
    "knn": "the distance of the pooled features to their nearest training images'",
    "mahalanobis": "the Mahalanobis distance of the pooled features to the nearest class mean",
    "stage2_mahalanobis": "the Mahalanobis distance of the second stage's statistics to the nearest class mean",
    "early_mahalanobis": "the Mahalanobis distance of the first stage's colour and texture statistics to the "
                         "nearest class mean",
    "gram": "how far each stage's Gram matrices stray from the training images' range",
}


def describe_score(name):
    """A person's words for score `name`: its components joined by "plus"."""
    return " plus ".join(DESCRIPTIONS[part] for part in components(name))


def logsumexp(values):
    values = np.asarray(values, dtype=np.float64)
    peak = values.max(axis=1)
    return peak + np.log(np.exp(values - peak[:, None]).sum(axis=1))


def knn_k(bank_size):
    """The k of the kNN score for a bank of `bank_size` training images."""
    return max(1, round(KNN_K_FULL * bank_size / 50_000))


def normalise(features):
    """Rows scaled to unit L2 norm (an all-zero row stays zero)."""
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def nearest_in_bank(features, bank, count):
    """(indices (N, count), distances (N, count)): for each row of `features`, the `count`
    rows of `bank` (both L2-normalised) nearest in Euclidean distance, nearest first."""
    features, bank = np.asarray(features, np.float32), np.asarray(bank, np.float32)
    if not 1 <= count <= len(bank):
        raise ValueError(f"count must be between 1 and the bank's {len(bank)} images, got {count}")
    indices, distances = [np.empty((0, count), np.int64)], [np.empty((0, count), np.float32)]
    for start in range(0, len(features), 1024):
        squared = np.maximum(2.0 - 2.0 * features[start : start + 1024] @ bank.T, 0.0)  # |a - b|^2 of unit rows
        part = np.argpartition(squared, count - 1, axis=1)[:, :count]
        order = np.take_along_axis(squared, part, axis=1).argsort(axis=1, kind="stable")
        chosen = np.take_along_axis(part, order, axis=1)
        indices.append(chosen)
        distances.append(np.sqrt(np.take_along_axis(squared, chosen, axis=1)))
    return np.concatenate(indices), np.concatenate(distances)


def knn_distance(features, bank, k):
    """The distance from each L2-normalised row of `features` to its k-th nearest row of the
    L2-normalised `bank` (Sun et al. 2022)."""
    return nearest_in_bank(features, bank, k)[1][:, -1]


def fit_feature_statistics(features, labels, num_classes=NUM_CLASSES):
    """Class means (K, C) and the inverse of the shared within-class covariance (C, C)
    of features (N, C) with labels (N,): what a Mahalanobis score needs."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features (N, C) and labels (N,) must match, got {features.shape} and {labels.shape}")
    missing = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
    if missing:
        raise ValueError(f"every class needs at least one image; none of class {missing}")
    means = np.stack([features[labels == k].mean(axis=0) for k in range(num_classes)])
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    covariance += COVARIANCE_RIDGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    return means.astype(np.float32), np.linalg.inv(covariance).astype(np.float32)


def mahalanobis_distance(features, means, precision):
    """The smallest squared Mahalanobis distance of each row of features (N, C) to a class
    mean (K, C) under one precision matrix (C, C)."""
    features = np.asarray(features, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    distances = [((features - mean) @ precision * (features - mean)).sum(axis=1)
                 for mean in np.asarray(means, np.float64)]
    return np.min(distances, axis=0)


def gram_values(activations, order):
    """Sastry & Oore's Gram matrix of order p of each image's activations (N, H, W, C):
    ((F^p)^T F^p / HW)^(1/p) over positions, its upper triangle as (N, C(C+1)/2)."""
    activations = np.asarray(activations, dtype=np.float32)
    count, height, width, channels = activations.shape
    powered = activations.reshape(count, height * width, channels) ** order
    gram = np.matmul(powered.transpose(0, 2, 1), powered) / (height * width)
    rows, columns = np.triu_indices(channels)
    return np.abs(gram[:, rows, columns]) ** (1.0 / order)


def gram_deviation(values, low, high):
    """Each row's summed deviation from [low, high] (its predicted class's bounds, same
    shape), relative to the bound it crosses (Sastry & Oore 2020). An empty bound (a class
    no fitting image was predicted as: low +inf, high -inf) counts every value once, as
    EMPTY_BOUND_DEVIATION: a finite amount, so that the score stays a number."""
    with np.errstate(invalid="ignore"):  # inf / inf where a bound is empty, replaced below
        below = np.where(values < low, (low - values) / (np.abs(low) + 1e-6), 0.0)
        above = np.where(values > high, (values - high) / (np.abs(high) + 1e-6), 0.0)
    empty = ~(np.isfinite(low) & np.isfinite(high))
    return np.where(empty, EMPTY_BOUND_DEVIATION, below + above).sum(axis=1)


def _gram_keys():
    return [(layer, order) for layer in GRAM_LAYERS for order in GRAM_ORDERS]


def measure(predictor, images, needs, statistics=None):
    """What the scores in `needs` (values of NEEDS) read of uint8 images (N, 32, 32, 3):
    {"logits", "features", "early"} from one pass of predict_features, "stage2" (the second
    stage's per-channel means and standard deviations) and "gram" (the deviations per
    layer and order, which need the fitted bounds in `statistics`) from more passes."""
    needs = set(needs)
    measured = {}
    if needs & {"logits", "features", "early"}:
        outputs = predictor.predict_features(images)
        measured.update(logits=outputs.logits, features=outputs.features, early=outputs.early_statistics)
    if "stage2" in needs:
        def channel_statistics(layers):
            activations = layers[STAGE2_LAYER]
            return {"stage2": np.concatenate([activations.mean(axis=(1, 2)), activations.std(axis=(1, 2))], axis=1)}

        measured.update(predictor.predict_reduced(images, (STAGE2_LAYER,), channel_statistics))
    if "gram" in needs:
        if statistics is None or "gram_low" not in statistics:
            raise ValueError("the gram score needs the Gram bounds of training images (python -m cifar_demo.ood --fit)")

        def deviations(layers):
            predicted = layers[LOGITS_LAYER].argmax(axis=1)
            columns = []
            for index, (layer, order) in enumerate(_gram_keys()):
                values = gram_values(layers[layer], order)
                low = statistics["gram_low"][index][predicted, : values.shape[1]]
                high = statistics["gram_high"][index][predicted, : values.shape[1]]
                columns.append(gram_deviation(values, low, high))
            return {"gram": np.stack(columns, axis=1)}

        measured.update(predictor.predict_reduced(images, (*GRAM_LAYERS, LOGITS_LAYER), deviations))
    return measured


def fit_gram_bounds(predictor, images):
    """{"gram_low", "gram_high"}: (layers * orders, 10, D) smallest and largest Gram values
    per predicted class over `images` (a class never predicted keeps empty bounds, +inf and
    -inf, which flag every value), D the largest layer's triangle, shorter layers padded."""
    keys = _gram_keys()
    width = max(c * (c + 1) // 2 for c in (predictor.model.get_layer(layer).output.shape[-1] for layer in GRAM_LAYERS))

    def bounds(layers):
        predicted = layers[LOGITS_LAYER].argmax(axis=1)
        low = np.full((1, len(keys), NUM_CLASSES, width), np.inf, np.float32)
        high = np.full((1, len(keys), NUM_CLASSES, width), -np.inf, np.float32)
        for index, (layer, order) in enumerate(keys):
            values = gram_values(layers[layer], order)
            for label in np.unique(predicted):
                chosen = values[predicted == label]
                low[0, index, label, : values.shape[1]] = chosen.min(axis=0)
                high[0, index, label, : values.shape[1]] = chosen.max(axis=0)
        return {"low": low, "high": high}

    found = predictor.predict_reduced(images, (*GRAM_LAYERS, LOGITS_LAYER), bounds)
    return {"gram_low": found["low"].min(axis=0), "gram_high": found["high"].max(axis=0)}


def raw_score(name, measured, statistics, temperature=1.0):
    """One of SINGLE_SCORES for each image of `measured` (see measure); higher means less
    like CIFAR-10."""
    if name == "max_probability":
        return 1.0 - softmax(np.asarray(measured["logits"]) / temperature).max(axis=1)
    if name == "energy":
        return -temperature * logsumexp(np.asarray(measured["logits"]) / temperature)
    if statistics is None:
        raise ValueError(f"the {name} score needs statistics fitted on training images ({FIT_COMMAND})")
    if name == "knn":
        bank = statistics["bank_features"]
        return knn_distance(normalise(measured["features"]), bank, knn_k(len(bank)))
    if name == "gram":
        return (measured["gram"] / statistics["gram_scale"]).sum(axis=1)
    prefix = {"mahalanobis": "pooled", "stage2_mahalanobis": "stage2", "early_mahalanobis": "early"}[name]
    values = measured[NEEDS[name]]
    return mahalanobis_distance(values, statistics[f"{prefix}_means"], statistics[f"{prefix}_precision"])


def components(name):
    """The single scores a score sums (itself when it is one)."""
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; the scores are: {', '.join(SCORES)}")
    return COMBINED_SCORES.get(name, (name,))


def compute_scores(name, measured, statistics=None, temperature=1.0):
    """Score `name` (see SCORES) of every image of `measured` as float32 (N,); a
    combination sums its components, each standardised by its held-out mean and standard
    deviation (statistics["scale_<component>"])."""
    parts = components(name)
    if len(parts) == 1:
        return np.asarray(raw_score(name, measured, statistics, temperature), dtype=np.float32)
    if statistics is None:
        raise ValueError(f"the {name} score needs statistics fitted on training images ({FIT_COMMAND})")
    total = 0.0
    for part in parts:
        mean, std = statistics[f"scale_{part}"]
        total = total + (raw_score(part, measured, statistics, temperature) - mean) / std
    return np.asarray(total, dtype=np.float32)


def check_views(views):
    if views not in (1, 2):
        raise ValueError(f"views must be 1 (the input) or 2 (the input and its mirror image), got {views!r}")


def measure_views(predictor, images, needs, statistics, views):
    """measure() of uint8 images (N, 32, 32, 3) and, with `views` 2, of their mirror images:
    a list of one or two measurements, the images as given first."""
    check_views(views)
    images = np.asarray(images)
    return [measure(predictor, batch, needs, statistics) for batch in (images, images[:, :, ::-1])[:views]]


def view_scores(name, measured_views, statistics=None, temperature=1.0):
    """Score `name` of each image averaged over its views (measure_views' list): float32 (N,)."""
    return np.mean([compute_scores(name, measured, statistics, temperature) for measured in measured_views],
                   axis=0).astype(np.float32)


def statistics_needed(name):
    """The prefixes of the statistics arrays score `name` reads."""
    prefixes = {"knn": ["bank_features"], "mahalanobis": ["pooled_"], "stage2_mahalanobis": ["stage2_"],
                "early_mahalanobis": ["early_"], "gram": ["gram_"]}
    parts = components(name)
    needed = [prefix for part in parts for prefix in prefixes.get(part, [])]
    return needed + ([f"scale_{part}" for part in parts] if len(parts) > 1 else [])


class DrawingDetector:
    """Logistic regression on the standardised first-stage statistics: the probability that
    an input is a drawing rather than a photo."""

    def __init__(self, mean, scale, weights, bias):
        self.mean, self.scale = np.asarray(mean, np.float64), np.asarray(scale, np.float64)
        self.weights, self.bias = np.asarray(weights, np.float64), float(bias)

    @classmethod
    def fit(cls, drawings, photos, ridge=DRAWING_RIDGE, steps=50):
        """From early statistics (N, E) of drawings and of photos (and other non-drawings):
        Newton's method on the L2-regularised log-loss, the two sides weighted equally."""
        features = np.concatenate([drawings, photos]).astype(np.float64)
        targets = np.concatenate([np.ones(len(drawings)), np.zeros(len(photos))])
        sample_weight = np.where(targets == 1, 0.5 / len(drawings), 0.5 / len(photos))
        mean, scale = features.mean(axis=0), np.maximum(features.std(axis=0), 1e-6)
        design = np.concatenate([(features - mean) / scale, np.ones((len(features), 1))], axis=1)
        theta = np.zeros(design.shape[1])
        penalty = np.full(design.shape[1], ridge / len(features))
        penalty[-1] = 0.0
        for _ in range(steps):
            probability = 1 / (1 + np.exp(-np.clip(design @ theta, -50, 50)))
            gradient = design.T @ (sample_weight * (probability - targets)) + penalty * theta
            hessian = (design * (sample_weight * probability * (1 - probability))[:, None]).T @ design
            step = np.linalg.solve(hessian + np.diag(penalty) + 1e-9 * np.eye(len(theta)), gradient)
            theta -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(mean, scale, theta[:-1], theta[-1])

    def probability(self, early_statistics):
        logits = ((np.asarray(early_statistics, np.float64) - self.mean) / self.scale) @ self.weights + self.bias
        return (1 / (1 + np.exp(-np.clip(logits, -50, 50)))).astype(np.float32)

    def arrays(self):
        return {"drawing_mean": self.mean, "drawing_scale": self.scale, "drawing_weights": self.weights,
                "drawing_bias": np.array(self.bias)}


class OodDetector:
    """Scores 32x32 model inputs with the predictor's own network and flags those above a
    threshold; says whether an input looks like a drawing; finds its nearest training
    images. The statistics belong to the weights they were fitted with."""

    unavailable_reason = None  # the check runs (UnavailableDetector holds why it cannot)

    def __init__(self, predictor, score_name, threshold, statistics=None, record=None, drawing=None, views=VIEWS):
        needed = statistics_needed(score_name)  # ValueError for an unknown score
        check_views(views)
        statistics = dict(statistics or {})
        missing = [prefix for prefix in needed if not any(key.startswith(prefix) for key in statistics)]
        if missing:
            raise ValueError(f"the {score_name} score needs statistics fitted on training images ({', '.join(missing)} "
                             "missing; python -m cifar_demo.ood --fit writes them)")
        pooled = predictor.model.get_layer(FEATURES_LAYER).output.shape[-1]
        early = 2 * predictor.model.get_layer(EARLY_LAYER).output.shape[-1]
        stage2 = 2 * predictor.model.get_layer(STAGE2_LAYER).output.shape[-1]
        # Shapes the model's widths fix (None: any length), checked here rather than failing
        # inside the first request's assess.
        expected = {"pooled_means": (NUM_CLASSES, pooled), "pooled_precision": (pooled, pooled),
                    "bank_features": (None, pooled), "early_means": (NUM_CLASSES, early),
                    "early_precision": (early, early), "stage2_means": (NUM_CLASSES, stage2),
                    "stage2_precision": (stage2, stage2)}
        gram_keys = len(_gram_keys())
        triangle = max(c * (c + 1) // 2 for c in (predictor.model.get_layer(layer).output.shape[-1]
                                                  for layer in GRAM_LAYERS))
        expected.update({"gram_low": (gram_keys, NUM_CLASSES, triangle),
                         "gram_high": (gram_keys, NUM_CLASSES, triangle), "gram_scale": (gram_keys,),
                         "bank_indices": (len(statistics.get("bank_features", ())),),
                         **{key: (2,) for key in statistics if key.startswith("scale_")}})
        shapes = {key: np.shape(statistics[key]) for key in expected if key in statistics}
        if drawing is not None:
            for part in ("mean", "scale", "weights"):
                expected[f"drawing_{part}"], shapes[f"drawing_{part}"] = (early,), np.shape(getattr(drawing, part))
        for key, shape in shapes.items():
            if len(shape) != len(expected[key]) or any(
                    want is not None and want != got for want, got in zip(expected[key], shape, strict=True)):
                wanted = "x".join("N" if want is None else str(want) for want in expected[key])
                raise ValueError(f"the statistics ({key}) have shape {'x'.join(map(str, shape))} but this model "
                                 f"needs {wanted}: they belong to other weights (refit with {FIT_COMMAND})")
        if "bank_features" in statistics:
            statistics["bank_features"] = bank_features(statistics["bank_features"])
        self.predictor = predictor
        self.score_name = score_name
        self.threshold = float(threshold)
        self.statistics = statistics
        self.drawing = drawing
        self.views = views
        self.record = dict(record or {})  # what the fit measured (flag rates, AUROCs), for people

    @classmethod
    def load(cls, predictor, path=None):
        """Reads score, threshold, statistics and drawing detector (the shipped weights' when
        `path` is None)."""
        path = Path(path) if path is not None else ood_path_for(SHIPPED_WEIGHTS)
        if not path.is_file():
            raise ValueError(f"no out-of-distribution statistics at {path} "
                             "(python -m cifar_demo.ood --fit writes them)")
        try:
            with np.load(path) as archive:
                record = json.loads(str(archive["record"])) if "record" in archive else {}
                drawing = None
                if "drawing_weights" in archive:
                    drawing = DrawingDetector(archive["drawing_mean"], archive["drawing_scale"],
                                              archive["drawing_weights"], float(archive["drawing_bias"]))
                statistics = {key: archive[key] for key in archive.files if key not in (
                    "score_name", "threshold", "record", "views") and not key.startswith("drawing_")}
                views = int(archive["views"]) if "views" in archive else 1  # files fitted before views were
                return cls(predictor, str(archive["score_name"]), float(archive["threshold"]), statistics, record,
                           drawing, views)
        except UNREADABLE_NPZ as error:
            raise ValueError(f"{path} is not an out-of-distribution statistics file: {error}") from None

    def save(self, path, **record):
        """Writes score name, threshold, the statistics the score and `nearest` need and the
        drawing detector, plus any `record` values (the measured rates) as JSON for people."""
        arrays = {"score_name": np.array(self.score_name), "threshold": np.array(self.threshold, dtype=np.float64),
                  "views": np.array(self.views), "record": np.array(json.dumps({**self.record, **record}))}
        keep = (*statistics_needed(self.score_name), "bank_")
        arrays.update({key: value for key, value in self.statistics.items() if key.startswith(keep)})
        if "bank_features" in arrays:  # float16 halves the file; bank_features() restores the unit norm
            arrays["bank_features"] = arrays["bank_features"].astype(np.float16)
        if self.drawing is not None:
            arrays.update(self.drawing.arrays())
        np.savez_compressed(path, **arrays)

    def _needs(self):
        needs = {NEEDS[part] for part in components(self.score_name)}
        return needs | ({"early"} if self.drawing is not None else set())

    def score(self, pixels):
        """uint8 (N, 32, 32, 3) -> float32 (N,) scores, averaged over the views; higher means
        less like CIFAR-10."""
        measured = measure_views(self.predictor, pixels, self._needs(), self.statistics, self.views)
        return view_scores(self.score_name, measured, self.statistics, self.predictor.temperature)

    def is_out_of_distribution(self, pixels):
        """uint8 (N, 32, 32, 3) -> bool (N,): True where the app says "probably none of
        these" (as assess: the score over the threshold, and not a drawing)."""
        return self.verdicts(pixels)[2]

    def verdicts(self, pixels):
        """uint8 (N, 32, 32, 3) -> (scores, drawing probabilities (NaN without a drawing
        detector), out_of_distribution, looks_like_drawing): a drawing, flagged or not,
        gets the drawing notice rather than "none of these"."""
        measured = measure_views(self.predictor, pixels, self._needs(), self.statistics, self.views)
        scores = view_scores(self.score_name, measured, self.statistics, self.predictor.temperature)
        if self.drawing is None:
            drawing = np.full(len(scores), np.nan, np.float32)
        else:  # fitted on the drawings as drawn
            drawing = self.drawing.probability(measured[0]["early"])
        looks_like_drawing = drawing > 0.5
        # A score that is not a number (statistics that do not fit these inputs) is flagged:
        # the check fails closed rather than calling the input a CIFAR-10 photo.
        over = (scores > self.threshold) | ~np.isfinite(scores)
        return scores, drawing, over & ~looks_like_drawing, looks_like_drawing

    def assess(self, pixels):
        """One uint8 (32, 32, 3) model input -> what the UI shows: the score, the threshold,
        the verdict ("none of these"), and whether it looks like a drawing (with its probability)."""
        pixels = check_model_input(pixels, "assess")
        scores, drawing, flagged, looks_like_drawing = self.verdicts(pixels[None])
        return {"score": float(scores[0]), "threshold": self.threshold, "out_of_distribution": bool(flagged[0]),
                "looks_like_drawing": bool(looks_like_drawing[0]), "drawing_probability": float(drawing[0])}

    def nearest(self, pixels, count=NEIGHBOURS):
        """One uint8 (32, 32, 3) model input -> (bank positions (count,), distances (count,)):
        the training images of the bank nearest to it in the kNN score's space (Euclidean
        distance of L2-normalised pooled features), nearest first."""
        pixels = check_model_input(pixels, "nearest")
        if "bank_features" not in self.statistics:
            raise ValueError("these out-of-distribution statistics hold no bank of training features "
                             "(python -m cifar_demo.ood --fit writes one)")
        features = normalise(self.predictor.predict_features(pixels[None]).features)
        indices, distances = nearest_in_bank(features, self.statistics["bank_features"], count)
        return indices[0], distances[0]


class UnavailableDetector:
    """Stands in for the OodDetector when its file is missing or unreadable, so the app keeps
    answering: no input is flagged or called a drawing, and `unavailable_reason` is shown
    where the verdict would be. Callers ask `unavailable_reason`, not isinstance: the app
    hands its tabs a Lazy that forwards attributes."""

    score_name = "unavailable"
    threshold = float("nan")

    def __init__(self, predictor, reason):
        self.predictor, self.unavailable_reason = predictor, str(reason)
        self.record, self.statistics = {}, {}

    def score(self, pixels):
        return np.full(len(pixels), np.nan, dtype=np.float32)

    def verdicts(self, pixels):
        nothing = np.zeros(len(pixels), dtype=bool)
        return self.score(pixels), self.score(pixels), nothing, nothing.copy()

    def is_out_of_distribution(self, pixels):
        return self.verdicts(pixels)[2]

    def assess(self, pixels):
        check_model_input(pixels, "assess")
        return {"score": float("nan"), "threshold": self.threshold, "out_of_distribution": False,
                "looks_like_drawing": False, "drawing_probability": float("nan"),
                "unavailable": self.unavailable_reason}

    def nearest(self, pixels, count=NEIGHBOURS):
        raise ValueError(self.unavailable_reason)


class TrainingBank:
    """The training images of the kNN bank, with labels and their indices in CIFAR-10's
    training set: what the app shows as nearest neighbours (`python -m cifar_demo.ood --fit`
    writes them beside the weights; they must match the detector's bank)."""

    def __init__(self, images, labels, indices):
        self.images, self.labels, self.indices = np.asarray(images), np.asarray(labels), np.asarray(indices)
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (32, 32, 3) or not (
                len(self.images) == len(self.labels) == len(self.indices)):
            raise ValueError(f"a training bank is uint8 images (N, 32, 32, 3) with N labels and indices, got "
                             f"{self.images.dtype} {self.images.shape}, {self.labels.shape}, {self.indices.shape}")
        if len(self.labels) and not (0 <= self.labels.min() and self.labels.max() < NUM_CLASSES):
            raise ValueError(f"training bank labels must lie in 0..{NUM_CLASSES - 1}")

    @classmethod
    def load(cls, path=None, detector=None):
        """Reads the bank (the shipped one when `path` is None); with `detector`, checks it
        is the bank the detector's features were computed on."""
        path = Path(path) if path is not None else neighbours_path_for(SHIPPED_WEIGHTS)
        if detector is not None and detector.unavailable_reason:
            raise ValueError(detector.unavailable_reason)
        if not path.is_file():
            raise ValueError(f"no training images for the nearest neighbours at {path} "
                             "(python -m cifar_demo.ood --fit writes them)")
        try:
            with np.load(path) as archive:
                bank = cls(archive["images"], archive["labels"], archive["indices"])
        except UNREADABLE_NPZ as error:
            raise ValueError(f"{path} is not a file of nearest-neighbour training images: {error}") from None
        if detector is not None and not np.array_equal(detector.statistics.get("bank_indices"), bank.indices):
            raise ValueError(f"{path} holds other training images than the detector's bank "
                             "(refit with python -m cifar_demo.ood --fit)")
        return bank

    def save_if_changed(self, path):
        """Writes the bank unless `path` holds the same one already: refitting after a
        retrain, with the same seed, then leaves the 14 MB file (and the repository) alone."""
        path = Path(path)
        try:
            same = TrainingBank.load(path) if path.is_file() else None
        except ValueError:  # unreadable: written anew
            same = None
        if same is not None and all(np.array_equal(getattr(same, key), getattr(self, key))
                                    for key in ("images", "labels", "indices")):
            return False
        np.savez_compressed(path, images=self.images, labels=self.labels, indices=self.indices)
        return True


def uniform_noise(count, seed=0):
    """Every pixel and channel uniform in 0..255."""
    return np.random.default_rng([seed, 1]).integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def solid_colours(count, seed=0):
    """One uniformly random RGB colour per image (an empty or filled canvas, a blank photo)."""
    colours = np.random.default_rng([seed, 2]).integers(0, 256, size=(count, 1, 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(colours, (count, 32, 32, 3)))


def drawings(count, seed=0):
    """Black strokes on a white CANVAS_SIZE canvas (lines, circles, scribbles), shrunk the
    way the app shrinks its drawing canvas: abstract doodles (devsets/drawings.py makes
    drawings of the ten classes)."""
    rng = np.random.default_rng([seed, 3])
    images = np.empty((count, 32, 32, 3), dtype=np.uint8)
    for index in range(count):
        canvas = Image.new("RGB", (CANVAS_SIZE, CANVAS_SIZE), "white")
        pen = ImageDraw.Draw(canvas)
        for _ in range(rng.integers(1, 5)):
            width = int(rng.integers(*STROKE_WIDTHS))
            kind = rng.integers(3)
            if kind == 0:  # a straight line
                pen.line([tuple(p) for p in rng.integers(20, CANVAS_SIZE - 20, size=(2, 2)).tolist()], "black", width)
            elif kind == 1:  # a circle or ellipse outline
                corner = rng.integers(10, CANVAS_SIZE // 2, size=2)
                size = rng.integers(60, CANVAS_SIZE // 2 + 20, size=2)
                pen.ellipse([*corner.tolist(), *(corner + size).tolist()], outline="black", width=width)
            else:  # a scribble: a random walk
                steps = rng.normal(0, 25, size=(int(rng.integers(5, 25)), 2)).cumsum(axis=0)
                points = np.clip(steps + rng.integers(60, CANVAS_SIZE - 60, size=2), 5, CANVAS_SIZE - 5)
                pen.line([tuple(p) for p in points.tolist()], "black", width, joint="curve")
        images[index] = np.asarray(resize_for_model(canvas))
    return images


def blurred_noise(count, seed=0):
    """Uniform noise blurred into smooth colour blobs and stretched back to full contrast:
    noise without the pixel-level texture that makes plain noise easy to spot."""
    rng = np.random.default_rng([seed, 4])
    images = np.empty((count, 32, 32, 3), dtype=np.uint8)
    for index in range(count):
        noise = Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8))
        blurred = np.asarray(noise.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 4.0)))), dtype=np.float32)
        low, high = blurred.min(), blurred.max()
        images[index] = np.rint((blurred - low) / max(high - low, 1.0) * 255).astype(np.uint8)
    return images


def generated_sets(count=GENERATED_PER_SET, seed=0):
    """{name: uint8 (count, 32, 32, 3)} for each of GENERATED_SETS."""
    makers = (uniform_noise, solid_colours, drawings, blurred_noise)
    return {name: make(count, seed) for name, make in zip(GENERATED_SETS, makers, strict=True)}


def auroc(in_scores, out_scores):
    """Area under the ROC curve of telling `out_scores` (positives) from `in_scores` by
    thresholding: the chance a random OOD input scores above a random CIFAR-10 one (ties
    count half)."""
    in_scores = np.asarray(in_scores, dtype=np.float64)
    out_scores = np.asarray(out_scores, dtype=np.float64)
    _, inverse, counts = np.unique(np.concatenate([in_scores, out_scores]), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # 1-based, tied values share their mean rank
    positive_rank_sum = ranks[len(in_scores):].sum()
    return float((positive_rank_sum - len(out_scores) * (len(out_scores) + 1) / 2) / (len(in_scores) * len(out_scores)))


def bank_features(stored):
    """The kNN bank as scored: the stored float16 rows back in float32, L2-normalised again
    (float16 rounding moves their norm by up to 1e-3, which the distance formula would feel)."""
    return normalise(np.asarray(stored, dtype=np.float32))


def fit_statistics(predictor, images, labels, bank_size=BANK_SIZE, with_gram=True):
    """Every score's statistics from training `images` with their `labels`: class means and
    precisions at three depths, Gram bounds (`with_gram`), and the kNN bank (the first
    `bank_size` images' normalised pooled features, float16 as shipped)."""
    measured = measure(predictor, images, {"logits", "features", "early", "stage2"})
    statistics = {}
    for prefix, key in (("pooled", "features"), ("stage2", "stage2"), ("early", "early")):
        statistics[f"{prefix}_means"], statistics[f"{prefix}_precision"] = fit_feature_statistics(measured[key], labels)
    if with_gram:
        statistics.update(fit_gram_bounds(predictor, images))
    bank_size = min(bank_size, len(images))
    statistics["bank_features"] = bank_features(normalise(measured["features"][:bank_size]).astype(np.float16))
    return statistics


def fit(predictor, data, config, count=GENERATED_PER_SET, seed=0, dev_sets=None, select_on=(), drawing_sets=None,
        statistics_images=STATISTICS_IMAGES, bank_size=BANK_SIZE, test_images=None, scores=SCORES, views=VIEWS,
        log=print):
    """Fits every score's statistics on the run's training images (a random
    `statistics_images` of them, the kNN bank a random `bank_size` of those), scores the
    held-out images, the official test set (its first `test_images`, all when None), the
    generated sets and `dev_sets` ({name: images}) with each of `scores` (averaged over
    `views`, see measure_views), and picks the one
    whose worst AUROC between the test set and a set named in `select_on` is best (without
    any: between the held-out images and each generated set); its threshold flags
    TARGET_FLAG_RATE of the held-out images. The Gram scores cost ten times the others
    (Gram matrices of every stage of every image on the CPU). `drawing_sets`, (drawings to
    fit the drawing detector on, drawings to check it on), fit the drawing detector.
    Returns (detector, table, bank): table[score] holds the threshold, AUROCs and flag
    rates, table["drawing detector"] the share of each set it calls a drawing."""
    scores = list(scores)
    for name in scores:
        components(name)  # ValueError for an unknown score
    train_indices, val_indices = config.held_out_split(len(data.x_train))
    if len(val_indices) == 0:
        raise ValueError("the run held out no training images to fit the threshold on")
    chosen = np.sort(np.random.default_rng([seed, 5]).permutation(train_indices)[:statistics_images])
    bank_order = np.random.default_rng([seed, 6]).permutation(len(chosen))  # the bank: a random part of them
    chosen = chosen[bank_order]
    log(f"statistics of {len(chosen):,} training images (the first {min(bank_size, len(chosen)):,} the kNN bank) ...")
    with_gram = any("gram" in components(name) for name in scores)
    statistics = fit_statistics(predictor, data.x_train[chosen], data.y_train[chosen], bank_size, with_gram)
    bank_indices = chosen[: len(statistics["bank_features"])]
    statistics["bank_indices"] = bank_indices
    bank = TrainingBank(data.x_train[bank_indices], data.y_train[bank_indices].astype(np.uint8), bank_indices)
    test = data.x_test if test_images is None else data.x_test[:test_images]
    inputs = {"held-out": data.x_train[val_indices], "CIFAR-10 test": test, **generated_sets(count, seed),
              **(dev_sets or {})}
    needs = {NEEDS[part] for name in scores for part in components(name)} | {"early", "logits", "features"}
    measured = {}
    for name, images in inputs.items():
        log(f"scoring {name} ({len(images):,} images) ...")
        measured[name] = measure_views(predictor, images, needs, statistics, views)
    held_out = measured["held-out"][0]  # the parts' scales and the Gram bounds' from the images as given
    if "gram" in needs:
        statistics["gram_scale"] = np.maximum(held_out["gram"].mean(axis=0), 1e-12)
    for part in {part for name in scores for part in components(name)}:
        values = raw_score(part, held_out, statistics, predictor.temperature)
        statistics[f"scale_{part}"] = np.array([values.mean(), max(values.std(), 1e-12)])
    compared = [*GENERATED_SETS, *(dev_sets or {})]
    table = {}
    for score_name in scores:
        values_of = {name: view_scores(score_name, values, statistics, predictor.temperature)
                     for name, values in measured.items()}
        threshold = float(np.quantile(values_of["held-out"], 1 - TARGET_FLAG_RATE))
        table[score_name] = {
            "threshold": threshold,
            "auroc_vs_test": {name: auroc(values_of["CIFAR-10 test"], values_of[name]) for name in compared},
            "selection_auroc": (min(auroc(values_of["CIFAR-10 test"], values_of[name]) for name in select_on)
                                if select_on else min(auroc(values_of["held-out"], values_of[name])
                                                      for name in GENERATED_SETS)),
            "flag_rate": {name: float(np.mean(values > threshold)) for name, values in values_of.items()},
        }
    best = max(scores, key=lambda name: table[name]["selection_auroc"])
    drawing = None
    if drawing_sets is not None:
        fit_drawings, check_drawings = drawing_sets
        log(f"drawing detector: {len(fit_drawings):,} drawings against the held-out images and generated noise ...")
        negatives = np.concatenate([held_out["early"], measured["uniform noise"][0]["early"],
                                    measured["blurred noise"][0]["early"]])
        drawing = DrawingDetector.fit(predictor.predict_features(fit_drawings).early_statistics, negatives)
        check = predictor.predict_features(check_drawings).early_statistics
        table["drawing detector"] = {
            "share called a drawing": {
                "check drawings": float((drawing.probability(check) > 0.5).mean()),
                **{name: float((drawing.probability(values[0]["early"]) > 0.5).mean())
                   for name, values in measured.items()},
            }}
    detector = OodDetector(predictor, best, table[best]["threshold"], statistics, drawing=drawing, views=views)
    return detector, table, bank


def format_table(table, chosen, select_on=(), views=VIEWS):
    """The comparison as text: AUROCs, flag rates, the drawing detector's shares, and which
    score was chosen on what (`select_on` and `views`, as given to fit)."""
    scores = [name for name in table if name in SCORES]
    compared = list(table[scores[0]]["auroc_vs_test"])
    flagged = list(table[scores[0]]["flag_rate"])
    width = max(15, *(len(name) + 2 for name in flagged))
    name_width = max(24, *(len(score) + 2 for score in scores))
    lines = [("each score the mean over the input and its mirror image" if views == 2 else "each score of the input "
              "alone") + "; AUROC, CIFAR-10 test images vs each other set (1.0 = perfectly separated):",
             f"  {'score':<{name_width}}" + "".join(f"{name:>{width}}" for name in compared)]
    lines += [f"  {score:<{name_width}}"
              + "".join(f"{table[score]['auroc_vs_test'][name]:>{width}.4f}" for name in compared) for score in scores]
    lines += [f"share flagged at each score's threshold ({TARGET_FLAG_RATE:.0%} of held-out training images):",
              f"  {'score':<{name_width}}{'threshold':>11}" + "".join(f"{name:>{width}}" for name in flagged)]
    lines += [f"  {score:<{name_width}}{table[score]['threshold']:>11.4g}"
              + "".join(f"{table[score]['flag_rate'][name]:>{width}.1%}" for name in flagged) for score in scores]
    if "drawing detector" in table:
        shares = table["drawing detector"]["share called a drawing"]
        lines.append("drawing detector, share called a drawing: "
                     + ", ".join(f"{name} {share:.1%}" for name, share in shares.items()))
    against = (f"of the test images against each of {', '.join(select_on)}" if select_on
               else "of the held-out training images against each generated set")
    lines.append(f"chosen: {chosen} (the best worst-case AUROC {against})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.ood",
        description="Fit and report the out-of-distribution ('probably none of these') score of a model, its "
        "drawing detector and the bank of training images shown as nearest neighbours.",
    )
    parser.add_argument("--fit", action="store_true", required=True,
                        help="score the held-out training images, the test set, generated inputs and the development "
                        "sets (devsets/, needs requirements-dev.txt) with every score, print AUROCs and flag rates, "
                        "and write the best score, the drawing detector and the bank beside the weights")
    parser.add_argument("--weights", default=None, help="a .weights.h5 file (default: the shipped weights)")
    parser.add_argument("--data", default=None,
                        help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--count", type=int, default=GENERATED_PER_SET, help="images per generated set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated sets and the training subsets")
    parser.add_argument("--statistics-images", type=int, default=STATISTICS_IMAGES,
                        help="training images the statistics are fitted on")
    parser.add_argument("--bank-size", type=int, default=BANK_SIZE, help="training images in the kNN bank")
    parser.add_argument("--with-gram", action="store_true",
                        help="also compare the Gram-matrix scores (about ten times the time of all the others)")
    parser.add_argument("--drawings-per-class", type=int, default=30,
                        help="generated drawings per class to fit the drawing detector on (as many again check it)")
    parser.add_argument("--views", type=int, choices=(1, 2), default=VIEWS,
                        help="2: each score is the mean over the input and its mirror image (separates better, model "
                        "card); 1: the input alone")
    args = parser.parse_args(argv)

    weights = Path(args.weights) if args.weights else SHIPPED_WEIGHTS
    try:
        try:
            from devsets import drawings as devset_drawings  # dev-only: the repository's devsets/
            from devsets import photos as devset_photos
        except ImportError as error:
            raise ValueError(f"the development sets are not importable ({error}): run from the repository root "
                             "after pip install -r requirements-dev.txt") from None
        config_path = config_path_for(weights)
        if not config_path.is_file():
            raise ValueError(f"{config_path} not found: it says which training images the run held out")
        config = TrainConfig.from_dict(json.loads(config_path.read_text()))
        data = load_cifar10(args.data)
        predictor = Predictor.load(weights)
        dev_sets = {f"photos {group}": devset_photos.build(group).images for group in devset_photos.GROUPS}
        dev_sets["class drawings"] = devset_drawings.build(10, seed=args.seed + 1)[0]
        drawing_sets = (devset_drawings.build(args.drawings_per_class, seed=args.seed + 100)[0],
                        devset_drawings.build(args.drawings_per_class, seed=args.seed + 200)[0])
        scores = [name for name in SCORES if args.with_gram or "gram" not in components(name)]
        select_on = ("photos foreign", *GENERATED_SETS)
        detector, table, bank = fit(predictor, data, config, args.count, args.seed, dev_sets,
                                    select_on, drawing_sets, args.statistics_images,
                                    args.bank_size, scores=scores, views=args.views,
                                    log=lambda line: print(line, file=sys.stderr))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(table, detector.score_name, select_on, args.views))
    out = ood_path_for(weights)
    detector.save(out, **table[detector.score_name], drawing=table.get("drawing detector"),
                  generated_per_set=args.count, seed=args.seed, bank_size=len(bank.indices))
    bank.save_if_changed(neighbours_path_for(weights))
    print(f"wrote {out} ({detector.score_name} score, threshold {detector.threshold:.4g}) and "
          f"{neighbours_path_for(weights)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
