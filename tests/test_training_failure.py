"""A failure inside a training run, simulated in the real app served in-process: the run
ends with a message, the app keeps serving and the shipped model is untouched."""

import hashlib

import numpy as np
import pytest
from gradio_client import Client, handle_file

from cifar_demo import Predictor, data, training
from cifar_demo.artifacts import SHIPPED_WEIGHTS
from cifar_demo.ui import build_app, launch_settings
from cifar_demo.ui.classify_tab import example_paths
from tests.conftest import shown_value, tiny_run, toy_dataset
from tests.local_server import free_port

TINY_RUN = tiny_run(epochs_value=2)


def confidences(result):
    return {item["label"]: item["confidence"] for item in result["confidences"]}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    predictor = Predictor.load()
    demo = build_app(predictor)
    settings = dict(launch_settings(), server_port=free_port())
    demo.launch(prevent_thread_lock=True, quiet=True, **settings)
    try:
        yield predictor, Client(f"http://127.0.0.1:{settings['server_port']}/", verbose=False)
    finally:
        demo.close()


def test_a_failing_run_ends_with_a_message_and_nothing_else_changes(served, monkeypatch):
    predictor, client = served
    monkeypatch.setattr(data, "load_cifar10_cached", lambda: toy_dataset(train=1300, test=50))
    real_augment, calls = training.augment_images, []

    def failing_augment(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # in the middle of the first epoch
            raise RuntimeError("simulated failure in the training loop")
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(training, "augment_images", failing_augment)
    example = handle_file(example_paths()[0])
    before = confidences(client.predict(example, api_name="/classify"))
    weights_before = [w.copy() for w in predictor.model.get_weights()]
    file_hash = hashlib.sha256(SHIPPED_WEIGHTS.read_bytes()).hexdigest()

    status = shown_value(client.predict(**TINY_RUN, api_name="/train")[0])
    assert "run-error" in status and "RuntimeError: simulated failure in the training loop" in status

    assert confidences(client.predict(example, api_name="/classify")) == before
    for before_weights, after_weights in zip(weights_before, predictor.model.get_weights(), strict=True):
        np.testing.assert_array_equal(before_weights, after_weights)
    assert hashlib.sha256(SHIPPED_WEIGHTS.read_bytes()).hexdigest() == file_hash

    monkeypatch.setattr(training, "augment_images", real_augment)  # the slot is free for the next run
    status = shown_value(client.predict(**TINY_RUN, api_name="/train")[0])
    assert "run-done" in status
