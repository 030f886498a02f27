"""The training engine on tiny generated data: learning, events, stop, validation, resume."""

import dataclasses
import json
import shutil

import keras
import numpy as np
import pytest

from cifar_demo import training
from cifar_demo.data import split_training_set
from cifar_demo.training import (
    CHECKPOINT_STATE,
    LEGACY_CHECKPOINT_WEIGHTS,
    BatchEnded,
    EpochEnded,
    RunEnded,
    RunStarted,
    TrainConfig,
    Trainer,
    augment_images,
    save_final_weights,
)

TINY = dict(width_mult=0.125, batch_size=32, val_size=64, train_size=192, learning_rate=0.05, seed=1)


def tiny_config(**overrides):
    return TrainConfig(**{**TINY, "epochs": 2, **overrides})


def test_loss_goes_down_on_a_learnable_toy_set(toy_data):
    events = []
    result = Trainer(tiny_config(epochs=6, augment=False), callbacks=[events.append]).run(toy_data)
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert len(epochs) == 6
    assert epochs[-1].loss < 0.7 * epochs[0].loss
    # Training accuracy: 36 steps are too few for BatchNorm's moving averages (momentum
    # 0.99) to settle, so validation, which uses them, lags behind on this toy run.
    assert epochs[-1].accuracy > 0.5  # 10 classes: chance is 0.1
    assert result.steps == 6 * 6 and not result.stopped
    # The last validation used the weights the run ended with, not those of the first epoch.
    config = tiny_config(epochs=6, augment=False)
    _, val_indices = split_training_set(len(toy_data.x_train), config.val_size, config.train_size, config.seed)
    x_val, y_val = toy_data.x_train[val_indices], toy_data.y_train[val_indices]
    final = keras.ops.convert_to_numpy(result.model(x_val.astype("float32"), training=False))
    assert epochs[-1].val_accuracy == pytest.approx(np.mean(final.argmax(axis=1) == y_val))



def test_split_seed_holds_out_that_seeds_images_whatever_the_runs_seed(toy_data):
    """Finishes of several seeds that share one held-out split (to be averaged) validate on it."""
    events = []
    config = tiny_config(epochs=1, seed=4, split_seed=1)
    result = Trainer(config, callbacks=[events.append]).run(toy_data)
    _, val_indices = split_training_set(len(toy_data.x_train), config.val_size, config.train_size, seed=1)
    _, own_indices = split_training_set(len(toy_data.x_train), config.val_size, config.train_size, seed=4)
    assert set(val_indices) != set(own_indices)
    np.testing.assert_array_equal(config.held_out_split(len(toy_data.x_train))[1], val_indices)
    final = keras.ops.convert_to_numpy(result.model(toy_data.x_train[val_indices].astype("float32"), training=False))
    epoch = [e for e in events if isinstance(e, EpochEnded)][-1]
    assert epoch.val_accuracy == pytest.approx(np.mean(final.argmax(axis=1) == toy_data.y_train[val_indices]))

def test_events_are_emitted_in_order(toy_data):
    events = []
    Trainer(tiny_config(), callbacks=[events.append]).run(toy_data)
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunEnded)
    started = events[0]
    assert (started.train_images, started.val_images, started.steps_per_epoch, started.total_steps) == (192, 64, 6, 12)
    kinds = [type(e).__name__ for e in events[1:-1]]
    assert kinds == (["BatchEnded"] * 6 + ["EpochEnded"]) * 2
    steps = [e.step for e in events if isinstance(e, BatchEnded)]
    assert steps == list(range(1, 13))
    learning_rates = [e.learning_rate for e in events if isinstance(e, BatchEnded)]
    assert max(learning_rates) == pytest.approx(0.05, rel=0.2) and learning_rates[-1] < learning_rates[4]
    assert events[-1] == RunEnded(stopped=False, steps=12, epochs_completed=2)


def test_stop_takes_effect_within_one_batch(toy_data):
    events = []
    trainer = Trainer(tiny_config(epochs=5), callbacks=[events.append])

    def stop_at_third_batch(event):
        if isinstance(event, BatchEnded) and event.step == 3:
            trainer.stop()

    trainer.callbacks.append(stop_at_third_batch)
    result = trainer.run(toy_data)
    assert result.stopped and result.steps == 3
    assert [e.step for e in events if isinstance(e, BatchEnded)] == [1, 2, 3]
    assert events[-1] == RunEnded(stopped=True, steps=3, epochs_completed=0)
    assert int(result.model.optimizer.iterations) == 3  # no optimizer step after the stop

    untrained = Trainer(tiny_config(epochs=5))
    untrained.callbacks.append(lambda event: isinstance(event, RunStarted) and untrained.stop())
    initial = untrained.run(toy_data)
    assert initial.stopped and initial.steps == 0
    # The stopped run keeps what its three steps learned: its weights left the initial ones.
    pairs = zip(result.model.get_weights(), initial.model.get_weights(), strict=True)
    assert any(not np.allclose(kept, start) for kept, start in pairs)


def test_train_on_batch_reports_that_batch_s_loss_not_a_running_mean():
    """BatchEnded.loss is what train_on_batch returns, which is one batch's loss only
    because Keras (3.15) resets the metrics inside each train_on_batch call. This pins it:
    the second call's loss must be the loss of the second batch under the weights the
    first step left, not the mean over both calls."""
    config = tiny_config(precision="float32")
    model = training.build_training_model(config, total_steps=10)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(32, 32, 32, 3)).astype("float32") for _ in range(2)]
    targets = [np.eye(10, dtype="float32")[rng.integers(0, 10, size=32)] for _ in range(2)]
    first = float(model.train_on_batch(images[0], targets[0], return_dict=True)["loss"])
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    # BatchNorm in training mode normalises with the batch's own statistics, as the step does.
    expected = float(keras.ops.convert_to_numpy(loss(targets[1], model(images[1], training=True))))
    second = float(model.train_on_batch(images[1], targets[1], return_dict=True)["loss"])
    assert abs(first - expected) > 1e-3  # a running mean would differ from `expected`
    assert second == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "field, value",
    [("epochs", 0), ("epochs", 2.5), ("batch_size", 0), ("learning_rate", -1.0), ("width_mult", 0.0),
     ("label_smoothing", 1.0), ("augment", "yes"), ("seed", -1), ("split_seed", -1), ("split_seed", 1.5),
     ("val_size", -5), ("train_size", 0), ("init_weights", "/no/such/file.weights.h5")],
)
def test_config_validation_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value}).validate()


def test_config_round_trips_through_json():
    config = tiny_config()
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="unknown training settings: colour"):
        TrainConfig.from_dict({"colour": "red"})


def test_config_describes_every_setting_with_its_unit():
    lines = TrainConfig(train_size=500, augment=False).describe().splitlines()
    assert [line.split()[0] for line in lines] == [field.name for field in dataclasses.fields(TrainConfig)]
    shown = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert shown["batch_size"] == "128 images" and shown["train_size"] == "500 images"
    assert shown["augment"] == "off" and shown["crop_padding"] == "4 pixels"
    assert shown["init_weights"] == "none, start from scratch" and shown["learning_rate"] == "0.1"
    assert all(field.metadata["help"] for field in dataclasses.fields(TrainConfig))


def test_augmentation_is_seeded_crop_and_flip():
    images = np.random.default_rng(0).integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    first = augment_images(images, np.random.default_rng(7))
    second = augment_images(images, np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert not np.array_equal(first, images)
    # With no padding, each output is the image or its mirror.
    flipped_only = augment_images(images, np.random.default_rng(1), padding=0)
    for original, out in zip(images, flipped_only, strict=True):
        assert np.array_equal(out, original) or np.array_equal(out, original[:, ::-1])
    # With padding, the centre 24x24 of each output appears in the original (possibly mirrored).
    for original, out in zip(images[:8], first[:8], strict=True):
        candidates = [original, original[:, ::-1]]
        assert any(
            np.array_equal(out[4:28, 4:28], c[4 + dy : 28 + dy, 4 + dx : 28 + dx])
            for c in candidates for dy in range(-4, 5) for dx in range(-4, 5)
        )


def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(toy_data, tmp_path):
    config = tiny_config(epochs=3)
    uninterrupted = Trainer(config, checkpoint_dir=tmp_path / "straight").run(toy_data)

    first = Trainer(config, checkpoint_dir=tmp_path / "resumed")

    def interrupt_in_second_epoch(event):
        if isinstance(event, BatchEnded) and event.step == 8:
            first.stop()  # as if the process died: only epoch 1 was checkpointed

    first.callbacks.append(interrupt_in_second_epoch)
    assert first.run(toy_data).stopped
    events = []
    resumed = Trainer(config, callbacks=[events.append], checkpoint_dir=tmp_path / "resumed").run(toy_data)
    assert events[0].start_step == 6
    assert resumed.steps == uninterrupted.steps == 18
    assert len(resumed.history["epochs"]) == 3
    images = toy_data.x_test[:8].astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(resumed.model(images, training=False)),
        keras.ops.convert_to_numpy(uninterrupted.model(images, training=False)), atol=2e-4
    )


def test_resume_refuses_a_checkpoint_of_other_settings(toy_data, tmp_path):
    Trainer(tiny_config(epochs=1), checkpoint_dir=tmp_path).run(toy_data)
    with pytest.raises(ValueError, match=r"other settings \(seed\)"):
        Trainer(tiny_config(epochs=1, seed=2), checkpoint_dir=tmp_path).run(toy_data)


def test_a_checkpoint_resumes_after_a_kill_between_its_files_and_from_the_older_layout(toy_data, tmp_path):
    """Killed after an epoch's weights were written but before the state naming them, a run
    resumes from the previous epoch. A checkpoint in the layout before per-epoch names (one
    checkpoint.weights.h5, no step count, a config without later settings) resumes too."""
    config = tiny_config(epochs=2)
    run = tmp_path / "run"
    first = Trainer(config, checkpoint_dir=run)

    def stop_in_epoch_two(event):
        if isinstance(event, BatchEnded) and event.step == 7:
            first.stop()

    first.callbacks.append(stop_in_epoch_two)
    first.run(toy_data)
    state = json.loads((run / CHECKPOINT_STATE).read_text())
    assert state["weights"] == "checkpoint-epoch001.weights.h5" and state["iterations"] == 6
    older = tmp_path / "older"
    shutil.copytree(run, older)
    (older / state["weights"]).rename(older / LEGACY_CHECKPOINT_WEIGHTS)
    del state["weights"], state["iterations"], state["config"]["drawing_style"]
    (older / CHECKPOINT_STATE).write_text(json.dumps(state))
    (run / "checkpoint-epoch002.weights.h5").write_bytes(b"written, then killed before the state")
    for folder in (run, older):
        events = []
        resumed = Trainer(config, callbacks=[events.append], checkpoint_dir=folder).run(toy_data)
        assert events[0].start_step == 6 and resumed.steps == 12, folder.name
        assert [path.name for path in folder.glob("*.weights.h5")] == ["checkpoint-epoch002.weights.h5"]
        assert json.loads((folder / CHECKPOINT_STATE).read_text())["iterations"] == 12


def test_final_weights_carry_no_optimizer_state_and_reload(toy_data, tmp_path):
    from cifar_demo import Predictor

    result = Trainer(tiny_config(epochs=1)).run(toy_data)
    path = save_final_weights(result, tmp_path)
    assert json.loads((tmp_path / training.CONFIG_FILE).read_text()) == dataclasses.asdict(result.config)
    reloaded = Predictor.load(path)
    np.testing.assert_allclose(
        reloaded.predict_proba(toy_data.x_test), Predictor(result.model).predict_proba(toy_data.x_test), atol=1e-6
    )
    import h5py

    with h5py.File(path) as handle:
        assert "optimizer" not in handle.keys()


def test_fine_tuning_starts_from_given_weights(toy_data, tmp_path):
    trained = Trainer(tiny_config(epochs=3, augment=False)).run(toy_data)
    path = save_final_weights(trained, tmp_path)
    config = tiny_config(epochs=1, init_weights=str(path), learning_rate=0.001)
    started = training.build_training_model(config, total_steps=6)
    for loaded, saved in zip(started.get_weights(), trained.model.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)
    first_losses = {}
    for name, run_config in (("fine-tuned", config), ("fresh", dataclasses.replace(config, init_weights=None))):
        events = []
        Trainer(run_config, callbacks=[events.append]).run(toy_data)
        first_losses[name] = next(e for e in events if isinstance(e, BatchEnded)).loss
    assert first_losses["fine-tuned"] < first_losses["fresh"]  # the same first batch, a better start
