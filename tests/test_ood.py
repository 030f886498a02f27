"""The out-of-distribution ("probably none of these") score: generated inputs, the
scores' arithmetic, the statistics file, and the shipped detector on real and generated
images (no dataset needed: the real ones ship in weights/)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_demo import Predictor, ood
from cifar_demo.artifacts import (
    SHIPPED_TEST_PREDICTIONS,
    SHIPPED_WEIGHTS,
    calibration_path_for,
    config_path_for,
    ood_path_for,
)
from cifar_demo.data import load_cifar10, split_training_set
from cifar_demo.model import build_model, scaled_widths
from cifar_demo.predictions import GRID_IMAGES, PredictionSet
from cifar_demo.training import TrainConfig
from tests.conftest import cifar10_path, damage_largest_member, requires_cifar10

EXAMPLES = Path(__file__).resolve().parent.parent / "weights" / "examples"
TINY_WIDTH_MULT = 0.125
# Share of each generated set that must get a warning from the shipped detector ("probably
# none of these", or the drawing notice): what `python -m cifar_demo.ood --fit` measured on
# 1,000 images each, less a margin for the smaller, differently seeded sets here.
MIN_FLAGGED = {"uniform noise": 0.95, "solid colours": 0.95, "drawings": 0.95, "blurred noise": 0.95}


@pytest.fixture(scope="module")
def tiny_predictor():
    return Predictor(build_model(scaled_widths(TINY_WIDTH_MULT)), temperature=0.7)


@pytest.fixture(scope="module")
def shipped_detector():
    return ood.OodDetector.load(Predictor.load())


def real_test_images():
    """The first GRID_IMAGES official test images (an unbiased sample: the file also holds
    every mistake, which would overstate the flag rate) and the shipped examples."""
    shipped = PredictionSet.load(SHIPPED_TEST_PREDICTIONS)
    first = shipped.images[shipped.image_indices < GRID_IMAGES]
    examples = [np.asarray(Image.open(path).convert("RGB")) for path in sorted(EXAMPLES.glob("*.png"))]
    return np.concatenate([first, np.stack(examples)])


@pytest.mark.parametrize("make", [ood.uniform_noise, ood.solid_colours, ood.drawings, ood.blurred_noise])
def test_generated_sets_are_deterministic_model_inputs(make):
    images = make(12, seed=5)
    assert images.dtype == np.uint8 and images.shape == (12, 32, 32, 3)
    np.testing.assert_array_equal(images, make(12, seed=5))
    assert not np.array_equal(images, make(12, seed=6))


def test_solid_colours_are_solid_and_drawings_are_dark_strokes_on_white():
    colours = ood.solid_colours(5)
    assert (colours == colours[:, :1, :1]).all()
    drawings = ood.drawings(20)
    assert (np.median(drawings, axis=(1, 2, 3)) == 255).all()        # mostly white canvas
    assert (drawings.min(axis=(1, 2, 3)) < 100).all()                   # with a dark stroke
    assert (np.ptp(drawings.astype(int), axis=3) <= 1).all()            # in grey levels only


def test_auroc_matches_counting_pairs():
    rng = np.random.default_rng(0)
    inside, outside = rng.integers(0, 20, size=40), rng.integers(5, 30, size=30)
    pairs = (outside[:, None] > inside[None]).mean() + 0.5 * (outside[:, None] == inside[None]).mean()
    assert ood.auroc(inside, outside) == pytest.approx(pairs)
    assert ood.auroc([0, 1], [2, 3]) == 1.0 and ood.auroc([2, 3], [0, 1]) == 0.0


def test_scores_from_logits():
    logits = np.array([[10.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    msp = ood.compute_scores("max_probability", {"logits": logits}, temperature=1.0)
    np.testing.assert_allclose(msp, [1 - np.exp(10) / (np.exp(10) + 2), 2 / 3], rtol=1e-5)
    energy = ood.compute_scores("energy", {"logits": logits}, temperature=2.0)
    np.testing.assert_allclose(energy, -2 * np.log(np.exp(logits / 2).sum(axis=1)), rtol=1e-5)
    assert energy[0] < energy[1]  # a confident answer is more CIFAR-like
    with pytest.raises(ValueError, match="unknown score 'nope'.*max_probability, energy, knn"):
        ood.compute_scores("nope", {"logits": logits})
    with pytest.raises(ValueError, match="needs statistics fitted on training images"):
        ood.compute_scores("mahalanobis", {"logits": logits, "features": logits})


@pytest.mark.same_on_every_backend
def test_knn_distance_and_nearest_match_a_full_sort():
    rng = np.random.default_rng(2)
    bank, queries = ood.normalise(rng.normal(size=(300, 16))), ood.normalise(rng.normal(size=(40, 16)))
    distances = np.linalg.norm(queries[:, None, :] - bank[None, :, :], axis=2)  # every pair
    order = np.argsort(distances, axis=1, kind="stable")
    for k in (1, 5, 50):
        np.testing.assert_allclose(ood.knn_distance(queries, bank, k), np.sort(distances, axis=1)[:, k - 1], atol=1e-5)
    indices, nearest = ood.nearest_in_bank(queries, bank, 8)
    np.testing.assert_array_equal(indices, order[:, :8])
    np.testing.assert_allclose(nearest, np.take_along_axis(distances, order[:, :8], axis=1), atol=1e-5)
    assert ood.knn_k(50_000) == 50 and ood.knn_k(5000) == 5 and ood.knn_k(100) == 1
    with pytest.raises(ValueError, match="count must be between 1 and the bank's 300 images"):
        ood.nearest_in_bank(queries, bank, 301)


@pytest.mark.same_on_every_backend
def test_mahalanobis_matches_a_direct_inverse():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 30)
    features = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)) + labels[:, None] * 0.5
    means, precision = ood.fit_feature_statistics(features, labels)
    direct_means = np.stack([features[labels == k].mean(axis=0) for k in range(10)])
    centred = features - direct_means[labels]
    covariance = sum(np.outer(row, row) for row in centred) / len(centred)
    covariance += ood.COVARIANCE_RIDGE * np.trace(covariance) / 5 * np.eye(5)
    inverse = np.linalg.inv(covariance)
    np.testing.assert_allclose(means, direct_means, rtol=1e-5)
    np.testing.assert_allclose(precision, inverse, rtol=1e-4)
    queries = rng.normal(size=(7, 5)) * 3
    direct = [min(float((query - mean) @ inverse @ (query - mean)) for mean in direct_means) for query in queries]
    np.testing.assert_allclose(ood.mahalanobis_distance(queries, means, precision), direct, rtol=1e-4)
    with pytest.raises(ValueError, match="none of class \\[9\\]"):
        ood.fit_feature_statistics(features[labels < 9], labels[labels < 9])


@pytest.mark.same_on_every_backend
def test_gram_values_and_deviations_match_loops():
    rng = np.random.default_rng(3)
    activations = rng.uniform(0, 2, size=(2, 3, 4, 5)).astype(np.float32)
    for order in (1, 2):
        values = ood.gram_values(activations, order)
        for image in range(2):
            flat = activations[image].reshape(-1, 5).astype(np.float64) ** order
            gram = (flat.T @ flat / 12) ** (1 / order)
            expected = [gram[i, j] for i in range(5) for j in range(i, 5)]
            np.testing.assert_allclose(values[image], expected, rtol=1e-5)
    low, high = np.array([[1.0, 1.0, -2.0]]), np.array([[2.0, 3.0, -1.0]])
    values = np.array([[0.5, 4.0, -1.5]])
    assert ood.gram_deviation(values, low, high)[0] == pytest.approx(0.5 / 1 + 1 / 3, rel=1e-5)


@pytest.mark.same_on_every_backend
def test_drawing_detector_reaches_the_optimum_of_its_loss():
    rng = np.random.default_rng(4)
    drawings, photos = rng.normal(1.0, 1.0, size=(60, 3)), rng.normal(-1.0, 1.0, size=(200, 3))
    detector = ood.DrawingDetector.fit(drawings, photos, ridge=2.0)
    assert (detector.probability(drawings) > 0.5).mean() > 0.8 and (detector.probability(photos) < 0.5).mean() > 0.8
    # The gradient of the weighted, penalised log-loss vanishes at the fitted parameters.
    features = np.concatenate([drawings, photos])
    targets = np.r_[np.ones(60), np.zeros(200)]
    weight = np.where(targets == 1, 0.5 / 60, 0.5 / 200)
    error = weight * (detector.probability(features) - targets)
    standardised = (features - detector.mean) / detector.scale
    np.testing.assert_allclose(standardised.T @ error + 2.0 / 260 * detector.weights, 0, atol=1e-6)
    assert abs(error.sum()) < 1e-6


def test_fit_saves_a_detector_that_loads_with_the_same_scores(tiny_predictor, toy_data, tmp_path):
    config = TrainConfig(val_size=64, width_mult=TINY_WIDTH_MULT)
    noise = ood.uniform_noise(10, seed=3)
    detector, table, bank = ood.fit(tiny_predictor, toy_data, config, count=16, dev_sets={"noise": noise},
                                    select_on=("noise",), drawing_sets=(ood.drawings(20), ood.drawings(20, 1)),
                                    statistics_images=150, bank_size=60, log=lambda line: None)
    assert set(table) == {*ood.SCORES, "drawing detector"} and detector.score_name in ood.SCORES
    for score in ood.SCORES:  # each threshold flags the stated share of the held-out images
        assert abs(table[score]["flag_rate"]["held-out"] - ood.TARGET_FLAG_RATE) <= 1 / 64
    assert set(table[detector.score_name]["auroc_vs_test"]) == {*ood.GENERATED_SETS, "noise"}
    assert len(bank.images) == 60 and np.array_equal(bank.images, toy_data.x_train[bank.indices])
    np.testing.assert_array_equal(bank.labels, toy_data.y_train[bank.indices])
    images = np.concatenate([noise, toy_data.x_test[:8]])
    path = tmp_path / "tiny.ood.npz"
    detector.save(path, note="test")
    loaded = ood.OodDetector.load(tiny_predictor, path)
    assert (loaded.score_name, loaded.threshold) == (detector.score_name, detector.threshold)
    assert loaded.record == {"note": "test"}
    # the same up to the kernels' own noise: two passes of one model may sum in different orders
    # (torch's CPU kernels move a kNN distance of 0.005 by up to 1e-5 from one call to the next)
    np.testing.assert_allclose(loaded.score(images), detector.score(images), rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(loaded.is_out_of_distribution(images), detector.is_out_of_distribution(images))
    np.testing.assert_allclose(loaded.verdicts(images)[1], detector.verdicts(images)[1], rtol=1e-3, atol=1e-4)
    assert loaded.views == detector.views == ood.VIEWS == 2
    one_view = ood.OodDetector(tiny_predictor, detector.score_name, detector.threshold, detector.statistics, views=1)
    mirrored = images[:, :, ::-1]
    # the oracle: two views' score is the mean of one view's on the input and on its mirror image
    np.testing.assert_allclose(detector.score(images), (one_view.score(images) + one_view.score(mirrored)) / 2,
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(detector.score(mirrored), detector.score(images), rtol=1e-3, atol=1e-4)
    with np.load(path) as archive:  # a file fitted before the views were saved scores one view
        np.savez(tmp_path / "before.ood.npz", **{key: archive[key] for key in archive.files if key != "views"})
    assert ood.OodDetector.load(tiny_predictor, tmp_path / "before.ood.npz").views == 1
    with pytest.raises(ValueError, match="views must be 1 .* or 2"):
        ood.OodDetector(tiny_predictor, detector.score_name, 0.0, detector.statistics, views=3)
    for name in ood.SCORES:  # every score works from the fitted statistics, and is a number
        scores = ood.OodDetector(tiny_predictor, name, 0.0, detector.statistics).score(images)
        assert scores.shape == (18,) and np.isfinite(scores).all(), name
    held_out = toy_data.x_train[config.held_out_split(len(toy_data.x_train))[1]]
    measured = ood.measure(tiny_predictor, held_out, set(ood.NEEDS.values()), detector.statistics)
    for name in ood.COMBINED_SCORES:  # its parts standardised on the held-out images: there, the sum's mean is 0
        combined = ood.compute_scores(name, measured, detector.statistics, tiny_predictor.temperature)
        assert abs(combined.mean()) < 0.02, name  # float32 noise; an unstandardised part adds its own mean
    assert loaded.score(images[:0]).shape == (0,)  # an empty batch is an empty answer
    assert [len(part) for part in loaded.verdicts(images[:0])] == [0, 0, 0, 0]
    bank_path = tmp_path / "tiny.neighbours.npz"
    assert bank.save_if_changed(bank_path) and not bank.save_if_changed(bank_path)  # unchanged: not rewritten
    np.testing.assert_array_equal(ood.TrainingBank.load(bank_path, loaded).images, bank.images)
    other = ood.TrainingBank(bank.images[::-1], bank.labels[::-1], bank.indices[::-1])
    other.save_if_changed(bank_path)
    with pytest.raises(ValueError, match="other training images than the detector's bank"):
        ood.TrainingBank.load(bank_path, loaded)


def test_detector_checks_its_statistics(tiny_predictor, toy_data, tmp_path):
    measured = ood.measure(tiny_predictor, toy_data.x_train, {"features", "early", "stage2"})
    statistics = {}
    for prefix, key in (("pooled", "features"), ("early", "early"), ("stage2", "stage2")):
        statistics[f"{prefix}_means"], statistics[f"{prefix}_precision"] = ood.fit_feature_statistics(
            measured[key], toy_data.y_train)
    widths = scaled_widths(TINY_WIDTH_MULT)
    assert statistics["pooled_means"].shape == (10, widths[2])
    assert statistics["early_means"].shape == (10, 2 * widths[0])
    assert statistics["stage2_precision"].shape == (2 * widths[1], 2 * widths[1])
    wrong = dict(statistics, pooled_means=statistics["pooled_means"][:, :3])
    with pytest.raises(ValueError, match="belong to other weights"):
        ood.OodDetector(tiny_predictor, "mahalanobis", 1.0, wrong)
    with pytest.raises(ValueError, match="needs statistics fitted on training images \\(pooled_"):
        ood.OodDetector(tiny_predictor, "combined_mahalanobis", 1.0)
    with pytest.raises(ValueError, match="unknown score"):
        ood.OodDetector(tiny_predictor, "entropy", 1.0)
    with pytest.raises(ValueError, match="no out-of-distribution statistics"):
        ood.OodDetector.load(tiny_predictor, tmp_path / "missing.ood.npz")
    (tmp_path / "broken.ood.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="is not an out-of-distribution statistics file"):
        ood.OodDetector.load(tiny_predictor, tmp_path / "broken.ood.npz")
    with pytest.raises(ValueError, match="no training images for the nearest neighbours"):
        ood.TrainingBank.load(tmp_path / "missing.neighbours.npz")
    (tmp_path / "broken.neighbours.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="is not a file of nearest-neighbour training images"):
        ood.TrainingBank.load(tmp_path / "broken.neighbours.npz")
    ood.OodDetector(tiny_predictor, "mahalanobis", 1.0, statistics).save(tmp_path / "damaged.ood.npz")
    damage_largest_member(tmp_path / "damaged.ood.npz")
    with pytest.raises(ValueError, match="is not an out-of-distribution statistics file"):
        ood.OodDetector.load(tiny_predictor, tmp_path / "damaged.ood.npz")
    ood.TrainingBank(toy_data.x_train[:5], toy_data.y_train[:5], np.arange(5)).save_if_changed(
        tmp_path / "damaged.neighbours.npz")
    damage_largest_member(tmp_path / "damaged.neighbours.npz")
    with pytest.raises(ValueError, match="is not a file of nearest-neighbour training images"):
        ood.TrainingBank.load(tmp_path / "damaged.neighbours.npz")
    wrong_precision = dict(statistics, early_precision=statistics["early_precision"][:4])
    with pytest.raises(ValueError, match=r"\(early_precision\) have shape 4x.* they belong to other weights"):
        ood.OodDetector(tiny_predictor, "early_mahalanobis", 1.0, wrong_precision)
    with pytest.raises(ValueError, match=r"\(bank_indices\) have shape 3 but this model needs 5"):
        ood.OodDetector(tiny_predictor, "knn", 1.0, {"bank_features": np.ones((5, widths[2])),
                                                     "bank_indices": np.arange(3)})
    early = statistics["early_means"].shape[1]
    short = ood.DrawingDetector(np.zeros(early), np.ones(early), np.zeros(early - 1), 0.0)
    with pytest.raises(ValueError, match=r"\(drawing_weights\) have shape"):
        ood.OodDetector(tiny_predictor, "energy", 1.0, drawing=short)
    with pytest.raises(ValueError, match="hold no bank of training features"):
        ood.OodDetector(tiny_predictor, "energy", 1.0).nearest(toy_data.x_test[0])


def test_assess_says_what_the_ui_shows(tiny_predictor):
    pixels = ood.uniform_noise(1)[0]
    early = tiny_predictor.predict_features(pixels[None]).early_statistics
    for threshold, flagged in ((-1e9, True), (1e9, False)):
        detector = ood.OodDetector(tiny_predictor, "energy", threshold)
        verdict = detector.assess(pixels)
        assert verdict["out_of_distribution"] is flagged and verdict["threshold"] == threshold
        assert verdict["looks_like_drawing"] is False and np.isnan(verdict["drawing_probability"])
        assert verdict["score"] == pytest.approx(float(detector.score(pixels[None])[0]))
        for bias, drawing in ((50.0, True), (-50.0, False)):  # a drawing is never "none of these"
            says = ood.DrawingDetector(np.zeros(early.shape[1]), np.ones(early.shape[1]), np.zeros(early.shape[1]),
                                       bias)
            verdict = ood.OodDetector(tiny_predictor, "energy", threshold, drawing=says).assess(pixels)
            assert verdict["looks_like_drawing"] is drawing
            assert verdict["out_of_distribution"] is (flagged and not drawing)
    with pytest.raises(ValueError, match=r"one uint8 image of shape \(32, 32, 3\)"):
        ood.OodDetector(tiny_predictor, "energy", 0.0).assess(pixels[None])
    with pytest.raises(ValueError, match=r"one uint8 image .* got float32"):
        ood.OodDetector(tiny_predictor, "energy", 0.0).assess(pixels.astype(np.float32))


def test_a_score_that_is_not_a_number_is_flagged(tiny_predictor, monkeypatch):
    """Statistics that do not fit an input must not make it a CIFAR-10 photo: fail closed."""
    monkeypatch.setattr(ood, "compute_scores", lambda *args: np.array([np.nan, 0.0], np.float32))
    _, _, flagged, _ = ood.OodDetector(tiny_predictor, "energy", 1.0).verdicts(ood.uniform_noise(2))
    assert flagged.tolist() == [True, False]


def test_an_empty_gram_bound_flags_each_value_once_and_stays_finite():
    """A class no fitting image was predicted as has bounds +inf/-inf: every value counts
    EMPTY_BOUND_DEVIATION, where the relative formula would give inf/inf."""
    values = np.array([[1.0, 2.0, 3.0], [0.5, 2.0, 9.0]])
    empty_low, empty_high = np.full((2, 3), np.inf), np.full((2, 3), -np.inf)
    np.testing.assert_array_equal(ood.gram_deviation(values, empty_low, empty_high),
                                  [3 * ood.EMPTY_BOUND_DEVIATION] * 2)
    low, high = np.array([[1.0, 1.0, 1.0], empty_low[1]]), np.array([[2.0, 2.0, 2.0], empty_high[1]])
    deviation = ood.gram_deviation(values, low, high)
    assert deviation[0] == pytest.approx((3.0 - 2.0) / (2.0 + 1e-6))  # only the third value is outside
    assert deviation[1] == 3 * ood.EMPTY_BOUND_DEVIATION


def test_companion_paths():
    assert ood_path_for("weights/cifar10_cnn.weights.h5").name == "cifar10_cnn.ood.npz"
    assert config_path_for("runs/x/model.weights.h5") == Path("runs/x/model.config.json")
    assert calibration_path_for("a/b.h5").name == "b.calibration.json"


@pytest.mark.parametrize("name", ood.GENERATED_SETS)
def test_shipped_detector_flags_generated_inputs(shipped_detector, name):
    images = ood.generated_sets(count=200, seed=1)[name]  # not the seed the threshold saw
    _, _, none_of_these, drawing = shipped_detector.verdicts(images)
    assert (none_of_these | drawing).mean() >= MIN_FLAGGED[name]
    np.testing.assert_array_equal(shipped_detector.is_out_of_distribution(images), none_of_these)


def test_shipped_detector_rarely_flags_real_test_images(shipped_detector):
    images = real_test_images()
    assert shipped_detector.is_out_of_distribution(images).mean() <= 0.15  # 5% expected


def test_shipped_nearest_neighbours_are_the_true_nearest(shipped_detector):
    """Under the stated distance (Euclidean between L2-normalised pooled features), against
    every image of the shipped bank; and the bank's images are the ones it was fitted on."""
    bank = ood.TrainingBank.load(detector=shipped_detector)
    assert len(bank.images) == len(shipped_detector.statistics["bank_features"]) == ood.BANK_SIZE
    images = real_test_images()[:3]
    features = ood.normalise(shipped_detector.predictor.predict_features(images).features)
    for image, feature in zip(images, features, strict=True):
        positions, distances = shipped_detector.nearest(image)
        every = np.linalg.norm(shipped_detector.statistics["bank_features"] - feature, axis=1)
        np.testing.assert_array_equal(positions, np.argsort(every, kind="stable")[: ood.NEIGHBOURS])
        np.testing.assert_allclose(distances, np.sort(every)[: ood.NEIGHBOURS], atol=1e-4)
    # the bank's own images are their own nearest neighbours, at distance ~0
    positions, distances = shipped_detector.nearest(bank.images[7])
    assert positions[0] == 7 and distances[0] < 0.02


@requires_cifar10
@pytest.mark.same_on_every_backend
def test_shipped_threshold_flags_the_stated_share_of_held_out_images(shipped_detector):
    """Recomputed: the training images the shipped run held out (its saved config says which),
    scored now, are over the threshold TARGET_FLAG_RATE of the time."""
    config = TrainConfig.from_dict(json.loads(config_path_for(SHIPPED_WEIGHTS).read_text()))
    data = load_cifar10(cifar10_path())
    _, held_out = split_training_set(len(data.x_train), config.val_size, config.train_size, config.seed)
    flagged = shipped_detector.score(data.x_train[held_out]) > shipped_detector.threshold
    assert flagged.mean() == pytest.approx(ood.TARGET_FLAG_RATE, abs=0.005)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_the_app_serves_without_a_readable_detector_file_and_says_why(tiny_predictor, tmp_path, monkeypatch, damage):
    from cifar_demo.ui import about_tab, app, explain_views
    from cifar_demo.ui.first_view import Lazy

    path = tmp_path / "elsewhere.ood.npz"  # not the shipped name: the message must name the file read
    if damage == "corrupt":
        path.write_bytes(b"not a zip archive")
    monkeypatch.setattr(ood, "ood_path_for", lambda weights: path)
    predictor, detector = app.load_shipped(tiny_predictor)
    assert predictor is tiny_predictor and isinstance(detector, ood.UnavailableDetector)
    assert path.name in detector.unavailable_reason and str(tmp_path) not in detector.unavailable_reason
    pixels = np.zeros((32, 32, 3), np.uint8)
    verdict = detector.assess(pixels)
    assert not verdict["out_of_distribution"] and not verdict["looks_like_drawing"]
    notice = explain_views.ood_notice_html(verdict)
    assert "check is unavailable" in notice and path.name in notice
    assert np.isnan(detector.score(pixels[None])).all()
    assert not detector.is_out_of_distribution(pixels[None]).any()
    lazy = Lazy(lambda: detector)  # what build_app hands the tabs
    with pytest.raises(ValueError, match="elsewhere.ood.npz"):
        ood.TrainingBank.load(detector=lazy)
    assert "check is unavailable" in about_tab.ood_markdown(lazy, 2000)
