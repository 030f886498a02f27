"""Limits on request bodies and uploads, as pure ASGI middleware in front of Gradio's routes.

Gradio's `/gradio_api/upload` needs no session and has no rate limit, and one request may
carry up to 1,000 files of `max_file_size` each; its JSON routes (`/gradio_api/queue/join`,
`/gradio_api/stream/...`, where the live camera sends its frames) read a body of any size
into memory. UploadGuard refuses, before Gradio reads a byte: an upload or drawing request
(`/gradio_api/component_server`, where the canvas sends its images) without a Content-Length
(411), any request that declares a body larger than one file (413), and uploads beyond a
per-client token bucket (429); a request stating both a length and a Transfer-Encoding
(400: the server would go by the encoding). A body sent without a length (chunked) is
counted as it arrives and refused with 413 once it passes that bound. Every refusal closes
the connection. The client is the IP address as Gradio reports it (`gr.Request.client.host`:
uvicorn's, which follows X-Forwarded-For only from the proxies FORWARDED_ALLOW_IPS trusts);
IPv6 clients are counted per /64, what one host usually holds. A reverse proxy in front of
a public deployment should still limit every route (README).
"""

import ipaddress
import logging
import math
import os
import time
from collections import OrderedDict

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from cifar_demo import images
from cifar_demo.ui import upload_cache

LOG = logging.getLogger("cifar_demo.refused")
UPLOAD_PATH = "/gradio_api/upload"
DRAWING_PATH = "/gradio_api/component_server"
# One file at the upload limit plus its multipart envelope (a few hundred bytes): the most
# any request may carry (a drawing's or camera frame's JSON is far smaller).
MAX_BODY_BYTES = images.MAX_FILE_BYTES + 64 * 1024
# Refusals close the connection: the server then stops reading (and discarding) the rest
# of a body it refused.
CLOSE = {"Connection": "close"}
# A person uploads a photo every few seconds at most; a script that uploads more than this
# is throttled. Environment variables for deployments and tests.
UPLOADS_PER_MINUTE = float(os.environ.get("CIFAR10_STUDIO_UPLOADS_PER_MINUTE", "60"))
UPLOAD_BURST = int(os.environ.get("CIFAR10_STUDIO_UPLOAD_BURST", "30"))
# Clients remembered at once (least recently seen forgotten first): bounds the memory an
# attacker with many addresses can make the limiter hold.
MAX_CLIENTS = 10_000


def middleware():
    """The app's middleware, in order (the first sees a request first), for
    `demo.launch(app_kwargs={"middleware": middleware()})`."""
    return [Middleware(UploadGuard)]


class RateLimiter:
    """A token bucket per client: `burst` requests at once, refilled at `per_minute`."""

    def __init__(self, per_minute=UPLOADS_PER_MINUTE, burst=UPLOAD_BURST, max_clients=MAX_CLIENTS,
                 clock=time.monotonic):
        if per_minute <= 0 or burst < 1 or max_clients < 1:
            raise ValueError(f"a rate limit needs per_minute > 0, burst >= 1 and max_clients >= 1, "
                             f"got {per_minute}, {burst} and {max_clients}")
        self.rate, self.burst, self.max_clients, self.clock = per_minute / 60.0, burst, max_clients, clock
        self.buckets = OrderedDict()  # client -> [tokens, time of last refill, refusing since]

    def wait(self, client):
        """0 when `client` may go now (and counts it), else the seconds until it may."""
        now = self.clock()
        tokens, last, refusing = self.buckets.pop(client, (self.burst, now, None))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.remember(client, [tokens - 1, now, None])
            return 0.0
        self.remember(client, [tokens, now, refusing if refusing is not None else now])
        if refusing is None:  # one log line when a client starts being refused, not one per request
            LOG.info("refusing uploads from %s: over %g per minute (burst %d)", client, self.rate * 60, self.burst)
        return (1 - tokens) / self.rate

    def remember(self, client, bucket):
        self.buckets[client] = bucket
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)


def client_of(scope):
    """The client's address as Gradio reports it; an IPv6 address as its /64 network."""
    return client_key((scope.get("client") or ("unknown", 0))[0])


def client_key(host):
    """`host` as one client: an IPv6 address as its /64 network (what one host usually
    holds, so a fresh address from it is the same client), anything else as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return str(ipaddress.ip_network(f"{host}/64", strict=False)) if address.version == 6 else host


class UploadGuard:
    """Pure ASGI middleware: a body bound on every request, a rate limit on uploads."""

    def __init__(self, app, limiter=None, max_body=MAX_BODY_BYTES):
        self.app, self.limiter, self.max_body = app, limiter or RateLimiter(), max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        is_upload = scope["method"] == "POST" and path.endswith(UPLOAD_PATH)
        is_file_route = is_upload or (scope["method"] == "POST" and path.endswith(DRAWING_PATH))
        refusal = self.refusal(scope, is_file_route, is_upload)
        if refusal is not None:
            return await refusal(scope, receive, send)
        response_started = False

        async def noting_send(message):
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, self.bounded(receive, lambda: response_started), noting_send)
        if is_upload:
            upload_cache.wake()  # the cache may be over its cap now

    def refusal(self, scope, is_file_route, is_upload):
        """The response refusing this request, or None to let it through."""
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if b"transfer-encoding" in headers and length is not None:
            return PlainTextResponse("A request states either a Content-Length or a Transfer-Encoding, not both.\n",
                                     status_code=400, headers=CLOSE)
        if length is None or not length.isdigit():
            if is_file_route:
                return PlainTextResponse("An upload must state its Content-Length.\n", status_code=411,
                                         headers=CLOSE)
            return None  # a body without a length is counted as it arrives (`bounded`)
        if int(length) > self.max_body:
            return PlainTextResponse(self.too_large(int(length)), status_code=413, headers=CLOSE)
        if is_upload:
            wait = self.limiter.wait(client_of(scope))
            if wait > 0:
                return PlainTextResponse(
                    f"Too many uploads: at most {self.limiter.rate * 60:g} a minute (bursts of "
                    f"{self.limiter.burst}); try again in {math.ceil(wait)} s.\n",
                    status_code=429, headers={"Retry-After": str(math.ceil(wait)), **CLOSE})
        return None

    def too_large(self, size):
        return (f"The request is too large ({size / 2**20:.1f} MB); the limit is one file of "
                f"{images.MAX_FILE_BYTES / 2**20:.0f} MB.\n")

    def bounded(self, receive, response_started):
        """`receive` that raises HTTPException 413 once the body passes the bound (FastAPI
        passes it on from where the route reads its body, and answers 413), or, once the
        route has started its response (a stream that listens for the client leaving),
        says the client left."""
        received = 0

        async def receive_within_bound():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    if response_started():
                        return {"type": "http.disconnect"}
                    raise HTTPException(413, self.too_large(received).strip(), headers=CLOSE)
            return message

        return receive_within_bound
