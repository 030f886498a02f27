"""Every Keras backend: the backend check's messages, the shipped weights' answers agreeing
across backends, and the unit and API tests re-run under each other installed backend.

The suite itself runs under whatever KERAS_BACKEND says (TensorFlow by default); the
tests here start subprocesses under the other backends and compare with this one.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from cifar_demo import CLASSES, Predictor
from cifar_demo.artifacts import SHIPPED_TEST_PREDICTIONS
from cifar_demo.data import load_cifar10
from cifar_demo.predictions import PredictionSet
from cifar_demo.runtime import BACKENDS, BackendUnavailable, check_keras_backend
from tests.backend_reruns import OTHER_BACKENDS, STARTED, THIS_BACKEND, installed
from tests.conftest import REPO, cifar10_path

AGREEMENT_IMAGES = 1000
EXPLAINED_IMAGES = 20
# What "the same answers" means across backends (float32 everywhere; the kernels differ).
MIN_ARGMAX_AGREEMENT = 0.999
MAX_ABSOLUTE_DIFFERENCE = 1e-4


def run_under(backend, *args, timeout=900):
    environment = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def test_an_unknown_backend_is_one_line_naming_the_choices_and_the_install():
    result = run_under("theano", "-m", "cifar_demo.evaluate", "--help", timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback
    assert "theano" in lines[0] and "tensorflow, torch, jax" in lines[0] and "pip install" in lines[0]


def test_a_backend_whose_package_is_missing_names_its_pip_command():
    with pytest.raises(BackendUnavailable, match=r"needs the torch package.*pip install -r requirements-torch.txt"):
        check_keras_backend({"KERAS_BACKEND": "torch"}, find_spec=lambda name: None)
    assert check_keras_backend({}, find_spec=lambda name: object()) == "tensorflow"


def agreement_images():
    """1,000 official test images when the dataset is here, else the ones shipped."""
    path = cifar10_path()
    if path is not None:
        return load_cifar10(path).x_test[:AGREEMENT_IMAGES]
    return PredictionSet.load(SHIPPED_TEST_PREDICTIONS).images[:AGREEMENT_IMAGES]


ANSWERS_SCRIPT = f"""
import sys
import numpy as np
from cifar_demo import Predictor
images = np.load(sys.argv[1])
predictor = Predictor.load()
maps = np.stack([predictor.explain_pixels(image) for image in images[:{EXPLAINED_IMAGES}]])
np.savez(sys.argv[2], probabilities=predictor.predict_proba(images), maps=maps)
"""


@pytest.fixture(scope="module")
def these_answers(tmp_path_factory):
    images = agreement_images()
    folder = tmp_path_factory.mktemp("agreement")
    np.save(folder / "images.npy", images)
    predictor = Predictor.load()
    maps = np.stack([predictor.explain_pixels(image) for image in images[:EXPLAINED_IMAGES]])
    return folder, predictor.predict_proba(images), maps


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_shipped_weights_answer_the_same_on_every_backend(backend, these_answers):
    if not installed(backend):
        pytest.skip(f"{backend} is not installed ({BACKENDS[backend][1]})")
    folder, probabilities, maps = these_answers
    result = run_under(backend, "-c", ANSWERS_SCRIPT, str(folder / "images.npy"), str(folder / f"{backend}.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(folder / f"{backend}.npz") as theirs:
        agreement = np.mean(theirs["probabilities"].argmax(axis=1) == probabilities.argmax(axis=1))
        assert agreement >= MIN_ARGMAX_AGREEMENT
        assert np.abs(theirs["probabilities"] - probabilities).max() <= MAX_ABSOLUTE_DIFFERENCE
        assert np.abs(theirs["maps"] - maps).max() <= 1e-3  # Grad-CAM: the same map, to float32 rounding
    assert probabilities.shape == (len(agreement_images()), len(CLASSES))


@pytest.mark.skipif(THIS_BACKEND != "tensorflow", reason="the default backend's run starts the others")
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_unit_and_api_tests_pass_under(backend, request):
    """Collects the re-run that tests/conftest.py started when the suite began."""
    reruns = request.config.stash.get(STARTED, {})
    if backend not in reruns:
        pytest.skip(f"{backend} is not installed ({BACKENDS[backend][1]})")
    output, _ = reruns[backend].communicate(timeout=1500)
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    readable = "\n".join(line for line in output.splitlines() if " DEBUG " not in line)  # torch's trace logs
    assert reruns[backend].returncode == 0, f"under KERAS_BACKEND={backend}: {summary}\n{readable[-6000:]}"
    assert " passed" in summary, summary
