"""Inside the network: Predictor.activations against plain Keras sub-models, the top images
per channel against brute force, the PCA against an eigendecomposition, the contributions
against the logits, the tab's file, mosaic geometry and model fallback."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cifar_demo import Predictor, data
from cifar_demo.artifacts import SHIPPED_WEIGHTS, inside_path_for
from cifar_demo.data import Cifar10
from cifar_demo.evaluate import main as evaluate_main
from cifar_demo.inside import (
    TOP_K,
    RunningTopK,
    TopActivations,
    compute_top_activations,
    contributions,
    fit_pca,
    project,
    top_k_per_channel,
    top_layers,
    trained_top_activations,
)
from cifar_demo.model import FEATURES_LAYER, build_model
from cifar_demo.predictions import file_sha256
from cifar_demo.training import EpochSnapshot, TrainConfig, Trainer
from cifar_demo.ui import inside_tab, inside_views
from cifar_demo.ui.session import TrainedModel
from tests.conftest import cifar10_path, damage_largest_member, requires_cifar10

LAYERS = ["stage1_conv1_relu", "stage1_conv2_relu", "stage1_conv3_relu", "stage1_pool", "stage2_conv1_relu",
          "stage2_conv2_relu", "stage2_conv3_relu", "stage2_pool", "stage3_conv1_relu", "stage3_conv2_relu",
          "stage3_conv3_relu", "global_pool"]


@pytest.fixture(scope="module")
def tiny():
    """A tiny model whose batch norms are not the identity (random statistics), so folding them matters."""
    model = build_model((4, 6, 8))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.5, size).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, size).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.3, size).astype("float32"))
    return Predictor(model)


@pytest.fixture(scope="module")
def generated():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=40).astype(np.uint8)


def oracle(predictor, names, images):
    """{name: the layer's output} from a plain Keras sub-model with those outputs, inference mode."""
    model = predictor.model
    outputs = keras.Model(model.input, [model.get_layer(name).output for name in names])(
        images.astype("float32"), training=False)
    return {name: keras.ops.convert_to_numpy(output) for name, output in zip(names, outputs, strict=True)}


def test_activations_equal_plain_keras_sub_models(tiny, generated):
    images, _ = generated
    activations = tiny.activations(images[0])
    assert list(activations) == LAYERS == inside_tab.path_layers()
    batch = tiny.batch_activations(images[:3])
    expected_outputs = oracle(tiny, LAYERS, images[:3])
    for name, value in activations.items():
        expected = expected_outputs[name]
        assert value.dtype == np.float32 and value.shape == expected.shape[1:], name
        np.testing.assert_allclose(value, expected[0], rtol=1e-4, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(batch[name], expected, rtol=1e-4, atol=1e-4, err_msg=name)
    with pytest.raises(ValueError, match=r"one uint8 image of shape \(32, 32, 3\)"):
        tiny.activations(images[:1])


def test_top_images_per_channel_are_the_brute_force_top_k_and_survive_the_file(tiny, generated, tmp_path):
    images, labels = generated
    top = compute_top_activations(tiny, images, labels)
    assert top.layers == [name for name in LAYERS if name.endswith("_relu")]  # every convolution
    top.save(tmp_path / "x.inside.npz")
    loaded = TopActivations.load(tmp_path / "x.inside.npz")
    outputs = oracle(tiny, top.layers, images)
    for name in top.layers:
        peaks = outputs[name].max(axis=(1, 2))  # (N, C): brute force
        expected = -np.sort(-peaks, axis=0)[:TOP_K].T
        np.testing.assert_allclose(top.values[name], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.take_along_axis(peaks.T, loaded.indices[name], axis=1), expected,
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(loaded.values[name], expected, rtol=1e-2, atol=1e-2)  # stored as float16
        for index in loaded.indices[name].ravel():
            np.testing.assert_array_equal(loaded.image(index), images[index])
    assert len(loaded.image_indices) == len(np.unique(np.concatenate([v.ravel() for v in top.indices.values()])))
    stored = int(loaded.image_indices[len(loaded.image_indices) // 2])  # a stored image is its own nearest
    positions, _ = loaded.nearest(tiny.activations(images[stored])[FEATURES_LAYER], count=1)
    assert loaded.image_indices[positions[0]] == stored
    views = inside_tab.InsideViews(lambda: (loaded, None))  # what the tab shows for a click on channel 3
    items, line = views.top_images(tiny, "stage2_conv3_relu", 3, shipped=True)
    assert [caption.split()[0] for _, caption in items] == [f"#{i}" for i in loaded.indices["stage2_conv3_relu"][3]]
    assert len(items) == TOP_K and "activate it most" in line
    early, _ = views.top_images(tiny, "stage1_conv1_relu", 3, shipped=True)  # every convolution is stored
    assert [caption.split()[0] for _, caption in early] == [f"#{i}" for i in loaded.indices["stage1_conv1_relu"][3]]


def test_top_images_kept_chunk_by_chunk_during_a_run_evaluation_are_the_brute_force_top_k(tiny, generated,
                                                                                           monkeypatch):
    """What a run's test evaluation keeps (predict_with_peaks chunk by chunk, RunningTopK)
    against a plain Keras sub-model over all the images at once; then what the tab shows of it.
    Chunks of one size: one compilation on jax and torch (uneven chunks: the next test)."""
    images, labels = generated
    layers = top_layers(tiny.activation_layers())
    running, features = RunningTopK(layers), []
    for start in range(0, len(images), 8):
        probabilities, peaks = tiny.predict_with_peaks(images[start : start + 8], (*layers, FEATURES_LAYER))
        np.testing.assert_allclose(probabilities, tiny.predict_proba(images[start : start + 8]), atol=1e-6)
        running.add(peaks)
        features.append(peaks[FEATURES_LAYER])
    kept = trained_top_activations(running, np.concatenate(features))
    assert kept.tested == len(images) and kept.layers == tuple(layers)
    outputs = oracle(tiny, [*layers, FEATURES_LAYER], images)
    for name in layers:
        peaks = outputs[name].max(axis=(1, 2))  # (N, C): brute force
        expected = -np.sort(-peaks, axis=0)[:TOP_K].T
        np.testing.assert_allclose(kept.values[name], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.take_along_axis(peaks.T, kept.indices[name], axis=1), expected,
                                   rtol=1e-4, atol=1e-4)
    mean, axes, _ = fit_pca(outputs[FEATURES_LAYER])
    np.testing.assert_allclose(kept.points, project(outputs[FEATURES_LAYER], mean, axes), atol=1e-3)

    monkeypatch.setattr(data, "load_cifar10_cached", lambda: Cifar10(images, labels, images, labels))
    views = inside_tab.InsideViews(lambda: (None, "no file"))
    items, line = views.top_images(tiny, "stage3_conv3_relu", 5, shipped=False, tops=kept)
    assert [caption.split()[0] for _, caption in items] == [f"#{i}" for i in kept.indices["stage3_conv3_relu"][5]]
    assert len(items) == TOP_K and f"among all {len(images)} test images" in line
    image, neighbours, caption = views.feature_space(outputs[FEATURES_LAYER][12], False, kept)
    assert image is not None and neighbours[0][1].startswith("#12 ") and "Your model's pooled features" in caption


@pytest.mark.same_on_every_backend
def test_running_top_k_over_chunks_equals_top_k_at_once_ties_included():
    peaks = np.random.default_rng(4).integers(0, 4, size=(50, 6)).astype(np.float32)  # many ties
    running = RunningTopK(["a"], k=5)
    for start, stop in ((0, 3), (3, 3), (3, 20), (20, 21), (21, 50)):  # an empty chunk, a chunk of one
        running.add({"a": peaks[start:stop]})
    indices, values = running.kept()
    expected_indices, expected_values = top_k_per_channel(peaks, k=5)
    np.testing.assert_array_equal(indices["a"], expected_indices)
    np.testing.assert_array_equal(values["a"], expected_values)
    with pytest.raises(ValueError, match="one batch of images for every layer"):
        RunningTopK(["a", "b"]).add({"a": peaks[:3], "b": peaks[:4]})


@pytest.mark.same_on_every_backend
def test_top_k_breaks_ties_towards_the_lower_index():
    indices, values = top_k_per_channel(np.array([[1.0], [3.0], [3.0], [0.0]]), k=2)
    assert indices.tolist() == [[1, 2]] and values.tolist() == [[3.0, 3.0]]


@pytest.mark.same_on_every_backend
def test_pca_matches_the_eigendecomposition_of_the_covariance():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) + rng.normal(size=12)
    mean, axes, explained = fit_pca(features, components=4)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(features, rowvar=False))
    order = np.argsort(eigenvalues)[::-1][:4]
    np.testing.assert_allclose(explained, eigenvalues[order] / eigenvalues.sum(), rtol=1e-4)
    expected = (features - features.mean(axis=0)) @ eigenvectors[:, order]
    coordinates = project(features, mean, axes)
    signs = np.sign((coordinates * expected).sum(axis=0))
    np.testing.assert_allclose(coordinates, expected * signs, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="N >= 2"):
        fit_pca(features[:1])


def test_contributions_and_the_bias_sum_to_the_logit(tiny, generated):
    images, _ = generated
    features = tiny.activations(images[0])["global_pool"]
    logits = tiny.predict_logits(images[:1])[0]
    for class_index in range(10):
        parts, bias = contributions(tiny, features, class_index)
        assert parts.sum() + bias == pytest.approx(float(logits[class_index]), abs=1e-4)
    probabilities, logits_html, parts_html = inside_tab.InsideViews(lambda: (None, "")).decision(tiny, features)
    np.testing.assert_allclose(list(probabilities.values()), tiny.predict_proba(images[:1])[0], atol=1e-5)
    top = int(np.argmax(logits))
    assert f"to its logit {logits[top]:.2f}" in parts_html and "The 10 logits" in logits_html


@pytest.mark.same_on_every_backend
@pytest.mark.parametrize("shape", [(32, 32, 64), (8, 8, 256), (256,)])
def test_a_click_on_a_mosaic_names_the_channel_drawn_there(shape):
    activation = np.random.default_rng(3).random(shape, dtype=np.float32)
    channels = inside_views.page_channels(shape, 1)
    image = np.asarray(inside_views.mosaic(activation, channels))  # palette indices (H, W)
    cell = inside_views.FEATURE_CELL if len(shape) == 1 else inside_views.CELL
    pitch = cell + inside_views.GAP
    assert image.shape[1] == min(inside_views.COLUMNS, len(channels)) * pitch - inside_views.GAP
    for slot, channel in enumerate(channels):
        row, col = divmod(slot, inside_views.COLUMNS)
        assert inside_views.channel_at(col * pitch + cell // 2, row * pitch + 1, channels, len(shape) == 1) == channel
    assert inside_views.channel_at(cell, 0, channels, len(shape) == 1) is None  # the gap
    assert inside_views.channel_at(0, image.shape[0] + 5, channels, len(shape) == 1) is None
    assert (image[:, cell] == inside_views.BACKGROUND_INDEX).all()  # the gap column is drawn as a gap
    assert image[image != inside_views.BACKGROUND_INDEX].max() == inside_views.PALETTE_LEVELS - 1  # the peak


@pytest.mark.same_on_every_backend
def test_a_missing_corrupt_or_stale_file_is_a_message_not_a_crash(tmp_path, generated):
    top, problem = inside_tab.load_top(tmp_path / "none.inside.npz")
    assert top is None and "not found" in problem and "--write-top-activations" in problem
    (tmp_path / "bad.inside.npz").write_bytes(b"not a zip")
    top, problem = inside_tab.load_top(tmp_path / "bad.inside.npz")
    assert top is None and "not a readable top-activations file" in problem
    images, labels = generated
    weights = tmp_path / "x.weights.h5"
    weights.write_bytes(b"these weights")
    stored = TopActivations(["l"], {"l": np.zeros((1, TOP_K), int)}, {"l": np.ones((1, TOP_K), np.float32)},
                            np.array([0]), images[:1], np.zeros(4, np.float32), np.eye(2, 4, dtype=np.float32),
                            np.ones(2, np.float32), np.zeros((3, 2), np.float32), labels[:3], np.zeros((1, 2)),
                            labels[:1], file_sha256(weights))
    stored.save(inside_path_for(weights))
    assert inside_tab.load_top(weights=weights)[0].image(0).tolist() == images[0].tolist()
    weights.write_bytes(b"other weights")
    top, problem = inside_tab.load_top(weights=weights)
    assert top is None and "computed for other weights" in problem
    damage_largest_member(inside_path_for(weights))
    top, problem = inside_tab.load_top(weights=weights)
    assert top is None and "not a readable top-activations file" in problem


def test_a_freed_or_missing_session_model_falls_back_to_the_shipped_one(tiny):
    shipped = object()
    assert inside_tab.chosen_model(inside_tab.TRAINED, None, shipped)[:2] == (shipped, True)
    assert "shipped model" in inside_tab.chosen_model(inside_tab.TRAINED, None, shipped)[2]
    mine = TrainedModel(tiny, "3-epoch run", np.zeros((1, 10), np.float32))
    assert inside_tab.chosen_model(inside_tab.TRAINED, mine, shipped)[:2] == (tiny, False)
    assert inside_tab.chosen_model(inside_tab.SHIPPED, mine, shipped) == (shipped, True, "")
    views = inside_tab.InsideViews(lambda: (None, "no file"))
    assert views.top_images(tiny, "stage1_conv3_relu", 0, shipped=False)[0] == []
    assert views.feature_space(np.zeros(8, np.float32), shipped=True)[2] == "*no file*"


def test_the_drawn_key_tells_every_trained_model_apart(tiny):
    """Opening the tab skips the redraw when the key matches: a model trained later (which
    may sit where a freed one sat, so id() would match) must never match an earlier one."""
    value = SimpleNamespace(pixels=np.zeros((32, 32, 3), np.uint8), source="an example")
    first = TrainedModel(tiny, "3-epoch run", np.zeros((1, 10), np.float32))
    second = TrainedModel(tiny, "3-epoch run", np.zeros((1, 10), np.float32))
    page = "channels 1-128"
    keys = {inside_tab.input_key(value, inside_tab.TRAINED, model, page) for model in (first, second, None)}
    assert len(keys) == 3
    key = inside_tab.input_key(value, inside_tab.TRAINED, first, page)
    assert key == inside_tab.input_key(value, inside_tab.TRAINED, first, page)
    assert key != inside_tab.input_key(value, inside_tab.TRAINED, first, "channels 129-256")  # the page is drawn too


@pytest.mark.same_on_every_backend
def test_the_cli_refuses_options_that_do_not_go_with_top_activations(capsys):
    assert evaluate_main(["--write-top-activations", "--tta"]) == 2
    assert "drop --tta" in capsys.readouterr().err


@requires_cifar10
@pytest.mark.same_on_every_backend  # the file is what is checked; the oracle tests above cover the backends
def test_the_shipped_file_holds_the_true_top_images_among_the_first_test_images():
    """Brute force over the first 300 test images, a few channels of each stored layer:
    the stored values are those images' peaks, and none of the 300 beats a channel's 9th."""
    from cifar_demo.data import load_cifar10

    top = TopActivations.load(inside_path_for(SHIPPED_WEIGHTS))
    test = load_cifar10(cifar10_path()).x_test
    predictor = Predictor.load()
    peaks = predictor.channel_peaks(test[:300])
    for name in top.layers:
        for channel in (0, 17, 63):
            stored, values = top.indices[name][channel], top.values[name][channel]
            recomputed = predictor.channel_peaks(test[stored])[name][:, channel]
            np.testing.assert_allclose(recomputed, values, rtol=2e-3, atol=2e-3)
            beaten = np.flatnonzero(peaks[name][:, channel] > values[-1] * (1 + 2e-3) + 2e-3)
            assert set(beaten) <= set(stored.tolist()), (name, channel)
    assert inside_path_for(SHIPPED_WEIGHTS).stat().st_size < 10e6


@pytest.mark.same_on_every_backend  # the engine's plumbing; the activations oracle above covers the backends
def test_a_watched_run_snapshots_the_filters_and_one_images_maps_after_each_epoch(toy_data):
    config = TrainConfig(width_mult=0.125, batch_size=32, val_size=64, train_size=96, learning_rate=0.05, seed=1,
                         epochs=2)
    events = []
    result = Trainer(config, callbacks=[events.append], watch=True).run(toy_data)
    snapshots = [event for event in events if isinstance(event, EpochSnapshot)]
    assert [snapshot.epoch for snapshot in snapshots] == [1, 2]
    assert [type(event).__name__ for event in events].count("EpochEnded") == 2
    last = snapshots[-1]
    trained = Predictor(result.model)
    np.testing.assert_allclose(last.watched_maps, trained.activations(last.watched_image)["stage3_conv3_relu"],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(last.first_kernels,
                                  keras.ops.convert_to_numpy(result.model.get_layer("stage1_conv1").kernel))
    assert not np.array_equal(snapshots[0].first_kernels, last.first_kernels)  # it learned in between
    picture = inside_views.learning_snapshot(last.first_kernels, last.watched_maps, last.watched_image)
    assert picture.dtype == np.uint8 and picture.shape[2] == 3 and picture.shape[1] < 1280
