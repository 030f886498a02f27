"""Seconds from `python app.py` to the first HTTP 200 on its page, and where they go.

    python -m bench.startup [--runs 5] [--baseline ../main]

Each run starts app.py in a fresh process and polls its page until it answers 200; the
figure is the median of --runs. With --baseline (another checkout of the project, e.g.
main before a change), runs of the two alternate, so the machine's drift hits both alike
and the ratio compares them side by side.

One more run of this checkout, under `python -X importtime`, shows where the time goes:
the packages the app imports (each counted once, where it is first imported), then the
app's own log line (cifar_demo/ui/app.py) with the seconds of each part of the build and
of the work done after launch. That run is slower than the others (importtime's own cost)
and is not in the median.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.results import record
from tests.local_server import REPO, free_port

NOTABLE = ("tensorflow", "jax", "torch", "matplotlib", "matplotlib.pyplot", "pandas", "scipy", "PIL", "fastapi",
           "gradio_client")
TIMINGS_LINE = re.compile(r"start-up times: built (?P<built>.*); after launch (?P<after>.*)$", re.MULTILINE)
LOG_WAIT = 60  # seconds to wait after the first 200 for the app's start-up times line


def time_to_serve(checkout=REPO, timeout=120, python_options=(), wait_for_log=False):
    """(seconds to the first HTTP 200, the app's output) for one `python app.py` in `checkout`."""
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, *python_options, "app.py"], cwd=checkout, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            seconds = wait_for_page(port, start, timeout)
            deadline = time.perf_counter() + LOG_WAIT
            while wait_for_log and not TIMINGS_LINE.search(read(log)) and time.perf_counter() < deadline:
                time.sleep(0.2)
            return seconds, read(log)
        finally:
            process.terminate()
            process.wait(timeout=30)


def read(log):
    log.seek(0)
    return log.read()


def wait_for_page(port, start, timeout):
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"app.py did not serve within {timeout} s")


def import_tree(output):
    """`-X importtime` lines -> [(name, cumulative seconds, parent name or None)], in order."""
    rows = []
    for line in output.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            rows.append([match.group(4), int(match.group(2)) / 1e6, len(match.group(3)), None])
    pending = []  # children are printed before their parent
    for row in rows:
        while pending and pending[-1][2] > row[2]:
            pending.pop()[3] = row[0]
        pending.append(row)
    return [(name, seconds, parent) for name, seconds, _, parent in rows]


def import_costs(output, minimum=0.05):
    """{package: seconds} for the packages the app's own code imports (each first import
    counted once, in full), and {notable package: (seconds, the package it came in with)}."""
    tree = import_tree(output)
    direct = {}
    top_of = {}
    for name, seconds, parent in tree:
        package = name.split(".")[0]
        if package != "cifar_demo" and (parent is None or parent.startswith("cifar_demo")):
            direct[package] = direct.get(package, 0.0) + seconds
    parents = {name: parent for name, _, parent in tree}
    for name, seconds, _ in tree:
        if name in NOTABLE:
            ancestor = name
            while parents.get(ancestor) and not parents[ancestor].startswith("cifar_demo"):
                ancestor = parents[ancestor]
            top_of[name] = (seconds, ancestor.split(".")[0])
    return {name: seconds for name, seconds in direct.items() if seconds >= minimum}, top_of


def app_timings(output):
    """The app's own start-up times line -> ({build part: seconds}, {after-launch part: seconds})."""
    match = TIMINGS_LINE.search(output)
    if match is None:
        return {}, {}

    def parts(text):
        return {name.strip(): float(value) for name, value in re.findall(r"([^,]+?) ([\d.]+) s", text)}

    return parts(match.group("built")), parts(match.group("after"))


LOAD_AT_START = os.getloadavg()[0]  # 1-minute load average as the bench starts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, run alternately")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be positive")
    if args.baseline is not None and not (args.baseline / "app.py").is_file():
        parser.error(f"--baseline {args.baseline} has no app.py")

    times, baseline_times = [], []
    for run in range(1, args.runs + 1):
        if args.baseline is not None:
            baseline_times.append(time_to_serve(args.baseline)[0])
            print(f"run {run}: baseline {baseline_times[-1]:.1f} s", flush=True)
        times.append(time_to_serve()[0])
        print(f"run {run}: this checkout {times[-1]:.1f} s", flush=True)

    total, output = time_to_serve(python_options=("-X", "importtime"), wait_for_log=True)
    direct, notable = import_costs(output)
    built, after = app_timings(output)
    print(f"\nwhere the time goes (one run under -X importtime, {total:.1f} s to the first 200):")
    for name, seconds in sorted(direct.items(), key=lambda item: -item[1]):
        print(f"  import {name:<24} {seconds:5.2f} s")
    for name, (seconds, within) in sorted(notable.items(), key=lambda item: -item[1][0]):
        if name not in direct:
            print(f"    of which {name:<19} {seconds:5.2f} s (imported by {within})")
    for name, seconds in built.items():
        print(f"  build: {name:<23} {seconds:5.2f} s")
    for name, seconds in after.items():
        print(f"  after launch: {name:<16} {seconds:5.2f} s (not before the first 200)")

    median = statistics.median(times)
    print("\npython app.py -> first HTTP 200 (s): " + ", ".join(f"{t:.1f}" for t in times) + f"; median {median:.1f}")
    figures = {
        f"python app.py to first HTTP 200, median of {len(times)}": (median, "s"),
        "slowest run": (max(times), "s"),
    }
    if baseline_times:
        baseline = statistics.median(baseline_times)
        print(f"baseline ({args.baseline}): " + ", ".join(f"{t:.1f}" for t in baseline_times)
              + f"; median {baseline:.1f}; this checkout / baseline {median / baseline:.2f}x")
        figures[f"baseline checkout, median of {len(baseline_times)} (alternating runs)"] = (baseline, "s")
        figures["this checkout / baseline"] = (median / baseline, "x")
    figures.update({f"import {name} (where first imported)": (seconds, "s") for name, seconds in direct.items()})
    figures.update({f"build: {name}": (seconds, "s") for name, seconds in built.items()})
    figures.update({f"after launch: {name}": (seconds, "s") for name, seconds in after.items()})
    record("startup", figures, notes=(
        "import and build figures are from one extra run under -X importtime (slower than the others); "
        f"load average at the start {LOAD_AT_START:.1f} (2 cores: above 1, something else was running)"
    ))


if __name__ == "__main__":
    main()
