"""A short, bounded version of bench/load.py against the real app: 20 concurrent
/classify clients on loopback, idle and while a training run is going; no request may fail.
The figures (p50/p95 over 30 s) come from `python -m bench.load`, not from here."""

from gradio_client import Client

from bench.load import hammer
from tests.conftest import shown_value, tiny_run, wait_for_progress

CLIENTS = 20
SECONDS = 5
LONG_TINY_RUN = tiny_run(epochs_value=30, train_size_value=500, batch_size_value=16, width_value=0.25)


def test_twenty_clients_get_answers_idle_and_while_training(app_url):
    latencies, errors = hammer(app_url, CLIENTS, SECONDS)
    assert not errors and len(latencies) >= CLIENTS, errors[:3]

    trainer = Client(app_url, verbose=False)
    job = trainer.submit(**LONG_TINY_RUN, api_name="/train")
    try:
        wait_for_progress(job)  # it has trained its first batches
        latencies, errors = hammer(app_url, CLIENTS, SECONDS)
        wait_for_progress(job)  # and still trains after the load phase
    finally:
        trainer.predict(api_name="/stop_training")
        outcome = job.result(timeout=120)
    assert "stopped by you" in shown_value(outcome[2])
    assert not errors and len(latencies) >= CLIENTS, errors[:3]
