"""Starts `python app.py` as a separate process on a free loopback port, for the tests and
benchmarks that must talk to the real app exactly as a browser or API client does."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 180  # seconds: importing TensorFlow and Gradio and building the tabs


class AppFailedToStart(RuntimeError):
    """app.py exited or did not listen in time; the message ends with its log."""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(log_path, **environment):
    """Runs app.py with `environment` added, logging to `log_path`; returns (process, url)
    once it accepts connections. Raises AppFailedToStart (after killing it) otherwise.

    It serves on loopback unless `environment` sets GRADIO_SERVER_NAME (0.0.0.0, as a Space
    does), always on a free port; the URL is the loopback one either way. The app runs in
    its own process group, so stop_app also ends the Node server an SSR run starts."""
    port = free_port()
    # Every test and benchmark client shares 127.0.0.1, so the per-client upload limit is
    # lifted unless a caller sets it (tests/test_guards.py does).
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "CIFAR10_STUDIO_UPLOADS_PER_MINUTE": "1000000", "CIFAR10_STUDIO_UPLOAD_BURST": "1000000",
           "GRADIO_SERVER_NAME": "127.0.0.1", **environment, "GRADIO_SERVER_PORT": str(port)}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_app(process)
            raise AppFailedToStart(f"app.py did not serve on port {port}:\n{Path(log_path).read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.5)


def stop_app(process):
    """Asks the app to stop (Gradio then stops its Node server too); kills its process
    group if it has not stopped within 20 s, or if anything it started outlived it."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the whole group has exited


def wait_for_warm_up(log_path, timeout=START_TIMEOUT):
    """Waits until the app's after-launch warm-up (model, traced functions, the tabs' first
    views) has finished and logged its start-up times: a test that measures the server's
    CPU must not count that work."""
    deadline = time.monotonic() + timeout
    while "start-up times:" not in Path(log_path).read_text():
        if time.monotonic() > deadline:
            raise AppFailedToStart(f"the warm-up did not finish in {timeout} s:\n{Path(log_path).read_text()[-3000:]}")
        time.sleep(0.5)
