"""A short, bounded version of bench/load.py against the real app: 20 concurrent
/classify clients on loopback, idle and while a training run is going; no request may fail.
The figures (p50/p95 over 30 s) come from `python bench/load.py`, not from here."""

import importlib.util
from pathlib import Path

from gradio_client import Client

from tests.conftest import shown_value, tiny_run, wait_for_progress

LOAD_SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "load.py"
CLIENTS = 20
SECONDS = 5
LONG_TINY_RUN = tiny_run(epochs_value=30, train_size_value=500, batch_size_value=16, width_value=0.25)


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", LOAD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_twenty_clients_get_answers_idle_and_while_training(app_url):
    bench = load_bench()
    latencies, errors = bench.hammer(app_url, CLIENTS, SECONDS)
    assert not errors and len(latencies) >= CLIENTS, errors[:3]

    trainer = Client(app_url, verbose=False)
    job = trainer.submit(**LONG_TINY_RUN, api_name="/train")
    try:
        wait_for_progress(job)  # it has trained its first batches
        latencies, errors = bench.hammer(app_url, CLIENTS, SECONDS)
        wait_for_progress(job)  # and still trains after the load phase
    finally:
        trainer.predict(api_name="/stop_training")
        outcome = job.result(timeout=120)
    assert "stopped by you" in shown_value(outcome[2])
    assert not errors and len(latencies) >= CLIENTS, errors[:3]
