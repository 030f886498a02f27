"""What too many threads cost: threads = usable cores against threads = 8x that, side by side.

    python -m bench.threads [--rounds 2] [--steps 8] [--images 512]

A container that shows more CPUs than its quota lets the backend start one thread per
visible CPU (cifar_demo/cpu_quota.py). This runs the same work with CIFAR10_STUDIO_THREADS
set to the usable cores and to 8 times as many, each in its own subprocess (a backend fixes
its thread pools when it starts), alternating the two for --rounds rounds so any drift in
the machine's speed hits both alike: --steps training steps of the full model on batches of
64 (train_on_batch, after 2 untimed steps), and Predictor.predict_proba on --images images
with the shipped weights. Each is timed in wall seconds and in the process's CPU seconds:
on a machine other work shares, a process with more threads gets a larger share of the
cores, which can hide their cost in wall time; CPU time per image still shows it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench.results import record
from tests.local_server import REPO

BATCH_SIZE = 64
WARMUP_STEPS = 2


def timed(function):
    """(wall seconds, process CPU seconds) of `function()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(steps, count):
    """In the worker: {figure: value} for training and predict_proba, and the OS threads."""
    import numpy as np

    from cifar_demo import Predictor
    from cifar_demo.training import NUM_CLASSES, TrainConfig, build_training_model

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(BATCH_SIZE, 32, 32, 3), dtype=np.uint8)
    targets = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, size=BATCH_SIZE)]
    model = build_training_model(TrainConfig(batch_size=BATCH_SIZE), WARMUP_STEPS + steps)
    for _ in range(WARMUP_STEPS):
        model.train_on_batch(images.astype("float32"), targets)
    train_wall, train_cpu = timed(lambda: [model.train_on_batch(images.astype("float32"), targets)
                                           for _ in range(steps)])

    predictor = Predictor.load()
    pixels = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    predictor.predict_proba(pixels[:BATCH_SIZE])
    predict_wall, predict_cpu = timed(lambda: predictor.predict_proba(pixels))
    return {"training": steps * BATCH_SIZE / train_wall, "training_cpu": 1000 * train_cpu / (steps * BATCH_SIZE),
            "inference": count / predict_wall, "inference_cpu": 1000 * predict_cpu / count,
            "threads": len(os.listdir("/proc/self/task"))}


def run_worker(threads, args):
    environment = {**os.environ, "CIFAR10_STUDIO_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        environment.pop(name, None)  # the override alone decides
    result = subprocess.run(
        [sys.executable, "-m", "bench.threads", "--worker", "--steps", str(args.steps), "--images", str(args.images)],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=900,
    )
    if result.returncode:
        raise RuntimeError(f"the worker with {threads} threads failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    load_at_start = os.getloadavg()[0]  # 1-minute load average: above the 2 cores, something else ran
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the two settings")
    parser.add_argument("--steps", type=int, default=8, help=f"timed training steps of {BATCH_SIZE} images")
    parser.add_argument("--images", type=int, default=512, help="images for predict_proba")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.rounds, args.steps, args.images) < 1:
        parser.error("--rounds, --steps and --images must be positive")
    if args.worker:
        print(json.dumps(measure(args.steps, args.images)))
        return

    from cifar_demo.cpu_quota import cgroup_quota, usable_cpus, visible_cpus

    cores = usable_cpus()
    settings = {f"threads = cores ({cores})": cores, f"threads = 8x cores ({8 * cores})": 8 * cores}
    print(f"usable cores {cores} (visible CPUs {visible_cpus()}, cgroup quota {cgroup_quota() or 'none'})")
    results = {name: [] for name in settings}
    for round_index in range(1, args.rounds + 1):
        for name, threads in settings.items():
            results[name].append(run_worker(threads, args))
            last = results[name][-1]
            print(f"round {round_index} {name:>24}: training {last['training']:6.1f} images/s "
                  f"({last['training_cpu']:.1f} CPU ms/image), predict_proba {last['inference']:6.1f} images/s "
                  f"({last['inference_cpu']:.2f} CPU ms/image), {last['threads']} OS threads", flush=True)
    figures = {}
    medians = {}
    for name, runs in results.items():
        medians[name] = {key: statistics.median(run[key] for run in runs)
                         for key in ("training", "training_cpu", "inference", "inference_cpu")}
        figures[f"{name}: training, batch {BATCH_SIZE}"] = (medians[name]["training"], "images/s")
        figures[f"{name}: training CPU time"] = (medians[name]["training_cpu"], "CPU ms/image")
        figures[f"{name}: predict_proba, {args.images} images"] = (medians[name]["inference"], "images/s")
        figures[f"{name}: predict_proba CPU time"] = (medians[name]["inference_cpu"], "CPU ms/image")
        figures[f"{name}: OS threads of the process"] = (max(run["threads"] for run in runs), "threads")
    fitted, crowded = medians.values()
    for key, label in (("training", "training"), ("inference", "predict_proba")):
        ratio = fitted[key] / crowded[key]
        figures[f"{label}: threads = cores / threads = 8x cores"] = (ratio, "x")
        cpu_ratio = crowded[f"{key}_cpu"] / fitted[f"{key}_cpu"]
        figures[f"{label}: CPU time of 8x cores / of cores"] = (cpu_ratio, "x")
        print(f"{label}: threads = cores is {ratio:.2f}x the speed of threads = 8x cores; "
              f"8x cores spends {cpu_ratio:.2f}x the CPU time per image")
    record("threads", figures, notes=(
        f"medians of {args.rounds} alternating rounds, each setting in its own process; training: "
        f"{args.steps} steps of the full model, float32; load average at the start {load_at_start:.1f}"
    ))


if __name__ == "__main__":
    main()
