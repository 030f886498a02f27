"""The training engine, shared by the CLI (`python -m cifar_demo.train`) and the UI.

It owns the loop so that it can emit an event after every batch and every epoch,
check a stop flag between batches, and checkpoint each epoch so that an
interrupted run resumes where it left off. It never imports Gradio.
"""

import contextlib
import dataclasses
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from cifar_demo import zerogpu
from cifar_demo.artifacts import config_path_for
from cifar_demo.backend import data_parallel, describe, device_scope, resolve_device
from cifar_demo.class_drawings import class_drawing_images
from cifar_demo.data import split_training_set
from cifar_demo.drawing_style import drawing_style_images
from cifar_demo.metrics import negative_log_likelihood
from cifar_demo.model import EXPLAIN_LAYER, PRECISIONS, build_model, scaled_widths
from cifar_demo.predictor import Predictor

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)

CHECKPOINT_STATE = "checkpoint.json"
# The weights (with the optimizer's state) of a checkpoint: one file per epoch, named in
# CHECKPOINT_STATE, so that a run killed between writing the two keeps a matching pair.
# Checkpoints written before 2026-11-30 (7) hold one LEGACY_CHECKPOINT_WEIGHTS file instead.
CHECKPOINT_WEIGHTS_PATTERN = "checkpoint-epoch{:03d}.weights.h5"
LEGACY_CHECKPOINT_WEIGHTS = "checkpoint.weights.h5"
FINAL_WEIGHTS = "model.weights.h5"
CONFIG_FILE = config_path_for(FINAL_WEIGHTS).name  # model.config.json, where Predictor.load looks
HISTORY_FILE = "history.json"


def setting(default, help, unit="", none=None, **metadata):
    """A TrainConfig field whose metadata feeds the CLI's flags and the run's printout:
    `help` says what it does, `unit` what its number counts, `none` what None means."""
    return field(default=default, metadata={"help": help, "unit": unit, "none": none, **metadata})


@dataclass
class TrainConfig:
    """Every hyperparameter of a run; saved beside each checkpoint and printed at its start.

    A new setting is added here only: `python -m cifar_demo.train` makes its flag from
    the field (type, default and metadata) and `describe()` prints it.
    """

    epochs: int = setting(15, "passes over the training images")
    batch_size: int = setting(128, "images per optimizer step", "images")
    train_size: int | None = setting(None, "training images used", "images", none="all not held out")
    val_size: int = setting(
        5000, "images held out of the training set for validation; 0 trains on all 50,000 and monitors "
        "the official test set (reported only, never used to choose anything)", "images")
    width_mult: float = setting(1.0, "multiplier on the blog's 64/128/256 stage widths")
    learning_rate: float = setting(0.1, "peak SGD learning rate (per step, batch-mean loss)")
    warmup_fraction: float = setting(
        0.2, "fraction of the steps ramping the LR linearly up from peak/10; the rest decays it "
        "linearly to 0 (one-cycle)")
    momentum: float = setting(0.9, "Nesterov momentum")
    weight_decay: float = setting(
        5e-3, "decoupled decay per unit of LR per step (Keras SGD), about L2 5e-4 under momentum 0.9; "
        "not on BatchNorm or biases")
    label_smoothing: float = setting(0.1, "probability mass spread evenly over the 10 classes")
    augment: bool = setting(True, "random crop from the reflect-padded image + horizontal flip")
    crop_padding: int = setting(4, "padding on each side before the random crop", "pixels")
    drawing_style: float = setting(
        0.0, "share of training images shown as a drawing instead (outline, palette colours, cartoon, coloured "
        "strokes on white or a silhouette on paper; cifar_demo/drawing_style.py), so the model learns drawings too")
    class_drawings: float = setting(
        0.0, "share of training images replaced by a generated child's drawing of their class (a plane, a cat, "
        "... in the canvas's brush and palette; cifar_demo/class_drawings.py), so the model learns how people "
        "draw the ten classes")
    precision: str = setting(
        "float32", "float32; mixed_bfloat16 (bf16 compute, float32 variables: CPUs with AMX, recent GPUs) "
        "or mixed_float16 (GPUs with float16 tensor cores; the loss is scaled); bench/RESULTS.md compares them",
        choices=PRECISIONS)
    seed: int = setting(0, "seed of the initialisation, shuffling and augmentation, and of the held-out split "
                        "unless split_seed is set")
    split_seed: int | None = setting(
        None, "seed of the held-out split alone, so runs of other seeds (say, several finishes to average) can "
        "share one split and all keep its images unseen", none="the seed's")
    init_weights: str | None = setting(None, ".weights.h5 file to fine-tune from", none="none, start from scratch")

    def validate(self):
        """Raises ValueError naming the first bad field, so the CLI and UI can show it.

        These ranges are the engine's; the Train tab's form accepts a narrower subset
        (cifar_demo/ui/train_form.py LIMITS, checked against this by a test)."""

        def check(condition, message):
            if not condition:
                raise ValueError(message)

        def is_int(value):
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        check(is_int(self.epochs) and 1 <= self.epochs <= 500,
              f"epochs must be an integer in 1..500, got {self.epochs!r}")
        check(is_int(self.batch_size) and 1 <= self.batch_size <= 4096,
              f"batch_size must be an integer in 1..4096, got {self.batch_size!r}")
        check(self.train_size is None or (is_int(self.train_size) and self.train_size >= 1),
              f"train_size must be a positive integer or None, got {self.train_size!r}")
        check(is_int(self.val_size) and self.val_size >= 0,
              f"val_size must be a non-negative integer, got {self.val_size!r}")
        check(isinstance(self.width_mult, (int, float)) and 0.05 <= self.width_mult <= 4,
              f"width_mult must be a number in 0.05..4, got {self.width_mult!r}")
        check(isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate <= 10,
              f"learning_rate must be in (0, 10], got {self.learning_rate!r}")
        check(isinstance(self.warmup_fraction, (int, float)) and 0 <= self.warmup_fraction < 1,
              f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        check(isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1,
              f"momentum must be in [0, 1), got {self.momentum!r}")
        check(isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < 1,
              f"weight_decay must be in [0, 1), got {self.weight_decay!r}")
        check(isinstance(self.label_smoothing, (int, float)) and 0 <= self.label_smoothing < 1,
              f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        check(isinstance(self.augment, bool), f"augment must be true or false, got {self.augment!r}")
        check(is_int(self.crop_padding) and 0 <= self.crop_padding <= 16,
              f"crop_padding must be an integer in 0..16, got {self.crop_padding!r}")
        check(isinstance(self.drawing_style, (int, float)) and not isinstance(self.drawing_style, bool)
              and 0 <= self.drawing_style <= 1, f"drawing_style must be in [0, 1], got {self.drawing_style!r}")
        check(isinstance(self.class_drawings, (int, float)) and not isinstance(self.class_drawings, bool)
              and 0 <= self.class_drawings <= 1, f"class_drawings must be in [0, 1], got {self.class_drawings!r}")
        check(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        check(is_int(self.seed) and 0 <= self.seed < 2**32, f"seed must be an integer in 0..2**32-1, got {self.seed!r}")
        check(self.split_seed is None or (is_int(self.split_seed) and 0 <= self.split_seed < 2**32),
              f"split_seed must be an integer in 0..2**32-1 or None, got {self.split_seed!r}")
        check(self.init_weights is None or Path(self.init_weights).is_file(),
              f"init_weights file not found: {self.init_weights!r}")

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2)

    @property
    def held_out_seed(self):
        """The seed the held-out split is drawn with: split_seed, else seed."""
        return self.seed if self.split_seed is None else self.split_seed

    def held_out_split(self, num_images):
        """(train indices, validation indices) of a training set of `num_images` under these settings."""
        return split_training_set(num_images, self.val_size, self.train_size, self.held_out_seed)

    def validates_on_images_held_out_of(self, earlier):
        """Whether every validation image of this run was held out of a run with `earlier`'s
        settings too: the split holds out the first val_size images of one seeded order, so a
        fine-tune's validation stays unseen when it shares the split's seed and holds out no more."""
        return (earlier.val_size > 0 and self.held_out_seed == earlier.held_out_seed
                and 0 < self.val_size <= earlier.val_size)

    def describe(self):
        """One line per setting with its unit, as a run prints them at its start."""
        width = max(len(f.name) for f in dataclasses.fields(self))
        return "\n".join(f"  {f.name:<{width}}  {describe_value(f, getattr(self, f.name))}"
                         for f in dataclasses.fields(self))

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**values)


def describe_value(setting_field, value):
    """A TrainConfig value as a person reads it: "128 images", "on", "all not held out"."""
    if value is None:
        return setting_field.metadata["none"]
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value} {setting_field.metadata['unit']}".rstrip()


def fastest_precision(device="cpu"):
    """The precision that trains fastest on `device`: "mixed_bfloat16" on a GPU (bf16
    tensor cores, as on ZeroGPU's H200s) and on CPUs with AMX bf16 tiles (faster than
    float32 there: bench.train_throughput and bench.backends in bench/RESULTS.md);
    "float32" on other CPUs, where bf16 is emulated or runs on AVX512_BF16 alone, which
    measured no faster than float32."""
    if device == "gpu":
        return "mixed_bfloat16"
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return "float32"
    return "mixed_bfloat16" if " amx_bf16" in flags else "float32"


def preset(name, **changes):
    """A copy of one of the UI's and CLI's named configs, with `changes` applied."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    device = "gpu" if zerogpu.ENABLED else resolve_device("auto")  # ZeroGPU trains on its GPU lease
    return dataclasses.replace(base, precision=fastest_precision(device), **changes)


# Sized on this project's 2-core CPU machines: Quick a couple of minutes with its test-set
# evaluation and at least 55% test accuracy, Standard (100,000 full-width images) about ten
# minutes at the engine's bf16 throughput there. `python -m bench.quick_preset [--preset
# Standard]` measures both (bench/RESULTS.md); on a GPU they take seconds.
PRESETS = {
    "Quick": TrainConfig(epochs=3, train_size=16000, val_size=1000, width_mult=0.25, batch_size=128, augment=False),
    "Standard": TrainConfig(epochs=4, train_size=25000, val_size=2000, width_mult=1.0, batch_size=128),
}


# Events, in the order a run emits them: RunStarted, then per step BatchEnded and per
# epoch EpochEnded, then RunEnded (also after a stop).
@dataclass(frozen=True)
class RunStarted:
    config: TrainConfig
    train_images: int
    val_images: int
    val_source: str           # "held-out training images" or "official test set"
    steps_per_epoch: int
    total_steps: int
    start_step: int           # > 0 when resuming from a checkpoint
    device: str = ""          # backend and device, e.g. "Keras 3.15.1 on JAX 0.10.2, GPU"


@dataclass(frozen=True)
class BatchEnded:
    epoch: int                # 1-based
    step: int                 # 1-based, counted over the whole run
    total_steps: int
    loss: float               # this batch's training loss (with label smoothing)
    accuracy: float           # this batch's training accuracy, augmented images
    learning_rate: float
    images_per_second: float  # over the last few batches
    elapsed_seconds: float    # since this run (or its resumption) started
    eta_seconds: float        # remaining steps at this session's average pace


@dataclass(frozen=True)
class EpochEnded:
    epoch: int
    step: int
    total_steps: int
    loss: float               # mean training loss over the epoch
    accuracy: float           # mean training accuracy over the epoch
    val_loss: float           # cross-entropy without smoothing
    val_accuracy: float
    seconds: float            # wall time of the epoch, validation included


FIRST_CONV = "stage1_conv1"


@dataclass(frozen=True)
class EpochSnapshot:
    """What the network has learned by the end of an epoch, for watching it learn (emitted
    after EpochEnded when the Trainer was made with watch=True)."""

    epoch: int
    first_kernels: np.ndarray  # float32 (3, 3, 3, C1): the first convolution's filters
    watched_maps: np.ndarray   # float32 (8, 8, C3): the last convolution's maps of one fixed image
    watched_image: np.ndarray  # uint8 (32, 32, 3): that image (the first validation image)


@dataclass(frozen=True)
class RunEnded:
    stopped: bool             # True when the stop flag ended the run early
    steps: int
    epochs_completed: int


@dataclass
class TrainResult:
    model: object             # the keras.Model, holding what was learned up to the end or stop
    config: TrainConfig
    history: dict = field(default_factory=dict)
    stopped: bool = False
    steps: int = 0


def augment_images(images, rng, padding=4, flip=True):
    """The recipe's augmentation: a random 32x32 crop of the reflect-padded image, then a
    horizontal flip with probability 1/2. uint8 (N, 32, 32, 3) in and out; `rng` is a
    numpy Generator, so the same seed gives the same images (the UI preview relies on it).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must have shape (N, 32, 32, 3), got {images.shape}")
    count = len(images)
    out = images
    if padding > 0:
        padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")
        top = rng.integers(0, 2 * padding + 1, size=count)
        left = rng.integers(0, 2 * padding + 1, size=count)
        rows = top[:, None] + np.arange(32)
        cols = left[:, None] + np.arange(32)
        out = padded[np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if flip:
        flipped = rng.random(count) < 0.5
        out = out.copy() if out is images else out
        out[flipped] = out[flipped, :, ::-1]
    return out


def build_training_model(config, total_steps):
    """The config's model (fine-tuning start loaded, if any), compiled with the recipe's
    optimizer, schedule and loss; shared with bench/train_throughput.py."""
    model = build_model(scaled_widths(config.width_mult), precision=config.precision)
    if config.init_weights:
        try:
            model.load_weights(config.init_weights)
        except Exception as error:
            raise ValueError(f"cannot load {config.init_weights} into this architecture: {error}") from None
    schedule = OneCycle(config.learning_rate, total_steps, config.warmup_fraction)
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule,
        momentum=config.momentum,
        nesterov=True,
        weight_decay=config.weight_decay or None,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    if config.precision == "mixed_float16":  # float16 gradients underflow without a scaled loss
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    optimizer.build(model.trainable_variables)
    return model


class Trainer:
    """Runs one training run; `stop()` (from any thread) ends it after the current batch."""

    def __init__(self, config, callbacks: Sequence[Callable[[object], None]] = (), checkpoint_dir=None,
                 device="auto", distribute=False, watch=False):
        """`device`: "auto" (a GPU where the backend sees one), "cpu" or "gpu". `distribute`:
        data-parallel over all local devices with Keras' DataParallel (JAX backend). Neither
        is a hyperparameter: a run may resume on another device. `watch`: also emit an
        EpochSnapshot after each epoch (the Train tab's "watch it learn"; one more compiled
        function, so the command line leaves it off)."""
        config.validate()
        self.config = config
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.device = resolve_device(device)
        self.distribution = data_parallel(config.batch_size) if distribute else None
        self._stop = threading.Event()
        self.watch = watch

    def stop(self):
        self._stop.set()

    def _emit(self, event):
        for callback in self.callbacks:
            callback(event)

    def run(self, data):
        """Trains on `data` (a cifar_demo.data.Cifar10) and returns a TrainResult."""
        distributed = self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()
        with device_scope(self.device), distributed:
            return self._run(data)

    def _run(self, data):
        config = self.config
        train_indices, val_indices = config.held_out_split(len(data.x_train))
        x_train, y_train = data.x_train[train_indices], data.y_train[train_indices]
        if config.val_size > 0:
            x_val, y_val = data.x_train[val_indices], data.y_train[val_indices]
            val_source = "held-out training images"
        else:
            x_val, y_val = data.x_test, data.y_test
            val_source = "official test set"

        steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
        if self.distribution is not None:
            devices = self.distribution.device_mesh.devices.size
            if len(x_train) % config.batch_size % devices:
                raise ValueError(
                    f"{len(x_train)} training images end each epoch with a batch of "
                    f"{len(x_train) % config.batch_size}, which does not split over {devices} devices: "
                    f"choose a train_size that does"
                )
        total_steps = steps_per_epoch * config.epochs

        keras.utils.set_random_seed(config.seed)
        model = build_training_model(config, total_steps)
        optimizer = model.optimizer

        history = {"epochs": [], "steps": []}
        start_epoch = self._resume(model, optimizer, history, steps_per_epoch)
        start_step = start_epoch * steps_per_epoch
        self._emit(RunStarted(config, len(x_train), len(x_val), val_source, steps_per_epoch, total_steps, start_step,
                              describe(self.device, self.distribution)))

        predictor = Predictor(model)
        step = start_step
        run_start = time.perf_counter()
        recent = deque(maxlen=20)  # (images, seconds) of the last batches
        epochs_completed = start_epoch
        for epoch in range(start_epoch, config.epochs):
            epoch_start = time.perf_counter()
            rng = np.random.default_rng([config.seed, 1, epoch])
            order = rng.permutation(len(x_train))
            loss_sum = accuracy_sum = seen = 0.0
            for batch_start in range(0, len(order), config.batch_size):
                if self._stop.is_set():
                    break
                batch_clock = time.perf_counter()
                learning_rate = float(optimizer.learning_rate)  # the rate this step uses
                indices = order[batch_start : batch_start + config.batch_size]
                images = x_train[indices]
                if config.augment:
                    images = augment_images(images, rng, config.crop_padding)
                if config.drawing_style > 0:
                    images = drawing_style_images(images, rng, config.drawing_style)
                if config.class_drawings > 0:
                    images = class_drawing_images(images, y_train[indices], rng, config.class_drawings)
                targets = np.eye(NUM_CLASSES, dtype="float32")[y_train[indices]]
                logs = model.train_on_batch(images.astype("float32"), targets, return_dict=True)
                step += 1
                loss, accuracy = float(logs["loss"]), float(logs["accuracy"])
                count = len(indices)
                loss_sum += loss * count
                accuracy_sum += accuracy * count
                seen += count
                recent.append((count, time.perf_counter() - batch_clock))
                rate = sum(n for n, _ in recent) / max(1e-9, sum(s for _, s in recent))
                if step % 10 == 0 or step == total_steps:
                    history["steps"].append({"step": step, "loss": loss, "accuracy": accuracy,
                                             "learning_rate": learning_rate})
                elapsed = time.perf_counter() - run_start
                eta = (total_steps - step) * elapsed / (step - start_step)
                self._emit(BatchEnded(epoch + 1, step, total_steps, loss, accuracy, learning_rate, rate, elapsed, eta))
            if self._stop.is_set() and seen < len(order):
                break
            predictor.refresh_weights()  # this epoch's weights, BatchNorm folded anew
            val_probabilities = predictor.predict_proba(x_val)
            val_loss = negative_log_likelihood(val_probabilities, y_val)
            val_accuracy = float(np.mean(np.argmax(val_probabilities, axis=1) == y_val))
            record = EpochEnded(
                epoch + 1, step, total_steps, loss_sum / seen, accuracy_sum / seen,
                val_loss, val_accuracy, time.perf_counter() - epoch_start,
            )
            history["epochs"].append(dataclasses.asdict(record))
            epochs_completed = epoch + 1
            self._checkpoint(model, history, epochs_completed)
            self._emit(record)
            if self.watch:
                watched = x_val[0] if len(x_val) else x_train[0]
                self._emit(EpochSnapshot(
                    epoch + 1, keras.ops.convert_to_numpy(model.get_layer(FIRST_CONV).kernel).astype(np.float32),
                    predictor.activations(watched)[EXPLAIN_LAYER], np.asarray(watched, np.uint8)))

        stopped = self._stop.is_set() and epochs_completed < config.epochs
        self._emit(RunEnded(stopped, step, epochs_completed))
        return TrainResult(model=model, config=config, history=history, stopped=stopped, steps=step)

    def _checkpoint(self, model, history, epochs_completed):
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        # The epoch's weights under a name of their own, then the state naming them, each
        # written to a temporary name and renamed; older weights go last. A run killed at
        # any point keeps a state and the weights it names.
        name = CHECKPOINT_WEIGHTS_PATTERN.format(epochs_completed)
        partial_weights = self.checkpoint_dir / ("partial." + name)
        model.save_weights(partial_weights)
        partial_weights.replace(self.checkpoint_dir / name)
        # The optimizer's step count: a float16 run's loss scaling skips the steps whose
        # gradients overflowed, so it is not epochs x steps per epoch.
        state = {"epochs_completed": epochs_completed, "config": dataclasses.asdict(self.config), "history": history,
                 "weights": name, "iterations": int(model.optimizer.iterations)}
        temporary = self.checkpoint_dir / (CHECKPOINT_STATE + ".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.checkpoint_dir / CHECKPOINT_STATE)
        for older in self.checkpoint_dir.glob("checkpoint*.weights.h5"):
            if older.name != name:
                older.unlink(missing_ok=True)

    def _resume(self, model, optimizer, history, steps_per_epoch):
        """Loads the last checkpoint when one exists for this same config; returns its epoch."""
        if self.checkpoint_dir is None or not (self.checkpoint_dir / CHECKPOINT_STATE).is_file():
            return 0
        state = json.loads((self.checkpoint_dir / CHECKPOINT_STATE).read_text())
        differing = settings_differing(state["config"], self.config)
        if differing:
            raise ValueError(
                f"{self.checkpoint_dir} holds a checkpoint of a run with other settings ({', '.join(differing)}); "
                "use another output folder or delete the checkpoint to start over"
            )
        model.load_weights(checkpoint_weights_path(self.checkpoint_dir))  # restores the optimizer too
        expected_iterations = int(state.get("iterations", int(state["epochs_completed"]) * steps_per_epoch))
        if int(optimizer.iterations) != expected_iterations:
            raise ValueError(f"{self.checkpoint_dir} holds no optimizer state matching its epoch count")
        history.update(state["history"])
        return int(state["epochs_completed"])


def checkpoint_weights_path(checkpoint_dir):
    """The weights file of the checkpoint in `checkpoint_dir` (the one its state names)."""
    state = json.loads((Path(checkpoint_dir) / CHECKPOINT_STATE).read_text())
    return Path(checkpoint_dir) / state.get("weights", LEGACY_CHECKPOINT_WEIGHTS)


def settings_differing(saved, config):
    """Names of the settings in which a checkpoint's saved config (a dict) differs from
    `config`. A setting the saved dict lacks (added to TrainConfig later) counts at its
    default, which must reproduce the behaviour from before it existed; init_weights
    compares the files the paths lead to."""
    current = dataclasses.asdict(config)
    unknown = sorted(set(saved) - set(current))
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}

    def same(name):
        before, now = saved.get(name, defaults[name]), current[name]
        if name == "init_weights" and before is not None and now is not None:
            return Path(before).resolve() == Path(now).resolve()
        return before == now

    return unknown + [name for name in current if not same(name)]


class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle schedule driven by the optimizer's step counter: linear from peak/10 to
    peak over the warm-up steps, then linear down to 0 at the last step."""

    def __init__(self, peak, total_steps, warmup_fraction):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.warmup_steps = int(round(warmup_fraction * total_steps))

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * (0.1 + 0.9 * step / max(1, self.warmup_steps))
        cool = self.peak * keras.ops.maximum(0.0, (self.total_steps - step)
                                             / max(1, self.total_steps - self.warmup_steps))
        return keras.ops.where(step < self.warmup_steps, warm, cool)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_fraction": self.warmup_fraction}


def save_final_weights(result, out_dir):
    """Writes the model without optimizer state (8 MB, not 23), its config and history."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fresh = build_model(scaled_widths(result.config.width_mult))
    fresh.set_weights(result.model.get_weights())
    fresh.save_weights(out_dir / FINAL_WEIGHTS)
    (out_dir / CONFIG_FILE).write_text(result.config.to_json())
    (out_dir / HISTORY_FILE).write_text(json.dumps(result.history, indent=1))
    return out_dir / FINAL_WEIGHTS
