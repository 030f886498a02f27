"""One training run at a time for the whole server, in a worker thread.

The Train tab starts a run here and streams its events to the page. The engine's own
events (cifar_demo.training) come first; this module adds the evaluation on the
official test set and a final RunFinished or RunFailed. It imports no Gradio, so the
one-run rule, the stop and the failure handling are tested without a browser.
"""

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

from cifar_demo.metrics import summarize
from cifar_demo.predictor import Predictor
from cifar_demo.training import BatchEnded, TrainResult, Trainer

MAX_RUN_SECONDS = 30 * 60   # a run is stopped (keeping what it learned) after this long
TEST_CHUNK = 1000           # test images per progress update
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationProgress:
    done: int                 # test images evaluated so far
    total: int


@dataclass(frozen=True)
class RunFinished:
    result: TrainResult
    predictor: Predictor      # wraps result.model, already traced
    report: dict              # evaluate.summarize on the official test set
    probabilities: np.ndarray # float32 (N, 10) on the official test images, official order
    time_limited: bool        # stopped by MAX_RUN_SECONDS rather than by the user


@dataclass(frozen=True)
class RunFailed:
    message: str


class RunInProgress(RuntimeError):
    """Raised by TrainingSlot.start while another run holds the slot."""


def failure_message(error):
    """A sentence a person can act on, for an exception raised inside a run."""
    name = type(error).__name__
    if isinstance(error, MemoryError) or "ResourceExhausted" in name or "out of memory" in str(error).lower():
        return "The run ran out of memory. Try a smaller batch size, width or training-set size."
    if isinstance(error, ValueError):
        return str(error)
    return f"The run failed: {name}: {error}"


class ActiveRun:
    """A run in its worker thread; `events` yields what it emits, in order."""

    def __init__(self, config, data, owner, on_done, max_seconds):
        self.config = config
        self.owner = owner
        self.latest: Optional[BatchEnded] = None
        self.time_limited = False
        self.abandoned = False      # nobody is watching: skip the test-set evaluation
        self._data = data
        self._on_done = on_done
        self._max_seconds = max_seconds
        self._queue = queue.Queue()
        self._trainer = Trainer(config, callbacks=[self._on_event])
        self._thread = threading.Thread(target=self._work, name="training-run", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._trainer.stop()

    def abandon(self):
        """Stops the run and skips its test evaluation: the page that started it is gone."""
        self.abandoned = True
        self._trainer.stop()

    def join(self, timeout=None):
        self._thread.join(timeout)

    def describe(self):
        """One line on how far the run is, for people waiting their turn."""
        if self.latest is None:
            return "A training run is starting."
        done = self.latest.step / max(1, self.latest.total_steps)
        return (
            f"A training run is in progress: epoch {self.latest.epoch}/{self.config.epochs}, "
            f"{done:.0%} done, about {format_duration(self.latest.eta_seconds)} left."
        )

    def events(self, poll_seconds=0.5):
        """Yields each event, and None every `poll_seconds` without one (so a caller can
        refresh its page); ends after RunFinished or RunFailed."""
        while True:
            try:
                event = self._queue.get(timeout=poll_seconds)
            except queue.Empty:
                yield None
                continue
            yield event
            if isinstance(event, (RunFinished, RunFailed)):
                return

    def _on_event(self, event):
        if isinstance(event, BatchEnded):
            self.latest = event
            if event.elapsed_seconds > self._max_seconds and not self.time_limited:
                self.time_limited = True
                self._trainer.stop()
        self._queue.put(event)

    def _work(self):
        final = RunFailed("The run ended unexpectedly.")
        try:
            result = self._trainer.run(self._data)
            if self.abandoned:
                final = RunFailed("The run was abandoned.")
                return
            predictor = Predictor(result.model)
            x_test, y_test = self._data.x_test, self._data.y_test
            chunks = []
            for start in range(0, len(x_test), TEST_CHUNK):
                chunks.append(predictor.predict_proba(x_test[start : start + TEST_CHUNK]))
                self._queue.put(EvaluationProgress(min(start + TEST_CHUNK, len(x_test)), len(x_test)))
            probabilities = np.concatenate(chunks) if chunks else np.zeros((0, 10), np.float32)
            report = summarize(probabilities, y_test)
            final = RunFinished(result, predictor, report, probabilities, self.time_limited)
        except Exception as error:  # any failure ends this run only; the server keeps serving
            LOG.exception("training run failed (%s)", self.config)  # the traceback stays in the server log
            final = RunFailed(failure_message(error))
        finally:
            # The slot is free before the last event arrives, so the next person in the
            # queue, whose turn starts when this stream ends, never finds it taken.
            self._on_done(self)
            self._queue.put(final)


class TrainingSlot:
    """Holds at most one ActiveRun for the whole server."""

    def __init__(self, max_seconds=MAX_RUN_SECONDS):
        self.max_seconds = max_seconds
        self._guard = threading.Condition()
        self._active: Optional[ActiveRun] = None

    def start(self, config, data, owner, wait_seconds=0.0):
        """Starts a run for `owner`. While another run holds the slot, waits up to
        `wait_seconds` for it to end (a stopped run finishes its batch first), then raises
        RunInProgress. ValueError for a bad config."""
        config.validate()
        with self._guard:
            if not self._guard.wait_for(lambda: self._active is None, timeout=wait_seconds):
                raise RunInProgress(self._active.describe())
            run = ActiveRun(config, data, owner, self._release, self.max_seconds)
            self._active = run
        run.start()
        return run

    def stop(self, owner):
        """Stops `owner`'s run; False when they have none (another person's run is theirs)."""
        with self._guard:
            run = self._active
        if run is None or run.owner != owner:
            return False
        run.stop()
        return True

    def status(self):
        """None when idle, else a line describing the current run."""
        with self._guard:
            run = self._active
        return None if run is None else run.describe()

    def _release(self, run):
        with self._guard:
            if self._active is run:
                self._active = None
                self._guard.notify_all()


def format_duration(seconds):
    """12 -> '12 s', 75 -> '1:15 min', 3700 -> '1 h 01 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"

