"""Adversarial examples on a tiny model, on every backend: FGSM raises the loss, PGD stays
in its budget, the gradient agrees with finite differences, and the smallest flipping
epsilon agrees with a brute-force scan."""

import keras
import numpy as np
import pytest

from cifar_demo import Predictor
from cifar_demo.adversarial import EPSILONS, fgsm, loss_gradient, pgd, smallest_flipping_epsilon
from cifar_demo.model import LOGITS_LAYER, build_model, scaled_widths


@pytest.fixture(scope="module")
def tiny_predictor(shipped_sample):
    """A tiny untrained model whose logits are standardised over the shipped sample images:
    a random network gives nearly every image the same answer, by a wide margin; this one
    answers differently and by small margins, so small budgets flip some images, not all."""
    keras.utils.set_random_seed(0)
    model = build_model(scaled_widths(0.125))
    logits = Predictor(model).predict_logits(shipped_sample)
    dense = model.get_layer(LOGITS_LAYER)
    dense.kernel.assign(keras.ops.convert_to_numpy(dense.kernel) / logits.std(axis=0))
    dense.bias.assign(-logits.mean(axis=0) / logits.std(axis=0))
    return Predictor(model)


@pytest.fixture(scope="module")
def images(shipped_sample):
    return shipped_sample[:6]


def losses(predictor, images, labels):
    """Each image's cross-entropy from the compiled forward pass (no autodiff), float64."""
    logits = predictor.predict_logits(images).astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]


def answers(predictor, images):
    return predictor.predict_proba(images).argmax(axis=1)


def test_fgsm_raises_every_images_loss_by_moving_each_pixel_epsilon_levels(tiny_predictor, images):
    labels = answers(tiny_predictor, images)
    attacked = fgsm(tiny_predictor, images, 4)
    assert attacked.dtype == np.uint8 and attacked.shape == images.shape
    assert (losses(tiny_predictor, attacked, labels) > losses(tiny_predictor, images, labels)).all()
    moved = np.abs(attacked.astype(int) - images)
    assert moved.max() == 4 and set(np.unique(moved)) <= {0, 1, 2, 3, 4}  # less only where 0-255 clips
    np.testing.assert_array_equal(fgsm(tiny_predictor, images, 0), images)


def test_the_loss_gradient_agrees_with_central_differences(tiny_predictor, images):
    labels = answers(tiny_predictor, images[:2])
    gradient = loss_gradient(tiny_predictor, images[:2], labels)
    assert gradient.shape == (2, 32, 32, 3) and gradient.dtype == np.float32
    errors = []
    for index in range(2):
        steepest = [np.unravel_index(flat, (32, 32, 3)) for flat in np.argsort(-np.abs(gradient[index]).ravel())]
        for position in [p for p in steepest if 0 < images[index][p] < 255][:5]:
            moved = np.repeat(images[index : index + 1], 2, axis=0)
            moved[(0, *position)] += 1
            moved[(1, *position)] -= 1
            up, down = losses(tiny_predictor, moved, labels[[index, index]])
            errors.append(abs((up - down) / 2 / gradient[index][position] - 1))
    assert np.median(errors) < 0.1, errors  # a ReLU switching within one level may spoil a few


@pytest.mark.parametrize("epsilon", [1, 3, 8])
def test_pgd_stays_inside_the_epsilon_ball_and_0_255_and_raises_the_loss(tiny_predictor, images, epsilon):
    saturated = images.copy()
    saturated[:, :8] = 255  # pixels at both ends of the range, where the projection must clip
    saturated[:, -8:] = 0
    labels = answers(tiny_predictor, saturated)
    for rng in (None, np.random.default_rng(0)):
        attacked = pgd(tiny_predictor, saturated, epsilon, steps=3, rng=rng)
        assert attacked.dtype == np.uint8 and attacked.shape == saturated.shape
        assert np.abs(attacked.astype(int) - saturated).max() <= epsilon
        assert losses(tiny_predictor, attacked, labels).mean() > losses(tiny_predictor, saturated, labels).mean()
    np.testing.assert_array_equal(pgd(tiny_predictor, saturated, 0, steps=2), saturated)


def brute_force_smallest_epsilon(predictor, image, attack, **options):
    label = answers(predictor, image[None])[0]
    for epsilon in EPSILONS:
        attacked = attack(predictor, image[None], epsilon, labels=np.array([label]), **options)
        if answers(predictor, attacked)[0] != label:
            return epsilon
    return None


@pytest.mark.parametrize("method, attack, options", [("fgsm", fgsm, {}), ("pgd", pgd, {"steps": 2})])
def test_the_smallest_flipping_epsilon_agrees_with_a_brute_force_scan(tiny_predictor, images, method, attack,
                                                                      options):
    images = images[:4]
    found = [smallest_flipping_epsilon(tiny_predictor, image, method, **options) for image in images]
    assert found == [brute_force_smallest_epsilon(tiny_predictor, image, attack, **options) for image in images]
    assert len(set(found)) >= 2, found  # images that flip at different budgets (or not at all)
    for image, epsilon in zip(images, found, strict=True):
        if epsilon is not None:  # at that epsilon the attack flips the answer
            label = answers(tiny_predictor, image[None])[0]
            assert answers(tiny_predictor, attack(tiny_predictor, image[None], epsilon, **options))[0] != label


def test_bad_arguments_are_refused_with_their_name(tiny_predictor, images):
    for epsilon in (2.5, -1, 256, True, "4", [1, 2]):
        with pytest.raises(ValueError, match="epsilon must be a whole number of pixel levels from 0 to 255"):
            fgsm(tiny_predictor, images, epsilon)
    with pytest.raises(ValueError, match=r"attacks take uint8 images of shape \(N, 32, 32, 3\)"):
        pgd(tiny_predictor, images.astype(np.float32), 2)
    with pytest.raises(ValueError, match="labels must be one class index from 0 to 9 per image"):
        fgsm(tiny_predictor, images, 2, labels=np.full(len(images), 10))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        pgd(tiny_predictor, images, 2, steps=0)
    with pytest.raises(ValueError, match="method must be one of fgsm, pgd"):
        smallest_flipping_epsilon(tiny_predictor, images[0], "carlini_wagner")
    with pytest.raises(ValueError, match=r"one uint8 image of shape \(32, 32, 3\)"):
        smallest_flipping_epsilon(tiny_predictor, images)
