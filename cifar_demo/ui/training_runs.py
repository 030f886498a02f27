"""One training run at a time for the whole server.

The Train tab starts a run here and streams its events to the page. The engine's own
events (cifar_demo.training) come first; this module adds the evaluation on the
official test set and a final RunFinished or RunFailed. It imports no Gradio, so the
one-run rule, the stop and the failure handling are tested without a browser.

The run itself is one generator, `training_events`, which the page's request iterates.
Everything it takes and yields pickles and its stop signal is a file, because on a
ZeroGPU Space it runs in ZeroGPU's forked GPU worker (cifar_demo/zerogpu.py); elsewhere
it runs right here, the same code.
"""

import collections
import contextlib
import logging
import math
import os
import queue
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_demo import zerogpu
from cifar_demo.backend import device_scope
from cifar_demo.inside import RunningTopK, TrainedTopActivations, top_layers, trained_top_activations
from cifar_demo.metrics import summarize
from cifar_demo.model import FEATURES_LAYER, build_model, scaled_widths
from cifar_demo.predictor import Predictor
from cifar_demo.training import BatchEnded, RunEnded, Trainer, TrainResult

TEST_CHUNK = 1000           # test images per progress update
STOPPED_TEST_IMAGES = 1000  # a stopped run is tested on the first this many official test images
STOP_FILES = Path(tempfile.gettempdir()) / "cifar10-studio-stops"
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationProgress:
    done: int                 # test images evaluated so far
    total: int


@dataclass(frozen=True)
class RunFinished:
    result: TrainResult
    predictor: Predictor      # wraps result.model (rebuilt in this process, float32)
    report: dict              # metrics.summarize on the official test set
    probabilities: np.ndarray # float32 (N, 10) on the official test images, official order
    time_limited: bool        # stopped by the time limit rather than by the user
    top_activations: TrainedTopActivations  # its channels' top test images and its feature map


@dataclass(frozen=True)
class RunFailed:
    message: str


@dataclass(frozen=True)
class TrainedWeights:
    """What a finished run sends back from wherever it ran: plain arrays, no Keras model
    (a model on a ZeroGPU worker's GPU cannot cross to the main process)."""

    weights: list             # float32 arrays, in model.get_weights() order
    config: object            # the TrainConfig
    history: dict
    stopped: bool
    steps: int
    report: dict
    probabilities: np.ndarray
    time_limited: bool
    top_activations: TrainedTopActivations


class RunRefused(RuntimeError):
    """A run the server will not start now; the message names the limit and when to try again."""


class RunInProgress(RunRefused):
    """Another run holds the slot (or is about to)."""


class StoppedBeforeStart(RunRefused):
    """Its owner pressed Stop while the run was still loading its data."""


def image_cost(width_mult, batch_size):
    """Seconds one training image costs at this width and batch size, relative to the full
    model at batch 128: a fixed part plus one growing with the square of the width (the
    convolutions' multiply-adds; fitted to `python -m bench.run_cost`, bench/RESULTS.md,
    rounded up), and more per image for small batches. The batch factor (2.4x at batch 16)
    is the app's, not the bench's: train_on_batch alone costs little more per image at
    batch 16, but each of the engine's steps carries fixed work (augmentation, events, the
    page's curves) and the Train tab measured 32 images/s at batch 16 against about 90 at
    batch 128 (the abuse-resistance issue)."""
    return (0.15 + 0.85 * width_mult**2) * (1 + 32 / batch_size) / (1 + 32 / 128)


def run_work(config, available_images=50_000):
    """A run's work in full-width, batch-128 training images: epochs x images x cost."""
    images = config.train_size or available_images - config.val_size
    return config.epochs * images * image_cost(config.width_mult, config.batch_size)


@dataclass(frozen=True)
class FairUse:
    """How much of the one shared training slot one visitor may take."""

    max_seconds: float              # a run is stopped (keeping what it learned) after this long
    images_per_second: float        # full-width batch-128 training images per second the work cap assumes
    runs_per_hour_per_session: int  # runs one browser session may start in any hour
    runs_per_hour_per_address: int  # runs one IP address (as the server sees it) may start in any hour

    @property
    def max_work(self):
        """The largest run (run_work) that fits the time limit at the assumed speed."""
        return self.max_seconds * self.images_per_second

    @classmethod
    def for_this_server(cls):
        """The limits where this process runs: 20-minute runs on a public Space (SYSTEM=spaces),
        a ZeroGPU lease's length there, 30 minutes elsewhere; CIFAR10_STUDIO_RUNS_PER_HOUR
        runs per session an hour (default 4), twice as many per address."""
        runs = int(os.environ.get("CIFAR10_STUDIO_RUNS_PER_HOUR", "4"))  # per session; twice that per address
        gpu_seconds = zerogpu.max_run_seconds()
        if gpu_seconds is not None:
            # A GPU trains this small network many times faster than the CPUs here; the lease ends the run anyway.
            return cls(gpu_seconds, images_per_second=2000, runs_per_hour_per_session=runs,
                       runs_per_hour_per_address=2 * runs)
        # 90 images/s: the slow end of full-model training measured on 2-core CPUs (DESIGN.md, bench/RESULTS.md).
        on_space = os.environ.get("SYSTEM") == "spaces"
        return cls(20 * 60 if on_space else 30 * 60, images_per_second=90, runs_per_hour_per_session=runs,
                   runs_per_hour_per_address=2 * runs)


class StopSignal:
    """A stop request that reaches a run in this process or in a forked worker: a file
    named for the run (a threading.Event would not cross a process, and ZeroGPU reuses
    workers forked before the run began), holding why: "stop" (keep and evaluate what was
    learned) or "abandon" (nobody is watching: no evaluation). The run removes it when it
    ends; files older than STALE_SECONDS (a stop that came after its run) are pruned."""

    STALE_SECONDS = 3600

    def __init__(self):
        STOP_FILES.mkdir(parents=True, exist_ok=True)
        self.path = STOP_FILES / f"{uuid.uuid4().hex}.stop"
        now = time.time()
        for old in STOP_FILES.glob("*.stop"):
            with contextlib.suppress(OSError):  # another run may be pruning the same file
                if now - old.stat().st_mtime > self.STALE_SECONDS:
                    old.unlink()

    def set(self, reason="stop"):
        self.path.write_text(reason)

    def is_set(self):
        return self.path.exists()

    def abandoned(self):
        try:
            return self.path.read_text() == "abandon"
        except OSError:
            return False

    def clear(self):
        self.path.unlink(missing_ok=True)


def failure_message(error):
    """A sentence a person can act on, for an exception raised inside a run."""
    name = type(error).__name__
    if isinstance(error, MemoryError) or "ResourceExhausted" in name or "out of memory" in str(error).lower():
        return "The run ran out of memory. Try a smaller batch size, width or training-set size."
    if isinstance(error, ValueError):
        return str(error)
    return f"The run failed: {name}: {error}"


def training_events(config, data, stop, max_seconds, poll_seconds=0.5):
    """Trains `config` on `data` and evaluates it on the test set (in the same pass keeping
    each channel's top test images for the Inside the network tab), yielding the engine's
    events, None every `poll_seconds` without one (so the page can refresh), then
    EvaluationProgress, then TrainedWeights or RunFailed. Stops after the current batch
    once `stop` is set or after `max_seconds`, keeping what it learned; closing the
    generator stops the run and skips its evaluation."""
    events = queue.Queue()
    limit = {"hit": False}

    def on_event(event):
        if isinstance(event, BatchEnded) and event.elapsed_seconds > max_seconds and not limit["hit"]:
            limit["hit"] = True
            trainer.stop()
        if stop.is_set():
            trainer.stop()
        events.put(event)

    outcome = {}

    def work():
        try:
            outcome["result"] = trainer.run(data)
        except Exception as error:  # any failure ends this run only; the server keeps serving
            LOG.exception("training run failed (%s)", config)  # the traceback stays in the server log
            outcome["error"] = error
        finally:
            events.put(done)

    done = object()
    try:
        trainer = Trainer(config, callbacks=[on_event], watch=True)
    except ValueError as error:
        yield RunFailed(failure_message(error))
        return
    worker = threading.Thread(target=work, name="training-run", daemon=True)
    worker.start()
    try:
        while True:
            try:
                event = events.get(timeout=poll_seconds)
            except queue.Empty:
                if stop.is_set():
                    trainer.stop()
                yield None
                continue
            if event is done:
                break
            yield event
    finally:
        trainer.stop()  # a no-op after a finished run; ends an abandoned one after its batch
        worker.join()
        abandoned = stop.abandoned()
        stop.clear()  # here, where the run is: in a ZeroGPU worker the page's side cannot see it end
    if "error" in outcome:
        yield RunFailed(failure_message(outcome["error"]))
        return
    if abandoned:
        yield RunFailed("The run was abandoned.")
        return
    result = outcome["result"]
    # A stopped run (by its owner or the time limit) has already freed the slot: it is
    # tested on a fixed subset, seconds instead of minutes.
    tested = min(STOPPED_TEST_IMAGES, len(data.x_test)) if result.stopped else len(data.x_test)
    # Scored on the device it trained on. Keras' device scope belongs to a thread and this
    # generator may be resumed by another, so it is entered around each step, never across
    # a yield.
    with device_scope(trainer.device):
        predictor = Predictor(result.model)
    tops = RunningTopK(top_layers(predictor.activation_layers()))
    chunks, features = [], []
    for start in range(0, tested, TEST_CHUNK):
        with device_scope(trainer.device):
            scored, peaks = predictor.predict_with_peaks(data.x_test[start : min(start + TEST_CHUNK, tested)],
                                                         (*tops.layers, FEATURES_LAYER))
        chunks.append(scored)
        tops.add(peaks)
        features.append(peaks[FEATURES_LAYER])
        yield EvaluationProgress(min(start + TEST_CHUNK, tested), tested)
    probabilities = np.concatenate(chunks) if chunks else np.zeros((0, 10), np.float32)
    top_activations = trained_top_activations(tops, np.concatenate(features))
    weights = [np.asarray(w, dtype=np.float32) for w in result.model.get_weights()]
    yield TrainedWeights(weights, result.config, result.history, result.stopped, result.steps,
                         summarize(probabilities, data.y_test[:tested]), probabilities, limit["hit"],
                         top_activations)


def on_this_machine(weights):
    """RunFinished in this process from a run's TrainedWeights: the model rebuilt here (on
    this process's device, the CPU on a ZeroGPU Space) with the weights it learned."""
    model = build_model(scaled_widths(weights.config.width_mult))
    model.set_weights(weights.weights)
    result = TrainResult(model=model, config=weights.config, history=weights.history, stopped=weights.stopped,
                         steps=weights.steps)
    return RunFinished(result, Predictor(model), weights.report, weights.probabilities, weights.time_limited,
                       weights.top_activations)


# The generator the runs iterate: on ZeroGPU, inside the GPU lease (cifar_demo/zerogpu.py).
RUN_ON_DEVICE = zerogpu.on_gpu(training_events)


class ActiveRun:
    """A run holding the slot; iterating `events()` (from the request that started it)
    runs it and yields what it emits, in order."""

    def __init__(self, config, data, owner, on_done, max_seconds):
        self.config = config
        self.owner = owner
        self.latest: BatchEnded | None = None
        self.abandoned = False      # nobody is watching: the run stopped, no evaluation
        self._data = data
        self._on_done = on_done
        self._max_seconds = max_seconds
        self._stop = StopSignal()
        self._stream = None

    def stop(self):
        self._stop.set()

    def abandon(self):
        """Stops the run and skips its test evaluation: the page that started it is gone."""
        self.abandoned = True
        try:
            if self._stream is None:
                return  # never started: nothing to signal
            self._stop.set("abandon")
            try:
                self._stream.close()  # on ZeroGPU this also ends the GPU worker's task
            except ValueError:  # being iterated by another thread: the stop signal ends it
                pass
        finally:
            self._on_done(self)

    def describe(self):
        """One line on how far the run is, for the people it refuses meanwhile."""
        if self.latest is None:
            return "A training run is starting."
        done = self.latest.step / max(1, self.latest.total_steps)
        return (
            f"A training run is in progress: epoch {self.latest.epoch}/{self.config.epochs}, "
            f"{done:.0%} done, about {format_duration(self.latest.eta_seconds)} left."
        )

    def events(self, poll_seconds=0.5):
        """Runs the run, yielding each event and None every `poll_seconds` without one;
        ends after RunFinished or RunFailed. The slot is free before that last event
        arrives (a stopped run's as soon as its training ends), so whoever starts a run once
        this one is over never finds it taken."""
        if self.abandoned:
            yield RunFailed("The run was abandoned.")
            return
        self._stream = RUN_ON_DEVICE(self.config, self._data, self._stop, self._max_seconds, poll_seconds)
        final = RunFailed("The run ended unexpectedly.")
        try:
            for event in self._stream:
                if isinstance(event, BatchEnded):
                    self.latest = event
                if isinstance(event, RunEnded) and event.stopped:
                    self._on_done(self)  # a stopped run frees the slot before its short test
                if isinstance(event, TrainedWeights):
                    final = on_this_machine(event)
                    break
                if isinstance(event, RunFailed):
                    final = event
                    break
                yield event
        except Exception as error:  # a GPU lease that failed or ran out, a broken worker
            LOG.exception("training run failed (%s)", self.config)
            final = RunFailed(failure_message(error))
        self._on_done(self)
        yield final


class TrainingSlot:
    """Holds at most one ActiveRun for the whole server, and decides who may start one: the
    fair-use limits (a cap on a run's work, runs per hour per session and per address) and
    an admission that reserves the slot for one request between its check, before it joins
    Gradio's queue, and its start. A refused request never waits anywhere."""

    ADMISSION_SECONDS = 20  # an admitted request that has not claimed its place by then loses it

    def __init__(self, fair_use=None, clock=time.monotonic):
        self.fair_use = fair_use if fair_use is not None else FairUse.for_this_server()
        self._clock = clock
        self._guard = threading.Condition()
        self._active: ActiveRun | None = None
        self._admitted: tuple[str, float, bool] | None = None  # (owner, deadline or inf once claimed, counted)
        self._stopped_before_start = None  # the owner of a claimed run stopped while it loaded
        self._starts = collections.defaultdict(collections.deque)  # ("session" | "address", id) -> start times

    @property
    def max_seconds(self):
        return self.fair_use.max_seconds

    def rules(self):
        """The fair-use limits in a sentence, for the people they apply to."""
        fair = self.fair_use
        return (f"Runs stop after {format_duration(fair.max_seconds)} (keeping what they learned), and each "
                f"browser session may start {fair.runs_per_hour_per_session} an hour.")

    def admit(self, config, owner, address=None):
        """Checks that `owner` (a session id) from `address` may start `config` now and
        reserves the slot for them: the start counts against their hourly limits. ValueError
        for a bad config, RunRefused naming the limit otherwise."""
        with self._guard:
            self._check(config, owner, address)
            self._count(owner, address)
            self._admitted = (owner, self._clock() + self.ADMISSION_SECONDS, True)

    def check(self, config, owner, address=None):
        """What admit checks, without reserving or counting anything."""
        with self._guard:
            self._check(config, owner, address)

    def claim(self, owner):
        """Keeps `owner`'s admission until they start or withdraw (their request is running
        and someone is listening to it); RunInProgress when it has lapsed and another took it."""
        with self._guard:
            own = self._admitted if self._admitted is not None and self._admitted[0] == owner else None
            if own is None or self._clock() >= own[1]:
                # Never admitted (a REST call: no session id when the validator ran) or lapsed:
                # free unless another took it; a lapsed admission was counted all the same.
                self._check_free(owner)
            self._admitted = (owner, math.inf, own is not None and own[2])
            if self._stopped_before_start == owner:  # a Stop for an earlier request of theirs
                self._stopped_before_start = None

    def withdraw(self, owner):
        """Gives up `owner`'s admission (their request ended without starting a run)."""
        with self._guard:
            if self._admitted is not None and self._admitted[0] == owner:
                self._admitted = None
            if self._stopped_before_start == owner:
                self._stopped_before_start = None

    def start(self, config, data, owner, address=None, wait_seconds=0.0):
        """Takes the slot for `owner`'s run, which runs as its `events()` are iterated. An
        admitted owner starts without being counted again; anyone else is checked and
        counted here. While another run holds the slot, waits up to `wait_seconds` for it to
        end (a stopped run finishes its batch first). ValueError for a bad config,
        RunRefused (RunInProgress when the slot is taken) otherwise."""
        config.validate()
        with self._guard:
            if self._stopped_before_start == owner:
                self._stopped_before_start = self._admitted = None
                raise StoppedBeforeStart("Stopped before training began: no run was started.")
            if not self._guard.wait_for(lambda: self._active is None, timeout=wait_seconds):
                raise RunInProgress(self._busy_message())
            available = len(data.x_train)
            if self._admitted_now(owner) and self._admitted[2]:  # checked and counted on admission
                self._check_work(config, available)
            else:
                self._check(config, owner, address, available)
                self._count(owner, address)
            self._admitted = None
            run = ActiveRun(config, data, owner, self._release, self.max_seconds)
            self._active = run
        return run

    def stop(self, owner):
        """Stops `owner`'s run, or keeps it from starting when its request is still loading
        the data; False when they have none (another person's run is theirs)."""
        with self._guard:
            run = self._active
            if run is None and self._admitted is not None and self._admitted[0] == owner \
                    and self._admitted[1] == math.inf:  # claimed: its request is loading the data
                self._stopped_before_start = owner
                return True
        if run is None or run.owner != owner:
            return False
        run.stop()
        return True

    def status(self):
        """None when idle, else a line describing the current run."""
        with self._guard:
            run = self._active
        return None if run is None else run.describe()

    def _admitted_now(self, owner):
        return self._admitted is not None and self._admitted[0] == owner and self._clock() < self._admitted[1]

    def _busy_message(self):
        return f"{self._active.describe()} One run trains at a time on this server: try again when it ends."

    def _check_free(self, owner):
        if self._active is not None:
            raise RunInProgress(self._busy_message())
        if self._admitted is not None and self._admitted[0] != owner and self._clock() < self._admitted[1]:
            raise RunInProgress("Another person's run is about to start. One run trains at a time on this server: "
                                "try again in a minute.")

    def _check_work(self, config, available_images):
        work, limit = run_work(config, available_images), self.fair_use.max_work
        if work > limit:
            images = config.train_size or available_images - config.val_size
            raise RunRefused(
                f"This run is too large for the {format_duration(self.max_seconds)} run limit: {config.epochs} "
                f"epoch(s) of {images:,} images at width {config.width_mult:g}, batch {config.batch_size}, is about "
                f"{work:,.0f} full-model training images, and one run may do at most {limit:,.0f} here. "
                "Use fewer epochs or images, a smaller width or a larger batch.")

    def _check(self, config, owner, address, available_images=50_000):
        """Every limit, in the order a person can act on them; `available_images`: the
        training set's size (the whole CIFAR-10 before the data is loaded)."""
        config.validate()
        self._check_work(config, available_images)
        self._check_free(owner)
        now = self._clock()
        for kind, key, limit in (("session", owner, self.fair_use.runs_per_hour_per_session),
                                 ("address", address, self.fair_use.runs_per_hour_per_address)):
            if key is None:
                continue
            starts = [start for start in self._starts.get((kind, key), ()) if now - start < 3600]
            if len(starts) >= limit:
                who = "this browser session" if kind == "session" else "your network address"
                raise RunRefused(
                    f"{len(starts)} run{'s were' if len(starts) > 1 else ' was'} started from {who} in the last "
                    f"hour, and each {kind} may start "
                    f"{limit} an hour on this server. Try again in {format_duration(starts[0] + 3600 - now)}.")

    def _count(self, owner, address):
        now = self._clock()
        for kind, key in (("session", owner), ("address", address)):
            if key is not None:
                self._starts[(kind, key)].append(now)
        for key, starts in list(self._starts.items()):
            while starts and now - starts[0] >= 3600:
                starts.popleft()
            if not starts:
                del self._starts[key]  # nobody who started nothing for an hour is remembered

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

