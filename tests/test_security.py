"""The app's public surface and launch settings, as a public Space needs them."""

import datetime

import pytest

from cifar_demo import images
from cifar_demo.ui import app as app_module
from cifar_demo.ui import build_app, event_streams, guards, internals, launch_settings

PUBLIC_ENDPOINTS = {"classify", "classify_drawing", "classify_snapshot", "classify_camera_stream", "corrupt", "train",
                    "stop_training"}


@pytest.fixture(scope="module")
def demo():
    return build_app()


def test_launch_settings_fit_a_public_space(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    settings = launch_settings()
    assert settings["share"] is False
    assert settings["show_error"] is False  # gr.Error messages still reach people; tracebacks do not
    assert settings["max_file_size"] == app_module.MAX_UPLOAD == images.MAX_FILE_BYTES == 20 * 2**20  # "20mb"
    assert settings["enable_monitoring"] is False
    assert [entry.cls for entry in settings["app_kwargs"]["middleware"]] == [guards.UploadGuard,
                                                                             event_streams.StreamTracker]
    assert "allowed_paths" not in settings and "blocked_paths" not in settings
    assert settings["server_name"] == "127.0.0.1"  # a Space sets GRADIO_SERVER_NAME itself
    monkeypatch.delenv("SYSTEM", raising=False)
    assert launch_settings()["ssr_mode"] is False  # Node would pass on a client's claimed address
    monkeypatch.setenv("SYSTEM", "spaces")
    assert launch_settings()["ssr_mode"] is None  # GRADIO_SSR_MODE decides, as a Space sets it


def test_queue_is_bounded_and_cache_is_cleaned(demo):
    assert demo._queue.max_size == app_module.QUEUE_SIZE
    assert demo._queue.default_concurrency_limit == app_module.QUEUE_CONCURRENCY
    assert demo.delete_cache == app_module.CACHE_CLEANUP
    frequency, age = app_module.CACHE_CLEANUP
    assert frequency < 3600 and age < 3600  # more often than hourly


def test_analytics_are_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    assert app_module.analytics_enabled() is False
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    assert app_module.analytics_enabled() is True


def test_only_the_documented_endpoints_are_callable(demo):
    """Every other event is private: a client cannot call 'use this model' or the views'
    handlers directly. The Examples loader stays callable but undocumented (Gradio's own)."""
    visibility = {fn.api_name: fn.api_visibility for fn in demo.fns.values()}
    assert {name for name, seen in visibility.items() if seen == "public"} == PUBLIC_ENDPOINTS
    assert {name for name, seen in visibility.items() if seen == "undocumented"} <= {"load_example"}


def test_train_is_checked_before_the_queue_and_never_waits_in_it(demo):
    """/train has a validator (the slot and fair-use check, run when the request joins the
    queue) and no concurrency limit: an admitted run starts at once, a refused one never
    queues; the one-run rule is the TrainingSlot's (tests/test_training_runs.py)."""
    train = next(fn for fn in demo.fns.values() if fn.api_name == "train")
    assert train.validator is not None
    assert train.concurrency_limit is None


class FakeStateHolder:
    """The two things release_if_idle reads of Gradio's StateHolder, and what it deletes."""

    def __init__(self, last_used):
        self.time_last_used = {"s1": last_used}
        self.deleted = []

    def __contains__(self, session_hash):
        return session_hash in self.time_last_used

    def delete_state(self, session_hash):
        self.deleted.append(session_hash)


def test_a_closed_session_is_freed_only_if_it_stayed_idle():
    closed_at = datetime.datetime(2026, 11, 30, 12, 0, 0)
    idle = FakeStateHolder(last_used=closed_at - datetime.timedelta(seconds=1))
    internals.release_if_idle(idle, "s1", closed_at)
    assert idle.deleted == ["s1"]
    back = FakeStateHolder(last_used=closed_at + datetime.timedelta(seconds=30))  # the page came back
    internals.release_if_idle(back, "s1", closed_at)
    assert back.deleted == []
    gone = FakeStateHolder(last_used=closed_at)
    internals.release_if_idle(gone, "other-session", closed_at)
    assert gone.deleted == []
