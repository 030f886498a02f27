"""The unit and API tests re-run under every other installed Keras backend.

They run in subprocesses started as soon as the suite is collected, at a lower CPU priority,
and their results are collected by the last tests of the run (tests/conftest.py moves them
there): the re-runs use the cores the suite leaves idle while it waits on servers, browsers
and sleeps, instead of adding their minutes after it."""

import importlib.util
import os
import subprocess
import sys
from functools import partial

import keras
import pytest

from cifar_demo.runtime import BACKENDS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THIS_BACKEND = keras.backend.backend()
OTHER_BACKENDS = [name for name in BACKENDS if name != THIS_BACKEND]
# Re-run under each other backend: the fast unit tests and the API tests. Browser tests, the
# CLI's full training runs and the tests marked same_on_every_backend (the server's rules and
# forms, Python above the engine) stay with the default backend.
RERUN = ["tests/test_predictor.py", "tests/test_explain.py", "tests/test_model.py", "tests/test_training.py",
         "tests/test_ood.py", "tests/test_evaluate.py", "tests/test_training_runs.py", "tests/test_app_api.py",
         "tests/test_adversarial.py", "tests/test_inside.py"]
# The test that collects them (tests/test_backends.py); it runs last.
COLLECTING_TEST = "tests/test_backends.py::test_unit_and_api_tests_pass_under"
# Higher is kinder: the suite's own timed checks keep most of the CPU they would get alone.
NICENESS = 10
STARTED = pytest.StashKey[dict]()


def installed(backend):
    return importlib.util.find_spec(BACKENDS[backend][0]) is not None


def start():
    """{backend: its running pytest process} for every other installed backend (only the
    default TensorFlow run starts them)."""
    if THIS_BACKEND != "tensorflow":
        return {}
    started = {}
    for backend in OTHER_BACKENDS:
        if installed(backend):
            started[backend] = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                 "not browser and not same_on_every_backend", *RERUN],
                cwd=REPO, env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": REPO}, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, preexec_fn=partial(os.nice, NICENESS))
    return started


def schedule(config, items):
    """Moves the collecting tests to the end of `items` and starts their re-runs now."""
    collecting = [item for item in items if item.nodeid.startswith(COLLECTING_TEST)]
    if collecting and not config.option.collectonly:
        items[:] = [item for item in items if item not in collecting] + collecting
        config.stash[STARTED] = start()


def stop(config):
    """Ends re-runs nobody collected (an interrupted or failed-fast run)."""
    for process in config.stash.get(STARTED, {}).values():
        if process.poll() is None:
            process.kill()
        process.wait()
