import keras
import numpy as np
import pytest

from cifar_demo.model import CIFAR10_MEAN, CIFAR10_STD, build_model, describe_layers, scaled_widths


def test_blog_architecture_and_parameter_count():
    model = build_model()
    assert model.count_params() == 1_927_946
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 9
    assert kinds.count("BatchNormalization") == 9
    assert kinds.count("ReLU") == 9
    assert kinds.count("AveragePooling2D") == 2
    assert kinds.count("GlobalAveragePooling2D") == 1
    assert kinds.count("Dense") == 1
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64] * 3 + [128] * 3 + [256] * 3
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.AveragePooling2D)]
    assert all(p.pool_size == (2, 2) for p in pools)
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.output_shape == (None, 10)


def test_widths_are_a_parameter():
    model = build_model(widths=(8, 16, 32))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8] * 3 + [16] * 3 + [32] * 3
    assert scaled_widths(0.5) == (32, 64, 128)
    assert scaled_widths(1.0) == (64, 128, 256)


@pytest.mark.parametrize("widths", [(64, 128), (0, 1, 2), (8.5, 16, 32)])
def test_bad_widths_raise(widths):
    with pytest.raises(ValueError, match="widths"):
        build_model(widths=widths)


def test_bad_width_mult_raises():
    with pytest.raises(ValueError, match="width_mult"):
        scaled_widths(0)


def test_normalisation_happens_inside_the_model():
    model = build_model(widths=(4, 4, 4))
    normalize = keras.Model(model.input, model.get_layer("normalize").output)
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3)).astype("float32")
    expected = (pixels - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(normalize(pixels)), expected, rtol=1e-5, atol=1e-5)


def test_layer_table_follows_the_model_and_counts_every_parameter():
    model = build_model((4, 8, 16))
    rows = describe_layers(model)
    assert [row["layer"] for row in rows] == [layer.name for layer in model.layers]
    assert sum(row["parameters"] for row in rows) == model.count_params()
    by_name = {row["layer"]: row for row in rows}
    assert by_name["stage1_conv1"]["output shape"] == "32 x 32 x 4" and by_name["stage1_conv1"]["type"] == "Conv2D"
    assert by_name["stage1_conv1"]["parameters"] == 3 * 3 * 3 * 4 + 4  # kernel + bias
    assert by_name["stage3_conv3"]["output shape"] == "8 x 8 x 16"
    assert by_name["logits"]["output shape"] == "10" and by_name["logits"]["parameters"] == 16 * 10 + 10
    assert by_name["probabilities"]["type"] == "Activation" and by_name["probabilities"]["parameters"] == 0
