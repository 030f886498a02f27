"""The real app under the abuse a public Space meets: a script flooding /train, oversized
runs, a client over its hourly run limit. Each test ends with a normal request that must
succeed. The app here has its own process (low per-hour limits) and a toy training set."""

import time
import uuid

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import ValidationError

from cifar_demo import CLASSES
from cifar_demo.ui.classify_tab import example_paths
from tests.conftest import shown_value, tiny_run, toy_dataset, wait_for_progress
from tests.local_server import AppFailedToStart, start_app, stop_app, wait_for_warm_up

FLOOD_JOINS = 80


@pytest.fixture(scope="module")
def abuse_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("abuse")
    toy = toy_dataset(train=1500, test=300, seed=2)
    np.savez(folder / "toy.npz", x_train=toy.x_train, y_train=toy.y_train, x_test=toy.x_test, y_test=toy.y_test)
    try:
        process, url = start_app(folder / "app.log", CIFAR10_PATH=str(folder / "toy.npz"),
                                 CIFAR10_STUDIO_RUNS_PER_HOUR="2")  # per session; 4 per address
    except AppFailedToStart as error:
        pytest.fail(str(error))
    try:
        wait_for_warm_up(folder / "app.log")  # the latencies measured here are not the start-up's
        yield url, folder / "app.log"
    finally:
        stop_app(process)


def endpoint_index(url, api_name):
    """The fn_index of a named endpoint, as a raw HTTP client finds it in /config."""
    config = httpx.get(f"{url}config", timeout=30).json()
    return next(dep["id"] for dep in config["dependencies"] if dep.get("api_name") == api_name)


def join_without_listening(http, url, fn_index, data):
    """What a flooding script sends: a queue join from a fresh random session whose event
    stream is never opened. Returns the HTTP status."""
    body = {"data": data, "fn_index": fn_index, "session_hash": uuid.uuid4().hex[:11], "event_data": None,
            "trigger_id": None}
    return http.post(f"{url}gradio_api/queue/join", json=body, timeout=30).status_code


def classify_seconds(url):
    client = Client(url, verbose=False)
    started = time.monotonic()
    result = client.predict(handle_file(example_paths()[0]), api_name="/classify")
    assert result["label"] in CLASSES
    return time.monotonic() - started


def test_a_flood_of_unheard_train_requests_never_blocks_classify(abuse_app):
    """The issue's attack: while a real run holds the slot, 80 stream-less /train joins
    from random sessions. They are refused before the queue; /classify from a fresh
    client is answered within 5 s with no 503."""
    url, log_path = abuse_app
    owner = Client(url, verbose=False)
    holding = owner.submit(**tiny_run(epochs_value=30, train_size_value=500, batch_size_value=16,
                                      width_value=0.25), api_name="/train")
    try:
        wait_for_progress(holding)
        fn_index = endpoint_index(url, "train")
        with httpx.Client() as http:
            statuses = [join_without_listening(http, url, fn_index, list(tiny_run().values()))
                        for _ in range(FLOOD_JOINS)]
        assert set(statuses) == {422}, statuses  # refused by the validator: nothing joined the queue
        assert classify_seconds(url) < 5
    finally:
        owner.predict(api_name="/stop_training")
        holding.result(timeout=120)
    assert classify_seconds(url) < 5


def test_unheard_requests_admitted_while_the_slot_is_free_expire_and_free_it(abuse_app):
    """With the slot free, a stream-less /train join is admitted, then dropped when its
    stream never opens; the slot is not held for it and a real run starts afterwards."""
    url, log_path = abuse_app
    fn_index = endpoint_index(url, "train")
    with httpx.Client() as http:
        assert join_without_listening(http, url, fn_index, list(tiny_run().values())) == 200
        # Admitted: for a moment everyone else is told a run is about to start.
        with pytest.raises(ValidationError, match="about to start"):
            Client(url, verbose=False).predict(**tiny_run(), api_name="/train")
    deadline = time.monotonic() + 60
    while "dropped a training request whose client never listened" not in log_path.read_text():
        assert time.monotonic() < deadline, "the unheard request was not dropped"
        time.sleep(0.5)
    assert classify_seconds(url) < 5


def test_a_run_larger_than_the_cap_is_refused_naming_the_limit(abuse_app):
    url, _ = abuse_app
    client = Client(url, verbose=False)
    huge = tiny_run(epochs_value=30, train_size_value=49000, batch_size_value=16, width_value=1.0)
    with pytest.raises(ValidationError, match="too large for the 30:00 min run limit"):
        client.predict(**huge, api_name="/train")
    assert classify_seconds(url) < 5


def test_a_client_over_its_hourly_run_limit_is_refused(abuse_app):
    """CIFAR10_STUDIO_RUNS_PER_HOUR=2 here: two runs per session an hour."""
    url, _ = abuse_app
    client = Client(url, verbose=False)
    for _ in range(2):
        finished = client.submit(**tiny_run(epochs_value=1), api_name="/train").result(timeout=300)
        assert "finished" in shown_value(finished[2])
    with pytest.raises(ValidationError, match="2 runs were started from this browser session.*2 an hour"):
        client.predict(**tiny_run(), api_name="/train")
    assert classify_seconds(url) < 5
