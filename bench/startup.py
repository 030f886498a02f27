"""Seconds from `python app.py` to the first HTTP 200 on its page.

    python -m bench.startup [--runs 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request

from bench.results import record
from tests.local_server import REPO, free_port


def time_to_serve(timeout=120):
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"app.py did not serve within {timeout} s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = [time_to_serve() for _ in range(args.runs)]
    median = statistics.median(times)
    print("python app.py -> first HTTP 200 (s): " + ", ".join(f"{t:.1f}" for t in times) + f"; median {median:.1f}")
    record("startup", {
        f"python app.py to first HTTP 200, median of {len(times)}": (median, "s"),
        "slowest run": (max(times), "s"),
    })

if __name__ == "__main__":
    main()
