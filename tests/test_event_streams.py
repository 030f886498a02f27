"""Stream tracking and the expiry of unheard queued events, on fake requests and a fake queue
(the real app under a flood: tests/test_abuse.py)."""

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from cifar_demo.ui import event_streams
from cifar_demo.ui.event_streams import OpenStreams, StreamTracker, expire_unheard_events, stream_key


def http(path, query=b"", method="GET"):
    return {"type": "http", "method": method, "path": path, "query_string": query}


def test_stream_key_names_the_session_a_result_stream_serves():
    assert stream_key(http("/gradio_api/queue/data", b"session_hash=abc123")) == "abc123"
    assert stream_key(http("/gradio_api/call/train/ev42")) == "ev42"
    assert stream_key(http("/gradio_api/call/v2/train/ev42")) == "ev42"
    assert stream_key(http("/gradio_api/queue/join", method="POST")) is None
    assert stream_key(http("/gradio_api/call/train", method="POST")) is None
    assert stream_key(http("/config")) is None
    assert stream_key({"type": "lifespan"}) is None


def test_open_streams_counts_and_waits():
    streams = OpenStreams()
    assert not streams.wait_for("s", timeout=0.05) and not streams.ever_opened("s")
    threading.Timer(0.1, streams.opened, args=("s",)).start()
    assert streams.wait_for("s", timeout=5)
    streams.opened("s")
    streams.closed("s")
    assert streams.is_open("s")  # one of its two streams is still open
    streams.closed("s")
    assert not streams.is_open("s") and streams.ever_opened("s")


def test_the_middleware_marks_a_stream_open_while_it_is_served():
    streams = OpenStreams()
    seen_inside = []

    async def app(scope, receive, send):
        seen_inside.append(streams.is_open("abc"))

    class Gradio:
        def get_blocks(self):
            return SimpleNamespace(_queue=fake_queue([]))

    async def serve():
        tracker = StreamTracker(app, streams=streams)
        scope = dict(http("/gradio_api/queue/data", b"session_hash=abc"), app=Gradio())
        await tracker(scope, None, None)
        tracker._expiry.cancel()

    asyncio.run(serve())
    assert seen_inside == [True] and not streams.is_open("abc") and streams.ever_opened("abc")


def fake_queue(events, running=()):
    """The parts of Gradio's Queue the expiry reads and calls."""
    queue = SimpleNamespace(
        event_queue_per_concurrency_id={"default": SimpleNamespace(queue=list(events))},
        active_jobs=[list(running)],
        pending_messages_per_session={event.session_hash: [] for event in [*events, *running]},
        pending_event_ids_session={event.session_hash: {event._id} for event in [*events, *running]},
        cleaned=[],
    )

    async def clean_events(event_id):
        queue.cleaned.append(event_id)
        queue.event_queue_per_concurrency_id["default"].queue[:] = [
            e for e in queue.event_queue_per_concurrency_id["default"].queue if e._id != event_id]

    queue.clean_events = clean_events
    return queue


def event(event_id, session, waited):
    return SimpleNamespace(_id=event_id, session_hash=session, enqueue_time=time.monotonic() - waited)


def test_expiry_drops_old_queued_events_of_sessions_that_never_listened(monkeypatch):
    monkeypatch.setattr(event_streams, "EXPIRY_CHECK_SECONDS", 0.01)
    monkeypatch.setattr(event_streams, "STREAM_GRACE_SECONDS", 0.05)
    streams = OpenStreams()
    streams.opened("listener")
    queue = fake_queue([event("unheard", "script", 60), event("new", "newcomer", 0), event("heard", "listener", 60)],
                       running=[event("running", "worker", 60)])
    blocks = SimpleNamespace(_queue=queue)

    async def run_for(seconds):
        task = asyncio.create_task(expire_unheard_events(blocks, streams))
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(run_for(0.03))
    assert queue.cleaned == ["unheard"]
    asyncio.run(run_for(0.3))  # the newcomer never listens either, and its grace runs out
    assert queue.cleaned == ["unheard", "new"]
    # Undelivered results of sessions that never listened are dropped; a running event's are kept.
    assert set(queue.pending_messages_per_session) == {"listener", "worker"}


@pytest.mark.parametrize("path", ["/gradio_api/queue/data", "/gradio_api/call/train/x"])
def test_a_stream_that_fails_still_counts_as_closed(path):
    streams = OpenStreams()

    async def broken(scope, receive, send):
        raise RuntimeError("client went away")

    async def serve():
        tracker = StreamTracker(broken, streams=streams)
        tracker._expiry = object()  # no expiry task for this test
        with pytest.raises(RuntimeError):
            await tracker(http(path, b"session_hash=x"), None, None)

    asyncio.run(serve())
    assert not streams.is_open("x")
