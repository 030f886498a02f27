"""Generated class drawings (cifar_demo/class_drawings.py): the renderer the drawing
development set shares, and the training option that replaces images with drawings of
their class."""

import numpy as np
import pytest

from cifar_demo import CLASSES, class_drawings, training
from cifar_demo.class_drawings import BLACK, SKY, TRAINING_TEMPLATES, WHITE
from cifar_demo.drawing_style import CANVAS_SIZE, PALETTE
from cifar_demo.images import to_model_input
from cifar_demo.training import TrainConfig
from devsets import drawings as dev_drawings

pytestmark = pytest.mark.same_on_every_backend


def colours_of(canvas):
    return {"#{:02x}{:02x}{:02x}".format(*colour) for _, colour in canvas.getcolors(CANVAS_SIZE**2)}


def test_a_part_in_the_colour_of_its_scenery_is_outlined_in_black(monkeypatch):
    """A sky-blue plane scribbled on a scribbled sky would be invisible: a person outlines it."""
    plane = {"colours": [(SKY,)], "background": "sky", "parts": [("shape", [(0.2, 0.4), (0.8, 0.4), (0.5, 0.7)])]}
    monkeypatch.setattr(class_drawings, "STYLES", ("scribble",))
    for share, colours in ((1.0, {SKY, WHITE, BLACK}), (0.0, {SKY, WHITE})):
        monkeypatch.setattr(class_drawings, "BACKGROUND_SHARE", share)  # on the sky: outlined; on white: as it is
        assert colours_of(class_drawings.draw(plane, np.random.default_rng(0))) == colours


def test_every_training_template_draws_in_the_palette_and_differs_from_the_dev_set():
    """The dev set (devsets/drawings.py) measures how far the drawings carry over only if
    training never draws its templates."""
    assert set(TRAINING_TEMPLATES) == set(CLASSES) == set(dev_drawings.TEMPLATES)
    for name, templates in TRAINING_TEMPLATES.items():
        assert len(templates) >= 2, name
        for template in templates:
            assert template["parts"] != dev_drawings.TEMPLATES[name]["parts"], name
            canvas = class_drawings.draw(template, np.random.default_rng(5))
            assert colours_of(canvas) <= set(PALETTE), name
            assert (np.asarray(canvas) != 255).any(axis=2).mean() > 0.03, name  # something drawn


def test_a_share_of_the_images_becomes_drawings_of_their_own_class():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(40) % 10
    assert class_drawings.class_drawing_images(images, labels, np.random.default_rng(1), 0.0) is images
    out = class_drawings.class_drawing_images(images, labels, np.random.default_rng(1), 1.0)
    oracle = np.random.default_rng(1)
    oracle.random(len(images))  # which images are replaced: all of them at share 1
    for image, label in zip(out, labels, strict=True):  # each one a drawing of one of its class's templates
        templates = TRAINING_TEMPLATES[CLASSES[label]]
        drawn = class_drawings.draw(templates[oracle.integers(len(templates))], oracle)
        np.testing.assert_array_equal(image, to_model_input(np.asarray(drawn)))
    half = class_drawings.class_drawing_images(images, labels, np.random.default_rng(2), 0.5)
    replaced = (half != images).any(axis=(1, 2, 3))
    assert 0.25 <= replaced.mean() <= 0.75 and half.dtype == np.uint8
    np.testing.assert_array_equal(half[~replaced], images[~replaced])
    np.testing.assert_array_equal(half, class_drawings.class_drawing_images(images, labels,
                                                                            np.random.default_rng(2), 0.5))
    with pytest.raises(ValueError, match="share must be in \\[0, 1\\]"):
        class_drawings.class_drawing_images(images, labels, rng, 1.5)
    with pytest.raises(ValueError, match="one label per image: got 39 labels for 40 images"):
        class_drawings.class_drawing_images(images, labels[:39], rng, 0.5)


def test_the_training_option_is_checked_and_off_unless_asked():
    TrainConfig(class_drawings=0.1).validate()
    assert TrainConfig().class_drawings == 0.0
    for bad in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="class_drawings must be in \\[0, 1\\]"):
            TrainConfig(class_drawings=bad).validate()


def test_a_run_draws_each_batch_image_with_its_own_label(toy_data, monkeypatch):
    seen = []

    def recorded(images, labels, rng, share):
        seen.append((images.copy(), np.asarray(labels).copy(), share))
        return class_drawings.class_drawing_images(images, labels, rng, share)

    monkeypatch.setattr(training, "class_drawing_images", recorded)
    config = TrainConfig(width_mult=0.125, batch_size=64, val_size=64, train_size=128, epochs=1, augment=False,
                         class_drawings=0.5)
    result = training.Trainer(config).run(toy_data)
    assert result.steps == 2 and [share for _, _, share in seen] == [0.5, 0.5]
    label_of = {image.tobytes(): label for image, label in zip(toy_data.x_train, toy_data.y_train, strict=True)}
    for images, labels, _ in seen:  # unaugmented: each batch image is a training image, with its label
        assert [label_of[image.tobytes()] for image in images] == labels.tolist()
