"""The session's current input, shared by the tabs through one gr.State."""

import numpy as np
import pytest
from gradio.utils import deep_equal, deep_hash

from cifar_demo import images
from cifar_demo.ui.classify_tab import example_paths
from cifar_demo.ui.current_input import CurrentInput, current_input, example_inputs


def test_a_cleared_image_is_no_current_input():
    assert current_input(None, "your image") is None


def test_only_a_32x32_rgb_uint8_image_is_a_current_input():
    with pytest.raises(ValueError, match=r"uint8 \(32, 32, 3\)"):
        CurrentInput(np.zeros((32, 32), dtype=np.uint8), "a grey image")
    with pytest.raises(ValueError, match="float32"):
        CurrentInput(np.zeros((32, 32, 3), dtype=np.float32), "floats")


def test_gradio_sees_a_new_input_as_a_change_and_the_same_one_as_none():
    """gr.State fires .change by Gradio's deep_equal: the tabs that follow the input rely on it."""
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    first = current_input(pixels, "test image #1 (really a cat)")
    assert deep_equal(first, current_input(pixels.copy(), "test image #1 (really a cat)"))
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert not deep_equal(first, current_input(changed, "test image #1 (really a cat)"))
    assert not deep_equal(first, current_input(pixels, "your drawing from the Classify tab"))
    # ...and by deep_hash once a .change listener follows the state (Gradio hashes it after each event)
    assert deep_hash(first) == deep_hash(current_input(pixels.copy(), "test image #1 (really a cat)"))
    assert deep_hash(first) != deep_hash(current_input(changed, "test image #1 (really a cat)"))


def test_the_examples_are_the_shipped_test_images_named_by_class_and_index():
    examples = example_inputs()
    assert len(examples) == len(example_paths()) == 10 and "cat (test image #0)" in examples
    cat = examples["cat (test image #0)"]
    np.testing.assert_array_equal(cat.pixels, images.to_model_input(example_paths()[0]))
    assert cat.source == "the example cat (official test image #0)"
