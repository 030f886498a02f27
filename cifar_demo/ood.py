""""Probably none of these": a score of how unlike CIFAR-10 an input is, and its threshold.

A classifier spreads all its belief over its ten classes even for a face, a doodle or
noise. This module scores each 32x32 model input from what the network computes
(higher means less like CIFAR-10) and flags inputs above a threshold fitted on CIFAR-10
images it never trained on. The scores compared:

- max_probability: 1 - the largest calibrated class probability (Hendrycks & Gimpel 2017);
- energy: -T * logsumexp(logits / T), low for inputs the network responds to strongly
  (Liu et al. 2020);
- mahalanobis: the smallest squared Mahalanobis distance from the pooled features the
  classifier reads to a class mean, with class means and one shared covariance from the
  training images (Lee et al. 2018);
- early_mahalanobis: the same for the first stage's per-channel activation means and
  standard deviations, i.e. colour and texture statistics;
- combined_mahalanobis: the sum of those two distances, each standardised on held-out
  CIFAR-10 images. Deep features alone miss inputs the classifier maps near a class
  (drawings: black strokes on white look like a blurry airplane or ship to it); early
  statistics alone miss natural-looking textures that are no object. Measured
  (`python -m cifar_demo.ood --fit`), the sum separates every generated set best.

CLI: `python -m cifar_demo.ood --fit` computes all of them on the run's held-out training
images, the official test set and generated inputs (noise, solid colours, drawings,
blurred noise), prints each score's AUROC and flag rates, and writes the statistics,
the best score and its threshold beside the weights (weights/cifar10_cnn.ood.npz);
`OodDetector.load` reads them.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cifar_demo import CLASSES
from cifar_demo.artifacts import SHIPPED_WEIGHTS, config_path_for, ood_path_for
from cifar_demo.data import load_cifar10, split_training_set
from cifar_demo.images import resize_for_model
from cifar_demo.metrics import softmax
from cifar_demo.model import EARLY_LAYER, FEATURES_LAYER
from cifar_demo.predictor import Predictor
from cifar_demo.training import TrainConfig

NUM_CLASSES = len(CLASSES)
SCORES = ("max_probability", "energy", "mahalanobis", "early_mahalanobis", "combined_mahalanobis")
TARGET_FLAG_RATE = 0.05      # share of held-out CIFAR-10 images the threshold flags
CANVAS_SIDE = 320            # pixels: the app's drawing canvas
STROKE_WIDTHS = (14, 30)     # pixels on that canvas: around the app's 22 px brush
# Ridge added to the shared covariance, as a share of its mean variance: dead ReLU
# channels (tiny models) make it singular; at this size the shipped model's distances
# change by well under 1%.
COVARIANCE_RIDGE = 1e-4
GENERATED_SETS = ("uniform noise", "solid colours", "drawings", "blurred noise")
GENERATED_PER_SET = 1000     # images per generated set when fitting


def logsumexp(values):
    values = np.asarray(values, dtype=np.float64)
    peak = values.max(axis=1)
    return peak + np.log(np.exp(values - peak[:, None]).sum(axis=1))


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


@dataclass
class FeatureStatistics:
    """The two feature spaces' class means and precision matrices, and each distance's
    mean and standard deviation on held-out CIFAR-10 images (to add them on one scale)."""

    means: np.ndarray              # (10, C) of the pooled features
    precision: np.ndarray          # (C, C)
    early_means: np.ndarray        # (10, E) of the early statistics
    early_precision: np.ndarray    # (E, E)
    scales: np.ndarray             # (4,): mean, std of the pooled distance; same of the early one

    @classmethod
    def fit(cls, train_outputs, train_labels, held_out_outputs):
        """From Predictor.predict_features of the training images (with their labels) and
        of held-out images."""
        means, precision = fit_feature_statistics(train_outputs.features, train_labels)
        early_means, early_precision = fit_feature_statistics(train_outputs.early_statistics, train_labels)
        pooled = mahalanobis_distance(held_out_outputs.features, means, precision)
        early = mahalanobis_distance(held_out_outputs.early_statistics, early_means, early_precision)
        scales = np.array([pooled.mean(), max(pooled.std(), 1e-12), early.mean(), max(early.std(), 1e-12)])
        return cls(means, precision, early_means, early_precision, scales.astype(np.float64))

    def arrays(self):
        return {name: np.asarray(getattr(self, name)) for name in self.__dataclass_fields__}


def compute_scores(name, outputs, temperature=1.0, statistics=None):
    """One score (see SCORES) for each image of Predictor.predict_features' `outputs`;
    higher means less like CIFAR-10. The Mahalanobis scores need FeatureStatistics."""
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; the scores are: {', '.join(SCORES)}")
    if name == "max_probability":
        return (1.0 - softmax(np.asarray(outputs.logits) / temperature).max(axis=1)).astype(np.float32)
    if name == "energy":
        return (-temperature * logsumexp(np.asarray(outputs.logits) / temperature)).astype(np.float32)
    if statistics is None:
        raise ValueError(f"the {name} score needs feature statistics (class means and precision matrices)")
    if name == "mahalanobis":
        return mahalanobis_distance(outputs.features, statistics.means, statistics.precision).astype(np.float32)
    early = mahalanobis_distance(outputs.early_statistics, statistics.early_means, statistics.early_precision)
    if name == "early_mahalanobis":
        return early.astype(np.float32)
    pooled = mahalanobis_distance(outputs.features, statistics.means, statistics.precision)
    pooled_mean, pooled_std, early_mean, early_std = statistics.scales
    return ((pooled - pooled_mean) / pooled_std + (early - early_mean) / early_std).astype(np.float32)


class OodDetector:
    """Scores 32x32 model inputs with the predictor's own network and flags those above a
    threshold. The statistics belong to the weights they were fitted with."""

    def __init__(self, predictor, score_name, threshold, statistics=None, record=None):
        if score_name not in SCORES:
            raise ValueError(f"unknown score {score_name!r}; the scores are: {', '.join(SCORES)}")
        if "mahalanobis" in score_name and statistics is None:
            raise ValueError(f"the {score_name} score needs feature statistics (class means and precision matrices)")
        if statistics is not None:
            widths = (predictor.model.get_layer(FEATURES_LAYER).output.shape[-1],
                      2 * predictor.model.get_layer(EARLY_LAYER).output.shape[-1])
            fitted = (statistics.means.shape[1], statistics.early_means.shape[1])
            if fitted != widths:
                raise ValueError(
                    f"the statistics are for {fitted[0]} pooled and {fitted[1]} early features but the model has "
                    f"{widths[0]} and {widths[1]}: they belong to other weights "
                    "(refit with python -m cifar_demo.ood --fit)"
                )
        self.predictor = predictor
        self.score_name = score_name
        self.threshold = float(threshold)
        self.statistics = statistics
        self.record = dict(record or {})  # what the fit measured (flag rates, AUROCs), for people

    @classmethod
    def load(cls, predictor, path=None):
        """Reads score, threshold and statistics (the shipped weights' when `path` is None)."""
        path = Path(path) if path is not None else ood_path_for(SHIPPED_WEIGHTS)
        if not path.is_file():
            raise ValueError(f"no out-of-distribution statistics at {path} "
                             "(python -m cifar_demo.ood --fit writes them)")
        try:
            with np.load(path) as archive:
                statistics = None
                if "means" in archive:
                    statistics = FeatureStatistics(*(archive[name] for name in FeatureStatistics.__dataclass_fields__))
                record = json.loads(str(archive["record"])) if "record" in archive else {}
                return cls(predictor, str(archive["score_name"]), float(archive["threshold"]), statistics, record)
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"{path} is not an out-of-distribution statistics file: {error}") from None

    def save(self, path, **record):
        """Writes score name, threshold and statistics, plus any `record` values (the measured
        rates) as JSON for people reading the file."""
        arrays = {"score_name": np.array(self.score_name), "threshold": np.array(self.threshold, dtype=np.float64),
                  "record": np.array(json.dumps({**self.record, **record}))}
        if self.statistics is not None:
            arrays.update(self.statistics.arrays())
        np.savez_compressed(path, **arrays)

    def score(self, pixels):
        """uint8 (N, 32, 32, 3) -> float32 (N,) scores; higher means less like CIFAR-10."""
        return compute_scores(self.score_name, self.predictor.predict_features(pixels), self.predictor.temperature,
                              self.statistics)

    def is_out_of_distribution(self, pixels):
        """uint8 (N, 32, 32, 3) -> bool (N,): True where the score exceeds the threshold."""
        return self.score(pixels) > self.threshold

    def assess(self, pixels):
        """One uint8 (32, 32, 3) model input -> what the UI shows: the score, the threshold
        and the verdict."""
        pixels = np.asarray(pixels)
        if pixels.shape != (32, 32, 3):
            raise ValueError(f"assess takes one uint8 image of shape (32, 32, 3), got {pixels.dtype} {pixels.shape}")
        score = float(self.score(pixels[None])[0])
        return {"score": score, "threshold": self.threshold, "out_of_distribution": score > self.threshold}


def uniform_noise(count, seed=0):
    """Every pixel and channel uniform in 0..255."""
    return np.random.default_rng([seed, 1]).integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def solid_colours(count, seed=0):
    """One uniformly random RGB colour per image (an empty or filled canvas, a blank photo)."""
    colours = np.random.default_rng([seed, 2]).integers(0, 256, size=(count, 1, 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(colours, (count, 32, 32, 3)))


def drawings(count, seed=0):
    """Black strokes on a white CANVAS_SIDE canvas (lines, circles, scribbles), shrunk the
    way the app shrinks its drawing canvas: what a person sketching on it sends."""
    rng = np.random.default_rng([seed, 3])
    images = np.empty((count, 32, 32, 3), dtype=np.uint8)
    for index in range(count):
        canvas = Image.new("RGB", (CANVAS_SIDE, CANVAS_SIDE), "white")
        pen = ImageDraw.Draw(canvas)
        for _ in range(rng.integers(1, 5)):
            width = int(rng.integers(*STROKE_WIDTHS))
            kind = rng.integers(3)
            if kind == 0:  # a straight line
                pen.line([tuple(p) for p in rng.integers(20, CANVAS_SIDE - 20, size=(2, 2)).tolist()], "black", width)
            elif kind == 1:  # a circle or ellipse outline
                corner = rng.integers(10, CANVAS_SIDE // 2, size=2)
                size = rng.integers(60, CANVAS_SIDE // 2 + 20, size=2)
                pen.ellipse([*corner.tolist(), *(corner + size).tolist()], outline="black", width=width)
            else:  # a scribble: a random walk
                steps = rng.normal(0, 25, size=(int(rng.integers(5, 25)), 2)).cumsum(axis=0)
                points = np.clip(steps + rng.integers(60, CANVAS_SIDE - 60, size=2), 5, CANVAS_SIDE - 5)
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


def fit(predictor, data, config, count=GENERATED_PER_SET, seed=0, log=print):
    """Fits the feature statistics on the run's training images, scores everything with
    every score, picks the score with the best worst-case AUROC against the generated sets
    on the held-out images, and sets its threshold so that TARGET_FLAG_RATE of those
    held-out images are flagged. Returns (detector, table) where table[score] holds the
    AUROCs against the test set and the flag rates on every set."""
    train_indices, val_indices = split_training_set(len(data.x_train), config.val_size, config.train_size, config.seed)
    if len(val_indices) == 0:
        raise ValueError("the run held out no training images to fit the threshold on")
    log(f"features of {len(train_indices):,} training images ...")
    train_outputs = predictor.predict_features(data.x_train[train_indices])
    inputs = {"held-out": data.x_train[val_indices], "CIFAR-10 test": data.x_test, **generated_sets(count, seed)}
    outputs = {}
    for name, images in inputs.items():
        log(f"scoring {name} ({len(images):,} images) ...")
        outputs[name] = predictor.predict_features(images)
    statistics = FeatureStatistics.fit(train_outputs, data.y_train[train_indices], outputs["held-out"])
    table = {}
    for score_name in SCORES:
        scores = {name: compute_scores(score_name, values, predictor.temperature, statistics)
                  for name, values in outputs.items()}
        threshold = float(np.quantile(scores["held-out"], 1 - TARGET_FLAG_RATE))
        table[score_name] = {
            "threshold": threshold,
            "held_out_auroc_worst": min(auroc(scores["held-out"], scores[name]) for name in GENERATED_SETS),
            "flag_rate": {name: float(np.mean(values > threshold)) for name, values in scores.items()},
            "auroc_vs_test": {name: auroc(scores["CIFAR-10 test"], scores[name]) for name in GENERATED_SETS},
        }
    best = max(SCORES, key=lambda name: table[name]["held_out_auroc_worst"])
    return OodDetector(predictor, best, table[best]["threshold"], statistics), table


def format_table(table, chosen):
    names = ["CIFAR-10 test", *GENERATED_SETS]
    lines = ["AUROC, CIFAR-10 test images vs each generated set (1.0 = perfectly separated):",
             f"  {'score':<22}" + "".join(f"{name:>15}" for name in GENERATED_SETS)]
    lines += [f"  {score:<22}" + "".join(f"{row['auroc_vs_test'][name]:>15.4f}" for name in GENERATED_SETS)
              for score, row in table.items()]
    lines += [f"share flagged at each score's threshold ({TARGET_FLAG_RATE:.0%} of held-out training images):",
              f"  {'score':<22}{'threshold':>11}" + "".join(f"{name:>15}" for name in names)]
    lines += [f"  {score:<22}{row['threshold']:>11.4g}" + "".join(f"{row['flag_rate'][name]:>15.2%}" for name in names)
              for score, row in table.items()]
    lines.append(f"chosen: {chosen} (best worst-case AUROC on the held-out images vs the generated sets)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.ood",
        description="Fit and report the out-of-distribution ('probably none of these') score of a model.",
    )
    parser.add_argument("--fit", action="store_true", required=True,
                        help="score the held-out training images, the test set and generated inputs with every "
                        "score, print AUROCs and flag rates, and write the best score beside the weights")
    parser.add_argument("--weights", default=None, help="a .weights.h5 file (default: the shipped weights)")
    parser.add_argument("--data", default=None,
                        help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--count", type=int, default=GENERATED_PER_SET, help="images per generated set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated sets")
    args = parser.parse_args(argv)

    weights = Path(args.weights) if args.weights else SHIPPED_WEIGHTS
    try:
        config_path = config_path_for(weights)
        if not config_path.is_file():
            raise ValueError(f"{config_path} not found: it says which training images the run held out")
        config = TrainConfig.from_dict(json.loads(config_path.read_text()))
        data = load_cifar10(args.data)
        predictor = Predictor.load(weights)
        detector, table = fit(predictor, data, config, args.count, args.seed,
                              log=lambda line: print(line, file=sys.stderr))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(table, detector.score_name))
    out = ood_path_for(weights)
    detector.save(out, **table[detector.score_name], generated_per_set=args.count, seed=args.seed)
    print(f"wrote {out}: {detector.score_name} score, threshold {detector.threshold:.4g}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
