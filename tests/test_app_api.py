"""The real app (`python app.py`, shipped weights) driven through its API with gradio_client."""

import re
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from cifar_demo import CLASSES
from cifar_demo.ui.classify_tab import example_paths
from tests.conftest import shown_value, tiny_run, wait_for_progress

MAX_CONFIG_BYTES = 300_000  # issue 20's bound on the page config


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def top_label(result):
    return result["label"]


def test_api_exposes_classify(client):
    assert "/classify" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_classify_shipped_examples(client):
    """The examples are real test images, one per class; a model above 88% gets most right."""
    paths = example_paths()
    assert len(paths) == 10
    correct = 0
    for path in paths:
        result = client.predict(handle_file(path), api_name="/classify")
        confidences = {c["label"]: c["confidence"] for c in result["confidences"]}
        assert len(confidences) == 5 and set(confidences) <= set(CLASSES)
        assert 0.0 <= min(confidences.values()) <= max(confidences.values()) <= 1.0
        correct += top_label(result) == path.rsplit("_", 1)[1].removesuffix(".png")
    assert correct >= 8, f"only {correct}/10 shipped examples classified correctly"


def test_classify_takes_an_optional_test_time_augmentation_flag(client):
    path = handle_file(example_paths()[1])
    plain = client.predict(path, api_name="/classify")
    augmented = client.predict(path, True, api_name="/classify")
    assert augmented["label"] in CLASSES
    def shown(result):
        return {c["label"]: c["confidence"] for c in result["confidences"]}

    assert shown(plain) != shown(augmented)


def test_bad_uploads_get_a_clear_message_and_the_app_keeps_serving(client, tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    for path, message in ((tmp_path / "notes.jpg", "not an image"), (tmp_path / "empty.png", "empty")):
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(str(path)), api_name="/classify")
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)).save(photo)
    assert top_label(client.predict(handle_file(str(photo)), api_name="/classify")) in CLASSES


def test_drawing_endpoint_hints_on_a_blank_canvas_and_classifies_a_drawing(client, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 320), "white").save(blank)
    drawn = tmp_path / "drawn.png"
    canvas = np.full((320, 320, 3), 255, dtype=np.uint8)
    canvas[120:200, 40:280] = (200, 30, 30)  # a red bar
    Image.fromarray(canvas).save(drawn)

    def editor(path):
        return {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}

    label, seen, hint = client.predict(editor(blank), api_name="/classify_drawing")
    assert seen is None and "Draw something" in hint
    assert label is None or not label.get("confidences")
    label, seen, hint = client.predict(editor(drawn), api_name="/classify_drawing")
    assert label["label"] in CLASSES and seen is not None and hint == ""


TINY_RUN = tiny_run()


def test_train_streams_updates_then_results(client):
    """A tiny Custom run through /train (the app's data is a generated toy set)."""
    job = client.submit(**TINY_RUN, api_name="/train")
    updates = list(job)
    assert len(updates) >= 3, f"only {len(updates)} streamed updates"
    status, curves, results, confusion, grid, downloads = (shown_value(output) for output in updates[-1])
    assert "Done" in status and "run-done" in status
    assert "Test accuracy" in results and "300 official test images" in results
    assert curves is not None and confusion is not None and grid is not None
    names = sorted(Path(item["path"] if isinstance(item, dict) else item).name for item in downloads)
    assert names == ["model.config.json", "model.weights.h5"]


@pytest.mark.same_on_every_backend
def test_train_rejects_bad_settings_with_a_message(client):
    with pytest.raises(Exception, match="epochs must be between 1 and 30"):
        client.predict(**dict(TINY_RUN, epochs_value=500), api_name="/train")
    with pytest.raises(Exception, match="learning rate must be between"):
        client.predict(**dict(TINY_RUN, learning_rate_value=-1), api_name="/train")
    assert top_label(client.predict(handle_file(example_paths()[0]), api_name="/classify")) in CLASSES


@pytest.mark.same_on_every_backend
def test_a_second_run_is_refused_at_once_and_only_its_owner_can_stop_a_run(app_url):
    """One run at a time: a second caller is told why and when to come back, before its
    request joins the queue (it never waits there, filling it)."""
    from gradio_client.exceptions import ValidationError

    first, second = Client(app_url, verbose=False), Client(app_url, verbose=False)
    long_run = dict(TINY_RUN, epochs_value=30, train_size_value=500, batch_size_value=16, width_value=0.5)
    running = first.submit(**long_run, api_name="/train")
    wait_for_progress(running)  # the first run has trained its first batches
    started = time.monotonic()
    with pytest.raises(ValidationError, match="in progress.*One run trains at a time"):
        second.predict(**TINY_RUN, api_name="/train")
    assert time.monotonic() - started < 5
    second.predict(api_name="/stop_training")  # not theirs: the first run goes on
    wait_for_progress(running, reports=2)
    first.predict(api_name="/stop_training")
    results = shown_value(running.result(timeout=120)[2])
    assert "stopped by you" in results and "first 300 official test images" not in results  # toy set: 300 in all
    assert "finished" in shown_value(second.submit(**TINY_RUN, api_name="/train").result(timeout=120)[2])


@pytest.mark.same_on_every_backend
def test_the_rest_api_trains_through_call_and_its_event_stream(app_url):
    """curl's way: POST /gradio_api/call/train, then read GET .../call/train/<event id>.
    The stream is what lets the run start (a request nobody listens to is dropped)."""
    import json

    import httpx

    with httpx.Client(timeout=300) as http:
        posted = http.post(f"{app_url}gradio_api/call/train", json={"data": list(tiny_run(epochs_value=1).values())})
        posted.raise_for_status()
        event_id = posted.json()["event_id"]
        with http.stream("GET", f"{app_url}gradio_api/call/train/{event_id}") as stream:
            events = [line for line in stream.iter_lines() if line.startswith(("event:", "data:"))]
    assert "event: complete" in events, events[-4:]
    final = json.loads(events[events.index("event: complete") + 1].removeprefix("data:"))
    assert "Test accuracy" in shown_value(final[2])


@pytest.mark.same_on_every_backend
def test_the_page_config_stays_small(app_url):
    """Every page load (and every gradio_client) downloads /config: its figures come later."""
    with urllib.request.urlopen(f"{app_url}config", timeout=30) as response:
        size = len(response.read())
    assert size <= MAX_CONFIG_BYTES, f"/config is {size:,} bytes"


@pytest.mark.same_on_every_backend
def test_the_warm_up_runs_after_launch_and_logs_the_start_up_times(app_server):
    """internals.after_launch started app.warm_up once the server listened, with no page
    needing it: the tabs' figures are drawn and the start-up times logged."""
    log_path = app_server[1]
    deadline = time.monotonic() + 120
    while "start-up times:" not in log_path.read_text():
        assert time.monotonic() < deadline, "the warm-up after launch did not run"
        time.sleep(0.5)
    line = next(line for line in log_path.read_text().splitlines() if "start-up times:" in line)
    for part in ("model load", "Classify tab", "About tab", "whole build", "explanations traced",
                 "first views drawn"):
        assert re.search(rf"{part} \d+\.\d\d s", line), line
