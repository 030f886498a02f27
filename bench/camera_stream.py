"""What the Classify tab's live camera costs the server: simulated browsers streaming frames.

    CIFAR10_PATH=../shared/data/cifar10/cifar10.npz python -m bench.camera_stream [--clients 5] [--seconds 30]

Starts the real app (`python app.py`) on a free loopback port. Each client speaks the
protocol Gradio's browser client uses for a streamed input: it joins the queue with its
first frame (/gradio_api/queue/join), listens for answers on /gradio_api/queue/data and
sends each next frame to /gradio_api/stream/<event id>. Frames are 640x480 JPEG data URLs
(what the page sends with the camera at VGA) made from the shipped example images. Like
the page, a client sends a frame on each tick (`--fps` a second) only once the previous
one is answered: a tick that finds it still waiting is a dropped frame. The clients' ticks
are spread evenly over one period, as independent cameras would be. Per-frame time is
from sending a frame to its answer arriving (upload, queue, decoding, inference, the
32x32 view and the response). With --train, a second phase repeats it while a run of that
preset trains through /train in another session (needs CIFAR-10), then stops the run.
"""

import argparse
import base64
import io
import json
import os
import sys
import tempfile
import threading
import time
import uuid

import httpx
import numpy as np
from gradio_client import Client
from PIL import Image

from bench.results import record
from cifar_demo.ui.classify_tab import example_paths
from tests.local_server import start_app, stop_app

API = "classify_camera_stream"
GOAL_P95_MS = 150
WARM_UP_SECONDS = 3         # streamed, not measured, before the first phase


def frames():
    """640x480 JPEG data URLs of the shipped examples, as the page's canvas.toDataURL makes them."""
    urls = []
    for path in example_paths():
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").resize((640, 480), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=92)
        urls.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode())
    return urls


def endpoint(url):
    """(fn_index, trigger component id) of the live stream's event, from the page's config."""
    config = httpx.get(f"{url}/config", timeout=60, follow_redirects=True).json()
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == API:
            return dependency["id"], dependency["targets"][0][0]
    sys.exit(f"the app has no {API} event")


class StreamingClient:
    """One simulated browser tab streaming its camera for `seconds` at `fps` frames a second."""

    def __init__(self, url, fn_index, trigger, pictures, fps, seconds, offset, phase=0.0):
        self.url, self.fn_index, self.trigger = url, fn_index, trigger
        self.pictures, self.fps, self.seconds, self.offset, self.phase = pictures, fps, seconds, offset, phase
        self.session = uuid.uuid4().hex[:10]
        self.times, self.dropped, self.errors = [], 0, []
        self.answered = threading.Event()
        self.arrived = None  # perf_counter() when the last answer arrived
        self.finished = threading.Event()

    def body(self, frame_number):
        picture = self.pictures[(self.offset + frame_number) % len(self.pictures)]
        return {"data": [{"url": picture, "meta": {"_type": "gradio.FileData"}}, None], "event_data": None,
                "fn_index": self.fn_index, "trigger_id": self.trigger, "session_hash": self.session}

    def listen(self, http):
        """Reads the session's message stream; each answer ends the frame in flight."""
        with http.stream("GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": self.session},
                         timeout=None) as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                kind = message.get("msg")
                if kind == "process_streaming" or (kind == "process_completed" and not self.answered.is_set()):
                    if not message.get("success", True):
                        self.errors.append(str(message.get("output"))[:200])
                    self.arrived = time.perf_counter()
                    self.answered.set()
                if kind == "process_completed" or self.finished.is_set():
                    return

    def run(self):
        with httpx.Client(timeout=60) as http:
            sent = time.perf_counter()
            event_id = http.post(f"{self.url}/gradio_api/queue/join", json=self.body(0)).json()["event_id"]
            # As the page does: the session's message stream opens once it has an event.
            listener = threading.Thread(target=self.listen, args=(http,), daemon=True)
            listener.start()
            waiting, number = True, 0
            # Browsers' cameras tick independently: each client's ticks are offset by its share of one period.
            start = time.monotonic() + self.phase / self.fps
            for tick in range(1, int(self.seconds * self.fps) + 1):
                time.sleep(max(0.0, start + tick / self.fps - time.monotonic()))
                if waiting and self.answered.is_set():
                    self.times.append(self.arrived - sent)
                    waiting = False
                if waiting:
                    self.dropped += 1
                    continue
                number += 1
                self.answered.clear()
                sent = time.perf_counter()
                http.post(f"{self.url}/gradio_api/stream/{event_id}", json=self.body(number))
                waiting = True
            self.finished.set()
            http.post(f"{self.url}/gradio_api/stream/{event_id}/close")
            listener.join(10)


def phase(url, clients, fps, seconds):
    """Runs `clients` streaming clients at once; (per-frame seconds, dropped frames, ticks, errors)."""
    fn_index, trigger = endpoint(url)
    pictures = frames()
    streams = [StreamingClient(url, fn_index, trigger, pictures, fps, seconds, i, i / clients) for i in range(clients)]
    threads = [threading.Thread(target=stream.run, daemon=True) for stream in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    times = np.concatenate([np.asarray(stream.times) for stream in streams]) * 1000
    errors = [error for stream in streams for error in stream.errors]
    return times, sum(stream.dropped for stream in streams), clients * int(seconds * fps), errors


def report(name, result, figures):
    times, dropped, ticks, errors = result
    if len(times) == 0:
        print(f"{name}: no frame answered; errors: {errors[:3]}")
        figures[f"{name}: frames answered"] = (0, "frames")
        return
    p50, p95 = np.percentile(times, [50, 95])
    print(f"{name}: {len(times)} frames answered, {dropped} of {ticks} ticks dropped ({dropped / ticks:.0%}), "
          f"{len(errors)} errors; per frame p50 {p50:.0f} ms, p95 {p95:.0f} ms (goal p95 <= {GOAL_P95_MS} ms)",
          flush=True)
    figures[f"{name}: frames answered"] = (len(times), "frames")
    figures[f"{name}: dropped frames"] = (f"{dropped} of {ticks} ({dropped / ticks:.0%})", "")
    figures[f"{name}: per-frame p50"] = (p50, "ms")
    figures[f"{name}: per-frame p95"] = (p95, "ms")
    figures[f"{name}: errors"] = (len(errors), "frames")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--train", default="Quick", help="preset to train during a second phase ('' for none)")
    args = parser.parse_args()
    if args.clients < 1 or not 0 < args.fps <= 30 or not 1 <= args.seconds <= 600:
        parser.error("--clients must be positive, --fps within (0, 30] and --seconds within 1..600")

    log = tempfile.NamedTemporaryFile(prefix="cifar10-studio-camera-", suffix=".log", delete=False)
    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    process, url = start_app(log.name)
    url = url.rstrip("/")
    figures = {}
    try:
        print(f"app at {url}; {args.clients} clients x {args.fps:g} frames/s x {args.seconds:g} s", flush=True)
        phase(url, args.clients, args.fps, WARM_UP_SECONDS)  # the model's first calls trace its functions
        report("idle", phase(url, args.clients, args.fps, args.seconds), figures)
        if args.train:
            trainer = Client(url, verbose=False)
            # A preset ignores the Custom fields; they are sent only because /train takes them.
            job = trainer.submit(args.train, "From scratch", None, None, None, None, 0.25, False, 0.0, 0,
                                 api_name="/train")
            deadline = time.monotonic() + 300
            while "Epoch" not in str(job.outputs()[-1:]):  # the first batches have trained
                if job.done() or time.monotonic() > deadline:
                    sys.exit(f"the training run did not start: {job.outputs()[-1:]}")
                time.sleep(0.5)
            result = phase(url, args.clients, args.fps, args.seconds)
            report(f"while a {args.train} run trains", result, figures)
            trainer.predict(api_name="/stop_training")
            job.result(timeout=300)
    finally:
        stop_app(process)
    record("camera_stream", figures,
           notes=f"{args.clients} simulated browsers in this process (Gradio's stream protocol over httpx), "
                 f"{args.fps:g} frames/s each, 640x480 JPEG frames, app on loopback; 1-minute load average "
                 f"{load:.1f} at the start (other processes on these {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
