"""Which clients are listening, and expiry for queued events that nobody listens to.

Gradio sends an event's results to its client over a separate streaming request (GET
/gradio_api/queue/data?session_hash=S for the browser and gradio_client, GET
/gradio_api/call/<api>/<event_id> for the REST API, whose session id is the event id), and
it runs a queued event whether or not that stream was ever opened. So one script can join
the queue many times without listening: the events fill the queue and take workers that
visitors need. Gradio drops an event only when an open stream closes.

`StreamTracker`, an ASGI middleware, notes every stream as it opens and closes. With it,
a long event (/train) waits for its own stream before it takes anything shared, and
`expire_unheard_events` drops queued events whose stream never opened, through Gradio's
own `Queue.clean_events`. Gradio's queue is private API (`Blocks._queue`): this module is
the one place that touches it.
"""

import asyncio
import collections
import threading
import time
from urllib.parse import parse_qs

from starlette.middleware import Middleware

STREAM_GRACE_SECONDS = 10  # a client opens its stream within milliseconds of joining the queue
EXPIRY_CHECK_SECONDS = 2   # how often queued events are checked
SEEN_MEMORY_SECONDS = 3600  # how long a session that once listened counts as a listener


class OpenStreams:
    """Counts the open result streams per session id, thread-safe (handlers run in threads)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._open = collections.Counter()
        self._seen = {}   # session id -> when its last stream opened or closed
        self._changed = threading.Condition()

    def opened(self, key):
        with self._changed:
            self._open[key] += 1
            self._seen[key] = self._clock()
            self._changed.notify_all()

    def closed(self, key):
        with self._changed:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]
            self._seen[key] = self._clock()
            self._forget_old()

    def is_open(self, key):
        with self._changed:
            return key in self._open

    def ever_opened(self, key):
        with self._changed:
            return key in self._open or key in self._seen

    def wait_for(self, key, timeout):
        """True once `key` has a stream open, False when none opened within `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: key in self._open, timeout=timeout)

    def _forget_old(self):
        oldest = self._clock() - SEEN_MEMORY_SECONDS
        for key in [key for key, when in self._seen.items() if when < oldest and key not in self._open]:
            del self._seen[key]


STREAMS = OpenStreams()


def stream_key(scope):
    """The session id a request streams results to, or None when it is not a result stream."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    path = scope["path"]
    if path.endswith("/queue/data"):
        return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [None])[0]
    parts = path.rstrip("/").split("/")
    if "call" in parts[:-2]:  # .../call/<api name>/<event id> (or call/v2/...)
        return parts[-1]
    return None


class StreamTracker:
    """ASGI middleware: records open result streams in STREAMS and, with the first request,
    starts the expiry of unheard queued events in the Gradio app it wraps."""

    def __init__(self, app, streams=STREAMS):
        self.app = app
        self.streams = streams
        self._expiry = None

    async def __call__(self, scope, receive, send):
        if self._expiry is None and scope["type"] == "http":
            blocks = scope["app"].get_blocks()  # Starlette puts the application (Gradio's App) in the scope
            self._expiry = asyncio.get_running_loop().create_task(expire_unheard_events(blocks, self.streams))
        key = stream_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        self.streams.opened(key)
        try:
            await self.app(scope, receive, send)
        finally:
            self.streams.closed(key)


async def expire_unheard_events(blocks, streams=STREAMS):
    """Forever: drops every event that has waited in the queue longer than the grace period
    for a session that never opened a stream, and the undelivered messages of such sessions."""
    first_seen = {}  # stream-less session -> when this task first saw it
    while True:
        await asyncio.sleep(EXPIRY_CHECK_SECONDS)
        queue = blocks._queue
        now = time.monotonic()
        for event_queue in list(queue.event_queue_per_concurrency_id.values()):
            for event in list(event_queue.queue):
                if now - event.enqueue_time > STREAM_GRACE_SECONDS and not streams.ever_opened(event.session_hash):
                    await queue.clean_events(event_id=event._id)
        # Results that were never collected: Gradio keeps them until a stream reads them.
        busy = {event.session_hash for jobs in queue.active_jobs if jobs for event in jobs}
        busy.update(event.session_hash for event_queue in queue.event_queue_per_concurrency_id.values()
                    for event in event_queue.queue)
        for session in list(queue.pending_messages_per_session):
            if session in busy or streams.ever_opened(session):
                first_seen.pop(session, None)
                continue
            since = first_seen.setdefault(session, now)
            if now - since > STREAM_GRACE_SECONDS:
                queue.pending_messages_per_session.pop(session, None)
                queue.pending_event_ids_session.pop(session, None)
                del first_seen[session]


def middleware():
    """The middleware list for `demo.launch(app_kwargs={"middleware": ...})`."""
    return [Middleware(StreamTracker)]
