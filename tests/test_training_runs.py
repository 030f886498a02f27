"""The server-wide run slot and the Train tab's form, on generated data and tiny models."""

import dataclasses
import itertools
import math
import threading
import time

import numpy as np
import pytest

from cifar_demo import data, inside, training
from cifar_demo.artifacts import SHIPPED_WEIGHTS
from cifar_demo.ui import train_form, training_runs
from cifar_demo.ui.training_runs import (
    EvaluationProgress,
    FairUse,
    RunFailed,
    RunFinished,
    RunInProgress,
    RunRefused,
    StoppedBeforeStart,
    StopSignal,
    TrainedWeights,
    TrainingSlot,
    failure_message,
    format_duration,
    image_cost,
    run_work,
    training_events,
)
from tests.conftest import toy_dataset

TINY = training.TrainConfig(epochs=2, batch_size=32, val_size=64, width_mult=0.125, learning_rate=0.05)


def drain(run):
    return [event for event in run.events(poll_seconds=0.05) if event is not None]


def drain_in_background(run):
    """Iterates the run in another thread, as the request that started it does; returns
    (thread, events so far)."""
    events = []
    thread = threading.Thread(target=lambda: events.extend(drain(run)), daemon=True)
    thread.start()
    return thread, events


def test_a_run_streams_engine_events_then_test_progress_then_results(monkeypatch):
    monkeypatch.setattr(training_runs, "TEST_CHUNK", 50)
    data = toy_dataset(train=256, test=100)
    run = TrainingSlot().start(TINY, data, owner="alice")
    events = drain(run)
    kinds = [type(event) for event in events]
    assert kinds[0] is training.RunStarted and kinds[-1] is RunFinished
    assert kinds.index(training.RunEnded) < kinds.index(EvaluationProgress)
    assert [e.done for e in events if isinstance(e, EvaluationProgress)] == [50, 100]
    finished = events[-1]
    assert finished.report["images"] == 100 and finished.probabilities.shape == (100, 10)
    assert not finished.result.stopped and not finished.time_limited
    # The same chunks kept each channel's top test images: those of all 100 at once.
    kept = finished.top_activations
    peaks = finished.predictor.channel_peaks(data.x_test)
    assert kept.tested == 100 and len(kept.layers) == 9  # every convolution
    for name in kept.layers:
        expected = -np.sort(-peaks[name], axis=0)[: inside.TOP_K].T
        np.testing.assert_allclose(kept.values[name], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.take_along_axis(peaks[name].T, kept.indices[name], axis=1), expected,
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.same_on_every_backend
def test_one_run_at_a_time_and_only_its_owner_stops_it():
    data = toy_dataset(train=256, test=20)
    slot = TrainingSlot()
    run = slot.start(dataclasses.replace(TINY, epochs=50), data, owner="alice")
    with pytest.raises(RunInProgress, match="starting"):
        slot.start(TINY, data, owner="bob")
    thread, events = drain_in_background(run)
    deadline = time.monotonic() + 60
    while run.latest is None:  # wait for its first batch
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(RunInProgress, match="in progress"):
        slot.start(TINY, data, owner="bob")
    assert slot.status() is not None
    assert not slot.stop("bob")
    assert slot.stop("alice")
    thread.join(60)
    finished = events[-1]
    assert isinstance(finished, RunFinished) and finished.result.stopped
    assert finished.result.steps < 50 * 8
    assert slot.status() is None
    assert isinstance(drain(slot.start(TINY, data, owner="bob"))[-1], RunFinished)  # the slot is free again


@pytest.mark.same_on_every_backend
def test_a_run_is_stopped_at_the_time_limit_keeping_what_it_learned():
    data = toy_dataset(train=256, test=20)
    slot = TrainingSlot(FairUse(0, images_per_second=math.inf, runs_per_hour_per_session=4,
                                runs_per_hour_per_address=8))
    run = slot.start(dataclasses.replace(TINY, epochs=50), data, owner="alice")
    finished = drain(run)[-1]
    assert isinstance(finished, RunFinished) and finished.time_limited and finished.result.steps == 1


@pytest.mark.same_on_every_backend
def test_an_abandoned_run_skips_its_evaluation_and_a_waiting_start_gets_the_slot():
    data = toy_dataset(train=256, test=20)
    slot = TrainingSlot()
    run = slot.start(dataclasses.replace(TINY, epochs=50), data, owner="alice")
    stream = run.events(poll_seconds=0.05)
    while not isinstance(next(stream), training.BatchEnded):  # alice's run is training
        pass
    run.abandon()  # what the Train tab does when her page closes mid-run
    second = slot.start(TINY, data, owner="bob", wait_seconds=60)
    assert run.latest.step < 50 * 8  # stopped after the batch it was on
    assert [e for e in drain(run) if e is not None] == [RunFailed("The run was abandoned.")]
    assert isinstance(drain(second)[-1], RunFinished)


def test_a_failure_inside_a_run_ends_it_with_a_message_and_frees_the_slot():
    data = toy_dataset(train=256, test=20)
    slot = TrainingSlot()
    too_big = dataclasses.replace(TINY, train_size=5000)  # more than the toy set holds
    failed = drain(slot.start(too_big, data, owner="alice"))[-1]
    assert isinstance(failed, RunFailed) and "train_size 5000 exceeds" in failed.message
    assert slot.status() is None


@pytest.mark.same_on_every_backend
def test_a_bad_config_is_refused_before_the_slot_is_taken():
    slot = TrainingSlot()
    with pytest.raises(ValueError, match="epochs"):
        slot.start(dataclasses.replace(TINY, epochs=0), toy_dataset(train=64, test=8), owner="alice")
    assert slot.status() is None


@pytest.mark.same_on_every_backend
def test_failure_messages_say_what_to_do():
    assert "smaller batch size" in failure_message(MemoryError())
    assert failure_message(ValueError("no data")) == "no data"
    assert failure_message(RuntimeError("boom")) == "The run failed: RuntimeError: boom"


@pytest.mark.same_on_every_backend
def test_format_duration():
    assert [format_duration(s) for s in (12.4, 75, 3700)] == ["12 s", "1:15 min", "1 h 01 min"]


CUSTOM = dict(preset_name="Custom", start_from=train_form.FROM_SCRATCH, epochs=3, train_size=500, batch_size=64,
              learning_rate=0.05, width_mult=0.25, augment=False, label_smoothing=0.0, seed=7)


@pytest.mark.same_on_every_backend
def test_custom_form_becomes_the_config_it_shows():
    config = train_form.config_from_form(**CUSTOM)
    assert (config.epochs, config.train_size, config.batch_size, config.learning_rate) == (3, 500, 64, 0.05)
    assert (config.width_mult, config.augment, config.label_smoothing, config.seed) == (0.25, False, 0.0, 7)
    assert config.init_weights is None


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be between 1 and 30"),
    ("epochs", 2.5, "epochs must be a whole number"),
    ("train_size", 10**6, "train size must be between 100 and 49000"),
    ("batch_size", None, "batch size must be a number"),
    ("learning_rate", "fast", "learning rate must be a number"),
    ("width_mult", 3, "width mult must be between"),
    ("label_smoothing", -0.1, "label smoothing must be between"),
    ("augment", "yes", "augmentation must be true or false"),
    ("preset_name", "Turbo", "preset must be one of"),
])
@pytest.mark.same_on_every_backend
def test_custom_form_rejects_bad_values_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        train_form.config_from_form(**dict(CUSTOM, **{field: value}))


@pytest.mark.same_on_every_backend
def test_presets_ignore_the_form_and_fine_tuning_starts_from_the_shipped_weights():
    quick = train_form.config_from_form(**dict(CUSTOM, preset_name="Quick", epochs=None))
    assert quick == training.preset("Quick")
    tuned = train_form.config_from_form(**dict(CUSTOM, preset_name="Quick", start_from=train_form.FINE_TUNE))
    assert tuned.width_mult == 1.0 and tuned.init_weights == str(SHIPPED_WEIGHTS)
    assert tuned.learning_rate == pytest.approx(quick.learning_rate * train_form.FINE_TUNE_LR_FACTOR)
    with pytest.raises(ValueError, match="width multiplier 1.0"):
        train_form.config_from_form(**dict(CUSTOM, start_from=train_form.FINE_TUNE))


@pytest.mark.same_on_every_backend
def test_a_fine_tune_knows_whether_its_validation_was_held_out_of_the_shipped_weights():
    """Checked against the split itself: the validation indices are a subset of the shipped ones."""
    shipped = train_form.shipped_config()
    assert shipped is not None and shipped.val_size > 0

    def held_out(config):
        split_seed = config.seed if config.split_seed is None else config.split_seed
        return set(data.split_training_set(50_000, config.val_size, config.train_size, split_seed)[1])

    for preset_name, seed, split_seed, val_size in [("Quick", 0, None, 1000), ("Standard", 0, None, 2000),
                                                    ("Quick", 1, None, 1000), ("Quick", 0, None, 3000),
                                                    ("Quick", 1, shipped.held_out_seed, 1000),
                                                    ("Quick", shipped.held_out_seed, 1, 1000)]:
        config = dataclasses.replace(training.preset(preset_name), seed=seed, split_seed=split_seed, val_size=val_size)
        assert config.validates_on_images_held_out_of(shipped) == (held_out(config) <= held_out(shipped))
    assert all(training.preset(name).validates_on_images_held_out_of(shipped) for name in ("Quick", "Standard"))


@pytest.mark.parametrize("name", list(train_form.LIMITS))
@pytest.mark.same_on_every_backend
def test_every_form_limit_lies_inside_what_the_engine_accepts(name):
    """The form's limits are a subset of TrainConfig.validate()'s ranges: both ends of each
    pass the engine's checks on an otherwise valid config."""
    assert set(train_form.LIMITS) <= set(train_form.SETTING_NAMES)
    for value in train_form.LIMITS[name]:
        value = int(value) if name in train_form.WHOLE_NUMBERS else value
        config = training.preset("Quick", val_size=train_form.CUSTOM_VAL_SIZE, **{name: value})
        config.validate()
        assert getattr(config, name) == value


@pytest.mark.parametrize("payload, message", [
    ("ten", "epochs must be a number, got 'ten'"), ([3], "epochs must be a number"),
    (float("inf"), "epochs must be between 1 and 30, got inf"), (float("nan"), "epochs must be between"),
])
@pytest.mark.same_on_every_backend
def test_the_form_refuses_raw_values_that_are_not_finite_numbers_by_name(payload, message):
    """What a raw API call can send: /train takes its values unprocessed (gradio_client
    itself refuses to encode infinity)."""
    with pytest.raises(ValueError, match=message):
        train_form.config_from_form(**dict(CUSTOM, epochs=payload))


@pytest.mark.parametrize("reason", ["stop", "abandon"])
def test_the_run_reads_why_it_was_stopped_and_removes_its_stop_file(reason):
    """What a ZeroGPU worker sees: only the signal file. A stop keeps and scores what was
    learned; an abandon (the page is gone) ends without the test-set evaluation."""
    data = toy_dataset(train=256, test=20)
    stop = StopSignal()
    events = []
    for event in training_events(dataclasses.replace(TINY, epochs=50), data, stop, 600, poll_seconds=0.05):
        if isinstance(event, training.BatchEnded) and not stop.is_set():
            stop.set(reason)
        if event is not None:
            events.append(event)
    scored = any(isinstance(event, EvaluationProgress) for event in events)
    if reason == "stop":
        assert isinstance(events[-1], TrainedWeights) and events[-1].stopped and scored
    else:
        assert events[-1] == RunFailed("The run was abandoned.") and not scored
    assert not stop.path.exists()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def fair_use(**changes):
    limits = dict(max_seconds=1800, images_per_second=90, runs_per_hour_per_session=2, runs_per_hour_per_address=3)
    return FairUse(**{**limits, **changes})


@pytest.mark.same_on_every_backend
def test_the_work_cap_fits_the_presets_and_refuses_a_fourteen_hour_run_by_name():
    """The issue's example: 30 epochs of 49,000 images at full width, batch 16 (about 14 h
    at the 32 images/s measured for it) is refused; both presets fit a Space's limit."""
    space = FairUse.for_this_server()
    assert space.max_seconds <= 30 * 60
    for name in training.PRESETS:
        assert run_work(training.preset(name)) <= fair_use(max_seconds=20 * 60).max_work, name
    huge = train_form.config_from_form(**dict(CUSTOM, epochs=30, train_size=49000, batch_size=16, width_mult=1.0))
    assert run_work(huge) / 90 > 10 * 3600  # the cost model agrees it is a half-day run
    with pytest.raises(RunRefused, match=r"too large for the 30:00 min run limit.*at most 162,000"):
        TrainingSlot(fair_use()).check(huge, "alice")
    assert image_cost(1.0, 128) == pytest.approx(1.0)
    assert image_cost(0.5, 128) < image_cost(1.0, 128) < image_cost(1.0, 16)


@pytest.mark.same_on_every_backend
def test_runs_per_hour_are_limited_per_session_and_per_address_naming_the_limit():
    clock = FakeClock()
    slot = TrainingSlot(fair_use(), clock=clock)
    for _ in range(2):
        slot.admit(TINY, "alice", "10.0.0.1")
        slot.withdraw("alice")
    with pytest.raises(RunRefused, match="2 runs were started from this browser session.*2 an hour.*in 1 h 00 min"):
        slot.admit(TINY, "alice", "10.0.0.1")
    slot.admit(TINY, "bob", "10.0.0.1")  # another session from the same address: its third run
    slot.withdraw("bob")
    with pytest.raises(RunRefused, match="3 runs were started from your network address.*3 an hour"):
        slot.admit(TINY, "carol", "10.0.0.1")
    slot.admit(TINY, "carol", "10.0.0.2")  # elsewhere: fine
    slot.withdraw("carol")
    clock.now += 3600
    slot.admit(TINY, "alice", "10.0.0.1")  # an hour later


@pytest.mark.same_on_every_backend
def test_an_admission_reserves_the_slot_until_it_starts_lapses_or_is_withdrawn():
    clock = FakeClock()
    slot = TrainingSlot(fair_use(), clock=clock)
    data = toy_dataset(train=64, test=8)
    slot.admit(TINY, "alice")
    with pytest.raises(RunInProgress, match="about to start"):
        slot.admit(TINY, "bob")
    clock.now += TrainingSlot.ADMISSION_SECONDS + 1  # alice's request never ran
    slot.admit(TINY, "bob")
    with pytest.raises(RunInProgress, match="about to start"):
        slot.claim("alice")
    slot.claim("bob")
    clock.now += 3 * TrainingSlot.ADMISSION_SECONDS  # a claimed admission lasts while its request runs
    with pytest.raises(RunInProgress):
        slot.admit(TINY, "alice")
    run = slot.start(TINY, data, owner="bob")
    with pytest.raises(RunInProgress, match="starting"):
        slot.admit(TINY, "alice")
    run.abandon()
    slot.admit(TINY, "alice")
    slot.withdraw("alice")
    slot.start(TINY, data, owner="bob").abandon()  # bob's second run: not admitted, so counted here
    with pytest.raises(RunRefused, match="2 runs were started from this browser session"):
        slot.admit(TINY, "bob")
    # A REST call has no session id when it is checked: it claims at its start and is counted then.
    for _ in range(2):
        slot.claim("rest-event")
        slot.start(TINY, data, owner="rest-event").abandon()
    slot.claim("rest-event")
    with pytest.raises(RunRefused, match="2 runs were started from this browser session"):
        slot.start(TINY, data, owner="rest-event")


def test_stop_while_the_data_loads_keeps_the_run_from_starting():
    """Stop pressed between a run's claim and its start (CIFAR-10 still loading) is not lost:
    the run does not start, and the owner can start another."""
    slot = TrainingSlot(fair_use(runs_per_hour_per_session=5), clock=FakeClock())
    data = toy_dataset(train=64, test=8)
    assert not slot.stop("alice")  # nothing going
    slot.admit(TINY, "alice")
    assert not slot.stop("alice")  # admitted, but its request has not claimed yet: nothing to stop
    slot.claim("alice")
    assert not slot.stop("bob") and slot.stop("alice")
    with pytest.raises(StoppedBeforeStart, match="no run was started"):
        slot.start(TINY, data, owner="alice")
    slot.admit(TINY, "bob")  # the slot is free again
    slot.withdraw("bob")
    slot.claim("alice")
    slot.start(TINY, data, owner="alice").abandon()  # the stop was for that run only
    slot.claim("alice")
    slot.stop("alice")
    slot.withdraw("alice")  # that request ended without starting (its data failed to load)
    slot.claim("alice")
    slot.start(TINY, data, owner="alice").abandon()


def test_a_stopped_run_frees_the_slot_at_once_and_is_tested_on_a_subset(monkeypatch):
    monkeypatch.setattr(training_runs, "STOPPED_TEST_IMAGES", 50)
    data = toy_dataset(train=256, test=80)
    slot = TrainingSlot()
    run = slot.start(dataclasses.replace(TINY, epochs=50), data, owner="alice")
    freed_before_test = None
    events = []
    for event in run.events(poll_seconds=0.05):
        if isinstance(event, training.BatchEnded) and slot.status() is not None:
            slot.stop("alice")
        if isinstance(event, EvaluationProgress) and freed_before_test is None:
            freed_before_test = slot.status() is None
        if event is not None:
            events.append(event)
    assert freed_before_test
    assert [(e.done, e.total) for e in events if isinstance(e, EvaluationProgress)] == [(50, 50)]
    finished = events[-1]
    assert isinstance(finished, RunFinished) and finished.result.stopped
    assert finished.report["images"] == 50 and finished.probabilities.shape == (50, 10)


@pytest.mark.same_on_every_backend
def test_the_download_shows_its_megabytes_and_a_failure_its_message(monkeypatch):
    """What the Train tab shows while CIFAR-10 downloads (on a Space after every restart)."""
    from cifar_demo import data
    from cifar_demo.ui import train_tab

    toy = toy_dataset(train=64, test=8)
    downloaded = itertools.count(0, 40_000_000)

    def slow_load():
        time.sleep(0.3)
        return toy

    monkeypatch.setattr(data, "needs_download", lambda: True)
    monkeypatch.setattr(data, "load_cifar10_cached", slow_load)
    monkeypatch.setattr(data, "download_progress", lambda: (next(downloaded), 170_498_071))
    loading = train_tab.TrainingData(poll_seconds=0.05)
    updates = list(loading)
    assert loading.dataset is toy
    assert "Downloading CIFAR-10: 0 of 170 MB" in updates[0] and "again after every restart" in updates[0]
    assert "Downloading CIFAR-10: 40 of 170 MB" in updates[1]

    def offline():
        raise ValueError("Could not download CIFAR-10: no internet.")

    monkeypatch.setattr(data, "load_cifar10_cached", offline)
    loading = train_tab.TrainingData(poll_seconds=0.05)
    updates = list(loading)
    assert loading.dataset is None and "run-error" in updates[-1] and "no internet" in updates[-1]


@pytest.mark.same_on_every_backend
def test_refusals_and_checks_leave_the_hourly_records_working():
    """A refusal on the address limit, and a REST check that never starts, must not leave
    anything behind that breaks the next admission; a lapsed admission claimed again is
    counted once."""
    clock = FakeClock()
    slot = TrainingSlot(fair_use(runs_per_hour_per_session=5, runs_per_hour_per_address=1), clock=clock)
    slot.admit(TINY, "alice", "10.0.0.1")
    slot.withdraw("alice")
    with pytest.raises(RunRefused, match="your network address"):
        slot.admit(TINY, "bob", "10.0.0.1")  # bob has no record yet: none is made for him
    slot.check(TINY, None, "10.0.0.2")  # a REST call checked, never started
    clock.now += 3600
    slot.admit(TINY, "carol", "10.0.0.3")  # counting prunes every record: none may be empty
    clock.now += TrainingSlot.ADMISSION_SECONDS + 1  # carol's admission lapses before her request runs
    slot.claim("carol")
    slot.start(TINY, toy_dataset(train=64, test=8), owner="carol", address="10.0.0.3").abandon()
    with pytest.raises(RunRefused, match="1 run was started from your network address"):
        slot.admit(TINY, "dave", "10.0.0.3")  # carol's one run was counted once: the address is at its limit
    slot.admit(TINY, "carol-2", "10.0.0.4")
