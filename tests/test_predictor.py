import json

import keras
import numpy as np
import pytest
from PIL import Image

from cifar_demo import CLASSES, Predictor
from cifar_demo.artifacts import SHIPPED_TEST_PREDICTIONS, SHIPPED_WEIGHTS, calibration_path_for, config_path_for
from cifar_demo.metrics import softmax
from cifar_demo.model import build_model, scaled_widths
from cifar_demo.predictions import PredictionSet

TINY_WIDTH_MULT = 0.125


@pytest.fixture(scope="module")
def tiny_predictor():
    return Predictor(build_model(scaled_widths(TINY_WIDTH_MULT)))


def test_predict_proba_shape_dtype_and_normalisation(tiny_predictor):
    images = np.random.default_rng(0).integers(0, 256, size=(300, 32, 32, 3), dtype=np.uint8)
    probabilities = tiny_predictor.predict_proba(images)  # more than one internal batch
    assert probabilities.shape == (300, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()
    assert tiny_predictor.predict_proba(images[:0]).shape == (0, 10)


def test_predict_proba_matches_the_keras_model(tiny_predictor):
    images = np.random.default_rng(1).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(tiny_predictor.model(images.astype("float32"), training=False))
    np.testing.assert_allclose(tiny_predictor.predict_proba(images), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((32, 32, 3), np.uint8), np.zeros((1, 32, 32, 3), np.float32),
                                 np.zeros((1, 28, 28, 3), np.uint8)])
def test_predict_proba_rejects_wrong_input(tiny_predictor, bad):
    with pytest.raises(ValueError, match="uint8 images of shape"):
        tiny_predictor.predict_proba(bad)


@pytest.mark.parametrize("call", ["predict_with_peaks", "predict_reduced"])
def test_layer_passes_name_a_missing_layer_and_refuse_an_empty_batch(tiny_predictor, call):
    images = np.zeros((2, 32, 32, 3), np.uint8)
    run = getattr(tiny_predictor, call)
    extra = () if call == "predict_with_peaks" else (dict,)
    with pytest.raises(ValueError, match="stage9_conv1"):
        run(images, ("stage1_conv1_relu", "stage9_conv1"), *extra)
    with pytest.raises(ValueError, match=f"{call} needs at least one image"):
        run(images[:0], ("stage1_conv1_relu",), *extra)
    with pytest.raises(ValueError, match=call):
        run(images.astype(np.float32), ("stage1_conv1_relu",), *extra)


def test_classify_accepts_images_of_any_size(tiny_predictor, tmp_path):
    photo = Image.fromarray(np.random.default_rng(2).integers(0, 256, size=(300, 400, 3), dtype=np.uint8))
    photo.save(tmp_path / "photo.jpg")
    for source in (photo, np.asarray(photo), str(tmp_path / "photo.jpg")):
        result = tiny_predictor.classify(source)
        assert list(result) == list(CLASSES)
        assert sum(result.values()) == pytest.approx(1.0, abs=1e-5)


def test_classify_unreadable_input_raises_value_error(tiny_predictor, tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not an image"):
        tiny_predictor.classify(str(tmp_path / "x.png"))


def test_save_and_load_round_trip_gives_identical_outputs(tmp_path):
    model = build_model(scaled_widths(TINY_WIDTH_MULT))
    # Move BatchNorm statistics off their defaults so the round trip has something to lose.
    for layer in model.layers:
        if hasattr(layer, "moving_mean"):
            layer.moving_mean.assign(np.random.default_rng(3).normal(size=layer.moving_mean.shape))
    path = tmp_path / "tiny.weights.h5"
    model.save_weights(path)
    config_path_for(path).write_text(json.dumps({"width_mult": TINY_WIDTH_MULT}))
    images = np.random.default_rng(4).integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    original = Predictor(model).predict_proba(images)
    loaded = Predictor.load(path).predict_proba(images)
    np.testing.assert_array_equal(loaded, original)


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_load_reports_missing_or_mismatched_weights(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        Predictor.load(tmp_path / "missing.weights.h5")
    path = tmp_path / "tiny.weights.h5"
    build_model(scaled_widths(TINY_WIDTH_MULT)).save_weights(path)  # no config: default widths expected
    with pytest.raises(ValueError, match="does not hold weights"):
        Predictor.load(path)


def test_config_path_for():
    assert config_path_for("weights/cifar10_cnn.weights.h5").name == "cifar10_cnn.config.json"


def test_flip_tta_averages_each_image_with_its_mirror(tiny_predictor):
    images = np.random.default_rng(5).integers(0, 256, size=(140, 32, 32, 3), dtype=np.uint8)
    plain = tiny_predictor.predict_proba(images)
    mirrored = tiny_predictor.predict_proba(images[:, :, ::-1].copy())
    np.testing.assert_allclose(tiny_predictor.predict_proba(images, tta=True), (plain + mirrored) / 2, atol=1e-5)
    symmetric = np.concatenate([images[:3, :, :16], images[:3, :, :16][:, :, ::-1]], axis=2)
    np.testing.assert_allclose(tiny_predictor.predict_proba(symmetric, tta=True),
                               tiny_predictor.predict_proba(symmetric), atol=1e-5)


def test_load_applies_the_temperature_saved_beside_the_weights(tmp_path):
    model = build_model(scaled_widths(TINY_WIDTH_MULT))
    weights = tmp_path / "tiny.weights.h5"
    model.save_weights(weights)
    config_path_for(weights).write_text(json.dumps({"width_mult": TINY_WIDTH_MULT}))
    images = np.random.default_rng(6).integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    raw = Predictor.load(weights).predict_proba(images)
    calibration_path_for(weights).write_text(json.dumps({"temperature": 2.0}))
    calibrated = Predictor.load(weights)
    assert calibrated.temperature == 2.0
    expected = np.sqrt(raw) / np.sqrt(raw).sum(axis=1, keepdims=True)  # softmax(z / 2) from softmax(z)
    np.testing.assert_allclose(calibrated.predict_proba(images), expected, atol=1e-5)
    with pytest.raises(ValueError, match="temperature must be positive"):
        Predictor(model, temperature=0)


def test_predict_features_gives_logits_pooled_features_and_early_statistics(tiny_predictor):
    images = np.random.default_rng(7).integers(0, 256, size=(300, 32, 32, 3), dtype=np.uint8)
    logits, features, early = tiny_predictor.predict_features(images)  # more than one internal batch
    widths = scaled_widths(TINY_WIDTH_MULT)
    assert logits.shape == (300, 10) and features.shape == (300, widths[-1]) and early.shape == (300, 2 * widths[0])
    assert logits.dtype == features.dtype == early.dtype == np.float32
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), tiny_predictor.predict_proba(images),
                               atol=1e-5)
    assert (features >= 0).all() and (early >= 0).all()  # of ReLU outputs
    empty = tiny_predictor.predict_features(images[:0])
    assert [a.shape for a in empty] == [(0, 10), (0, widths[-1]), (0, 2 * widths[0])]
    with pytest.raises(ValueError, match="predict_features takes uint8 images"):
        tiny_predictor.predict_features(images[0])


def test_the_temperature_is_applied_inside_the_compiled_pass(tiny_predictor):
    images = np.random.default_rng(8).integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    logits = tiny_predictor.predict_logits(images)
    hot = Predictor(tiny_predictor.model, temperature=0.5)
    np.testing.assert_allclose(hot.predict_proba(images), softmax(logits, 0.5), atol=1e-5)
    np.testing.assert_array_equal(hot.predict_logits(images), logits)
    with pytest.raises(AttributeError):
        hot.temperature = 1.0  # fixed at construction: make another Predictor instead


def fused_softmax_model(widths):
    """The architecture as it was before the logits got a layer of their own: the softmax
    inside the Dense layer. The oracle for 'the shipped weights still mean the same'."""
    model = build_model(widths)
    pooled = model.get_layer("global_pool").output
    fused = keras.layers.Dense(10, activation="softmax", name="probabilities", dtype="float32")(pooled)
    return keras.Model(model.input, fused)


def test_shipped_weights_give_the_probabilities_of_the_fused_softmax_architecture():
    old = fused_softmax_model(scaled_widths(1.0))
    old.load_weights(SHIPPED_WEIGHTS)
    images = PredictionSet.load(SHIPPED_TEST_PREDICTIONS).images[:200]
    expected = keras.ops.convert_to_numpy(old(images.astype("float32"), training=False))
    plain = Predictor(Predictor.load().model)  # temperature 1: the network's own probabilities
    np.testing.assert_allclose(plain.predict_proba(images), expected, atol=1e-5)


def with_random_batch_norm_statistics(model, seed):
    """BatchNorm statistics and affine parameters off their defaults (mean 0, variance 1,
    gamma 1, beta 0), so that folding them into the convolutions has something to get wrong."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.5, shape))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, shape))
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape))
            layer.beta.assign(rng.normal(0, 0.3, shape))
    return model


def test_folded_batch_norm_gives_every_stage_of_the_keras_model():
    model = with_random_batch_norm_statistics(build_model(scaled_widths(TINY_WIDTH_MULT)), seed=9)
    predictor = Predictor(model)
    images = np.random.default_rng(10).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    names = ["stage1_conv1_bn", "stage1_conv3_relu", "stage2_pool", "stage3_conv3_relu", "global_pool", "logits"]
    sub_model = keras.Model(model.input, [model.get_layer(name).output for name in names])
    expected = [keras.ops.convert_to_numpy(x) for x in sub_model(images.astype("float32"), training=False)]
    folded = predictor._network.outputs(keras.ops.convert_to_tensor(images.astype("float32")))
    for name, value in zip(names, expected, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(folded[name]), value, rtol=1e-4, atol=1e-4, err_msg=name)


def test_answers_follow_new_weights_after_refresh_weights():
    model = build_model(scaled_widths(TINY_WIDTH_MULT))
    predictor = Predictor(model)
    images = np.random.default_rng(11).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    before = predictor.predict_proba(images)
    with_random_batch_norm_statistics(model, seed=12)  # what a training epoch changes, among others
    np.testing.assert_array_equal(predictor.predict_proba(images), before)  # folded when it was made
    predictor.refresh_weights()
    expected = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    np.testing.assert_allclose(predictor.predict_proba(images), expected, atol=1e-5)
    assert np.abs(expected - before).max() > 0.01


def test_a_bfloat16_model_folds_too():
    bfloat16 = build_model(scaled_widths(TINY_WIDTH_MULT), precision="mixed_bfloat16")
    model = with_random_batch_norm_statistics(bfloat16, seed=14)
    images = np.random.default_rng(15).integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    # bf16 keeps 8 bits of mantissa: folding rounds differently from BatchNorm after the convolution
    np.testing.assert_allclose(Predictor(model).predict_proba(images), expected, atol=0.03)


def test_a_model_that_is_not_a_chain_is_refused():
    inputs = keras.Input((32, 32, 3))
    branch = keras.layers.Conv2D(4, 3, padding="same", name="left")(inputs)
    other = keras.layers.Conv2D(4, 3, padding="same", name="right")(inputs)
    merged = keras.layers.Add()([branch, other])
    pooled = keras.layers.GlobalAveragePooling2D()(merged)
    outputs = keras.layers.Activation("softmax")(keras.layers.Dense(10, name="logits")(pooled))
    with pytest.raises(ValueError, match="chain of layers"):
        Predictor(keras.Model(inputs, outputs))
