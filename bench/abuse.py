"""/classify latency for a normal visitor, idle and while one script floods the app, side
by side in one run.

    python -m bench.abuse [--requests 40] [--rounds 2] [--flooders 4] [--with-classify]

Starts the real app (`python app.py`, generated toy training data) on a free loopback
port. The flood is what tests/test_abuse.py sends once, kept up for a whole phase:
`--flooders` threads each post queue joins for /train from fresh random sessions whose
result streams are never opened, as fast as the server answers (with --with-classify,
every other join is a /classify: those are admitted and run, since classifying is what
anyone may ask for; only a per-address limit in a proxy stops that flood). Phases
alternate idle / flood for `--rounds` rounds; in each, one gradio_client client classifies
the shipped examples `--requests` times, one after another, and the bench prints p50 and
p95 of what it waited, the flood's requests and their HTTP statuses.
"""

import argparse
import collections
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from gradio_client import Client, handle_file

from bench.results import record
from cifar_demo.ui.classify_tab import example_paths
from tests.conftest import tiny_run, toy_dataset
from tests.local_server import start_app, stop_app


def endpoint_index(url, api_name):
    config = httpx.get(f"{url}config", timeout=30).json()
    return next(dep["id"] for dep in config["dependencies"] if dep.get("api_name") == api_name)


def upload(url, path):
    """The example uploaded once, as the flood's /classify joins refer to it."""
    with open(path, "rb") as file:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (Path(path).name, file, "image/png")})
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}


class Flood:
    """Threads posting stream-less queue joins until stopped; counts the HTTP statuses."""

    def __init__(self, url, flooders, with_classify=False):
        self.url = url
        self.flooders = flooders
        self.statuses = collections.Counter()
        self.payloads = [(endpoint_index(url, "train"), list(tiny_run().values()))]
        if with_classify:
            self.payloads.append((endpoint_index(url, "classify"), [upload(url, example_paths()[0]), False]))
        self._stop = threading.Event()
        self._threads = []
        self._lock = threading.Lock()

    def __enter__(self):
        self._stop.clear()
        self._threads = [threading.Thread(target=self._flood, args=(index,), daemon=True)
                         for index in range(self.flooders)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _flood(self, index):
        with httpx.Client(timeout=30) as http:
            count = index
            while not self._stop.is_set():
                fn_index, data = self.payloads[count % len(self.payloads)]
                count += 1
                body = {"data": data, "fn_index": fn_index, "session_hash": uuid.uuid4().hex[:11],
                        "event_data": None, "trigger_id": None}
                try:
                    status = http.post(f"{self.url}gradio_api/queue/join", json=body).status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                with self._lock:
                    self.statuses[status] += 1


def classify_latencies(url, requests):
    client = Client(url, verbose=False)
    paths = example_paths()
    latencies, errors = [], []
    for index in range(requests):
        start = time.perf_counter()
        try:
            client.predict(handle_file(paths[index % len(paths)]), api_name="/classify")
            latencies.append(time.perf_counter() - start)
        except Exception as error:
            errors.append(repr(error))
    return np.asarray(latencies) * 1000, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--flooders", type=int, default=4)
    parser.add_argument("--with-classify", action="store_true", help="flood /classify joins as well as /train")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cifar10-studio-abuse-"))
    toy = toy_dataset(train=1500, test=300)
    np.savez(folder / "toy.npz", x_train=toy.x_train, y_train=toy.y_train, x_test=toy.x_test, y_test=toy.y_test)
    process, url = start_app(folder / "app.log", CIFAR10_PATH=str(folder / "toy.npz"))
    phases = {"idle": ([], []), "flood": ([], [])}
    try:
        flood = Flood(url, args.flooders, args.with_classify)
        classify_latencies(url, 3)  # warm-up
        for round_index in range(args.rounds):
            for phase in phases:
                if phase == "flood":
                    with flood:
                        latencies, errors = classify_latencies(url, args.requests)
                else:
                    latencies, errors = classify_latencies(url, args.requests)
                phases[phase][0].extend(latencies)
                phases[phase][1].extend(errors)
                print(f"round {round_index + 1}, {phase}: p50 {np.median(latencies):.0f} ms, {len(errors)} errors",
                      flush=True)
    finally:
        stop_app(process)
    figures = {}
    for phase, (latencies, errors) in phases.items():
        p50, p95 = np.percentile(latencies, [50, 95])
        print(f"{phase}: /classify p50 {p50:.0f} ms, p95 {p95:.0f} ms, {len(errors)} errors of "
              f"{len(latencies) + len(errors)}")
        for error in errors[:3]:
            print(f"  error: {error}")
        figures[f"{phase}: /classify latency p50"] = (p50, "ms")
        figures[f"{phase}: /classify latency p95"] = (p95, "ms")
        figures[f"{phase}: /classify errors"] = (len(errors), "requests")
    sent = sum(flood.statuses.values())
    print(f"flood: {sent} stream-less joins sent; HTTP statuses {dict(flood.statuses)}")
    figures["flood: stream-less queue joins sent"] = (sent, "requests")
    for status, count in sorted(flood.statuses.items(), key=str):
        figures[f"flood: joins answered {status}"] = (count, "requests")
    kinds = "half /train, half /classify joins" if args.with_classify else "/train joins"
    record("abuse", figures, notes=f"{args.flooders} flooding threads ({kinds}), "
                                   f"{args.requests} sequential /classify requests per phase, {args.rounds} rounds")


if __name__ == "__main__":
    main()
