"""/classify latency under concurrent clients, idle and while a training run is going.

    CIFAR10_PATH=../shared/data/cifar10/cifar10.npz python -m bench.load [--clients 20] [--seconds 30] [--train Quick]

Starts the real app (`python app.py`) on a free loopback port, then for each phase runs
`--clients` gradio_client clients that send the shipped example images to /classify
back to back for `--seconds`, and prints requests, errors and latency percentiles
(upload + queue + inference + response, as a user waits for it). With --train, a second
phase repeats the measurement while a run of that preset trains through /train, and
stops it afterwards through /stop_training. Everything stops by itself.
"""

import argparse
import sys
import tempfile
import threading
import time

import numpy as np
from gradio_client import Client, handle_file

from bench.results import record
from cifar_demo.ui.classify_tab import example_paths
from tests.local_server import start_app, stop_app


def hammer(url, clients, seconds):
    """Each client classifies example images back to back until the time is up."""
    paths = example_paths()
    latencies, errors = [], []
    lock = threading.Lock()
    stop_at = []
    # The clock starts once every client is connected (the barrier's action runs before any
    # party is released): connecting 20 clients can take longer than the phase itself.
    ready = threading.Barrier(clients + 1, action=lambda: stop_at.append(time.monotonic() + seconds))

    def worker(index):
        client = Client(url, verbose=False)
        ready.wait()
        count = index
        while time.monotonic() < stop_at[0]:
            path = paths[count % len(paths)]
            count += 1
            start = time.perf_counter()
            try:
                client.predict(handle_file(path), api_name="/classify")
                with lock:
                    latencies.append(time.perf_counter() - start)
            except Exception as error:
                with lock:
                    errors.append(repr(error))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join(seconds + 120)
    return np.asarray(latencies) * 1000, errors


def report(phase, latencies, errors, seconds, figures):
    """Prints a phase's figures and adds them to `figures` for bench/RESULTS.md."""
    figures[f"{phase}: requests answered in {seconds:g} s"] = (len(latencies), "requests")
    figures[f"{phase}: errors"] = (len(errors), "requests")
    if len(latencies) == 0:
        print(f"{phase}: no request succeeded; errors: {errors[:3]}")
        return
    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"{phase}: {len(latencies)} requests ({len(latencies) / seconds:.1f}/s), {len(errors)} errors; "
          f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {latencies.max():.0f} ms", flush=True)
    for error in errors[:3]:
        print(f"  error: {error}")
    figures[f"{phase}: latency p50"] = (p50, "ms")
    figures[f"{phase}: latency p95"] = (p95, "ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--train", default=None, help="preset to train during a second phase (Quick, Standard)")
    args = parser.parse_args()
    if args.clients < 1 or not 1 <= args.seconds <= 600:
        parser.error("--clients must be positive and --seconds within 1..600")

    log = tempfile.NamedTemporaryFile(prefix="cifar10-studio-load-", suffix=".log", delete=False)
    process, url = start_app(log.name)
    figures = {}
    try:
        print(f"app at {url}; {args.clients} clients x {args.seconds:g} s per phase", flush=True)
        latencies, errors = hammer(url, args.clients, args.seconds)
        report("idle", latencies, errors, args.seconds, figures)
        if args.train:
            trainer = Client(url, verbose=False)
            # A preset ignores the Custom fields; they are sent only because /train takes them.
            job = trainer.submit(
                args.train, "From scratch", None, None, None, None, 0.25, False, 0.0, 0, api_name="/train"
            )
            deadline = time.monotonic() + 300
            while "Epoch" not in str(job.outputs()[-1:]):  # the first batches have trained
                if job.done() or time.monotonic() > deadline:
                    sys.exit("the training run did not start")
                time.sleep(0.5)
            latencies, errors = hammer(url, args.clients, args.seconds)
            still_training = not job.done()
            report(f"while a {args.train} run trains", latencies, errors, args.seconds, figures)
            print(f"  (the run was {'still' if still_training else 'no longer'} training at the end of the phase)")
            trainer.predict(api_name="/stop_training")
            job.result(timeout=300)
    finally:
        stop_app(process)
    record("load", figures, notes=f"{args.clients} gradio_client clients in this process, app on loopback")

if __name__ == "__main__":
    main()
