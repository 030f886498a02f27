"""Adversarial examples: the smallest pixel changes that change the model's answer.

FGSM (Goodfellow et al. 2015) and few-step PGD (Madry et al. 2018) under an L-infinity
budget in pixel levels of the 0-255 range, through the running backend's autodiff
(cifar_demo.backend.compile_input_gradient), so they work on every Keras backend. Images stay
uint8: a perturbation of integer images by at most an integer epsilon, rounded, stays
within epsilon, which is also why epsilons are whole levels (no uint8 image lies at a
fractional L-infinity distance from another).
"""

import threading
import weakref

import keras
import numpy as np

from cifar_demo.backend import compile_input_gradient
from cifar_demo.images import check_model_input
from cifar_demo.model import LOGITS_LAYER

MAX_EPSILON = 8                            # the Robustness tab's slider: 1-8 levels of 255
EPSILONS = tuple(range(1, MAX_EPSILON + 1))  # what smallest_flipping_epsilon tries
PGD_STEPS = 7                              # Madry et al.'s CIFAR-10 attack: 7 steps of epsilon / 4
METHODS = ("fgsm", "pgd")
_GRADIENTS = weakref.WeakKeyDictionary()  # predictor -> its compiled loss gradient, freed with it
_GRADIENTS_LOCK = threading.Lock()         # the app's worker threads share a predictor


def loss_gradient(predictor, images, labels):
    """float32 (N, 32, 32, 3): the gradient of each image's cross-entropy loss for its
    label with respect to its pixels (0-255 scale). The loss is on the network's own
    logits; the calibration temperature only rescales them and never changes the answer."""
    return _gradient(predictor, images, labels)


def fgsm(predictor, images, epsilon, labels=None):
    """The fast gradient sign method: each pixel moved by `epsilon` levels (an integer, or
    one per image) in the direction that raises the loss for `labels` (default: the
    model's own answers, so the attack pushes away from what it says now), clipped to
    0-255. uint8 (N, 32, 32, 3) in and out."""
    images, epsilons = _checked(images, epsilon)
    labels = _labels(predictor, images, labels)
    step = epsilons * np.sign(_gradient(predictor, images, labels))
    return np.clip(images + step, 0, 255).astype(np.uint8)


def pgd(predictor, images, epsilon, labels=None, steps=PGD_STEPS, step_size=None, rng=None):
    """Projected gradient descent on the loss (ascent, really): `steps` signed-gradient
    steps of `step_size` levels (default epsilon / 4, as Madry et al.), each followed by
    projection onto the epsilon-ball around the image and onto 0-255, then rounded to
    uint8. With `rng` (a numpy Generator) it starts from a uniform random point of the
    ball, as Madry et al. do; without, from the image itself (deterministic)."""
    images, epsilons = _checked(images, epsilon)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be positive (pixel levels), got {step_size!r}")
    labels = _labels(predictor, images, labels)
    clean = images.astype(np.float32)
    low, high = np.maximum(clean - epsilons, 0), np.minimum(clean + epsilons, 255)
    size = epsilons / 4 if step_size is None else np.float32(step_size)
    current = clean if rng is None else np.clip(clean + rng.uniform(-1, 1, clean.shape) * epsilons, low, high)
    for _ in range(steps):
        current = np.clip(current + size * np.sign(_gradient(predictor, current, labels)), low, high)
    return np.rint(current).astype(np.uint8)


def smallest_flipping_epsilon(predictor, image, method="pgd", epsilons=EPSILONS, **attack_options):
    """The smallest epsilon of `epsilons` at which `method` ("fgsm" or "pgd", with
    `attack_options`) changes the model's answer on one uint8 (32, 32, 3) image, or None
    when none does. Every epsilon is attacked in one batch (one gradient per step for all)."""
    grid, attacked, label = attack_every_epsilon(predictor, image, method, epsilons, **attack_options)
    return first_flip(grid, predictor.predict_proba(attacked), label)


def attack_every_epsilon(predictor, image, method="pgd", epsilons=EPSILONS, **attack_options):
    """(the epsilons sorted, the image attacked at each of them as uint8 (E, 32, 32, 3), the
    model's answer on the clean image) for one uint8 (32, 32, 3) image, in one batch: what
    smallest_flipping_epsilon searches, kept for a view that shows each epsilon's attack."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    pixels = check_model_input(image, "the epsilon search")
    grid = np.asarray(sorted(epsilons))
    if grid.size == 0:
        raise ValueError("epsilons must name at least one epsilon")
    label = int(predictor.predict_proba(pixels[None]).argmax())
    attack = fgsm if method == "fgsm" else pgd
    attacked = attack(predictor, np.repeat(pixels[None], len(grid), axis=0), grid,
                      labels=np.full(len(grid), label), **attack_options)
    return grid, attacked, label


def first_flip(epsilons, probabilities, label):
    """The first of `epsilons` whose attacked image's `probabilities` (E, classes) answer
    something other than `label`, or None."""
    flipped = np.flatnonzero(np.asarray(probabilities).argmax(axis=1) != label)
    return int(epsilons[flipped[0]]) if flipped.size else None


def _gradient(predictor, images, labels):
    """loss_gradient through the predictor's compiled gradient (built on first use)."""
    with _GRADIENTS_LOCK:
        if predictor not in _GRADIENTS:
            _GRADIENTS[predictor] = _compile_loss_gradient(predictor.model)
        gradient = _GRADIENTS[predictor]
    one_hot = np.eye(predictor.model.output.shape[-1], dtype=np.float32)[labels]
    return np.asarray(gradient(np.asarray(images, dtype=np.float32), one_hot), dtype=np.float32)


def _compile_loss_gradient(model):
    """The gradient of each image's cross-entropy on the model's logits, compiled."""
    network = keras.Model(model.input, model.get_layer(LOGITS_LAYER).output)

    def losses(images, one_hot):
        log_probabilities = keras.ops.log_softmax(keras.ops.cast(network(images, training=False), "float32"))
        return -keras.ops.sum(log_probabilities * one_hot, axis=-1)

    return compile_input_gradient(network.variables, losses)


def _checked(images, epsilon):
    """The images as uint8 (N, 32, 32, 3) and epsilon as float32 (N, 1, 1, 1) levels."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"attacks take uint8 images of shape (N, 32, 32, 3), got {images.dtype} {images.shape}")
    epsilons = np.asarray(epsilon)
    if (epsilons.dtype == bool or not np.issubdtype(epsilons.dtype, np.number)
            or epsilons.shape not in ((), (len(images),)) or np.any(epsilons != np.round(epsilons))
            or np.any(epsilons < 0) or np.any(epsilons > 255)):
        raise ValueError(f"epsilon must be a whole number of pixel levels from 0 to 255 (one, or one per image), "
                         f"got {epsilon!r}")
    return images, np.broadcast_to(epsilons.astype(np.float32), (len(images),)).reshape(-1, 1, 1, 1)


def _labels(predictor, images, labels):
    """The given labels as integers, or the model's answers on the clean images."""
    if labels is None:
        return predictor.predict_proba(images).argmax(axis=1)
    labels = np.asarray(labels)
    classes = predictor.model.output.shape[-1]
    if (labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer)
            or np.any(labels < 0) or np.any(labels >= classes)):
        raise ValueError(f"labels must be one class index from 0 to {classes - 1} per image, got {labels!r}")
    return labels
