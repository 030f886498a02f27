"""Train tab: start a short run in the browser and watch its curves move live.

The engine (cifar_demo.training) runs in a worker thread held by a server-wide
TrainingSlot; this module turns the form into a TrainConfig and the run's events into
page updates. The trained model lives in the person's session state only.
"""

import dataclasses
import html
import logging
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from cifar_demo import CLASSES, data, plots, training
from cifar_demo.predictions import GRID_IMAGES
from cifar_demo.artifacts import SHIPPED_WEIGHTS
from cifar_demo.predictor import Predictor
from cifar_demo.ui.training_runs import (
    RunFailed,
    RunFinished,
    RunInProgress,
    EvaluationProgress,
    TrainingSlot,
    format_duration,
)

PRESET_CHOICES = ["Quick", "Standard", "Custom"]
FROM_SCRATCH = "From scratch"
FINE_TUNE = "Fine-tune the shipped weights"
FINE_TUNE_LR_FACTOR = 0.1   # fine-tuning starts from a good minimum: a tenth of the peak LR
REFRESH_SECONDS = 1.0       # at most one page update per second while a run streams
SLOT_WAIT_SECONDS = 120     # how long a run waits for an abandoned one to wind down
DOWNLOADS_DIR = Path(tempfile.gettempdir()) / "cifar10-studio-downloads"
DOWNLOADS_KEEP_SECONDS = 3600
LOG = logging.getLogger(__name__)

# What the Custom form accepts: wide enough to experiment, narrow enough that one person's
# run cannot occupy a shared server for hours (runs also stop after 30 minutes). Checked
# by config_from_form, whose messages name the field (gr.Number's own minimum/maximum
# would answer without saying which field).
LIMITS = {
    "epochs": (1, 30),
    "train_size": (100, 49000),     # 50,000 less the 1,000 held out for validation
    "batch_size": (16, 512),
    "learning_rate": (0.001, 1.0),
    "width_mult": (0.125, 1.0),
    "label_smoothing": (0.0, 0.3),
    "seed": (0, 2**31 - 1),
}

SLOT = TrainingSlot()
_data_lock = threading.Lock()
_data_cache = {}


@dataclass
class TrainedModel:
    """A model trained in one browser session; kept in that session's state only."""

    predictor: Predictor
    summary: str              # e.g. "3-epoch run, 64.4% test accuracy"
    test_probabilities: np.ndarray  # (N, 10) on the official test set, for the Mistakes tab


class FormNumber(gr.Number):
    """gr.Number whose API callers get a message naming the field for a value that is not
    a number (gr.Number's own conversion fails with an unnamed server error)."""

    is_template = True  # keeps gr.Number's front end

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (TypeError, ValueError, OverflowError):  # OverflowError: infinity, which JSON allows
            raise gr.Error(f"{self.label} must be a finite number, got {payload!r}", title="Cannot start this run") from None


def free_trained_model(model):
    """Called by Gradio when a session's state is deleted (its page closed): the model goes
    with it, and the server log says so."""
    if model is not None:
        LOG.info("freed the trained model of a closed session (%s)", model.summary)


def load_data():
    """CIFAR-10, loaded once per server; ValueError (with what to do) when unavailable."""
    with _data_lock:
        if "data" not in _data_cache:
            _data_cache["data"] = data.load_cifar10()
        return _data_cache["data"]


def config_from_form(preset_name, start_from, epochs, train_size, batch_size, learning_rate,
                     width_mult, augment, label_smoothing, seed):
    """The run's TrainConfig; ValueError with a message for any bad value."""
    if preset_name not in PRESET_CHOICES:
        raise ValueError(f"preset must be one of {', '.join(PRESET_CHOICES)}, got {preset_name!r}")
    if start_from not in (FROM_SCRATCH, FINE_TUNE):
        raise ValueError(f"start from must be {FROM_SCRATCH!r} or {FINE_TUNE!r}, got {start_from!r}")
    if preset_name == "Custom":
        values = {
            "epochs": epochs, "train_size": train_size, "batch_size": batch_size, "learning_rate": learning_rate,
            "width_mult": width_mult, "label_smoothing": label_smoothing, "seed": seed,
        }
        for name, value in values.items():
            low, high = LIMITS[name]
            label = name.replace("_", " ")
            if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{label} must be a number, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{label} must be between {low:g} and {high:g}, got {value:g}")
            if name in ("epochs", "train_size", "batch_size", "seed"):
                if float(value) != int(value):
                    raise ValueError(f"{label} must be a whole number, got {value:g}")
                values[name] = int(value)
        if not isinstance(augment, bool):
            raise ValueError(f"augmentation must be true or false, got {augment!r}")
        config = training.preset("Quick", augment=augment, val_size=1000, **values)
    else:
        config = training.preset(preset_name)
    if start_from == FINE_TUNE:
        if preset_name == "Custom" and config.width_mult != 1.0:
            raise ValueError("fine-tuning the shipped weights needs width multiplier 1.0 (their architecture)")
        config = dataclasses.replace(
            config, width_mult=1.0, init_weights=str(SHIPPED_WEIGHTS),
            learning_rate=config.learning_rate * FINE_TUNE_LR_FACTOR,
        )
    config.validate()
    return config


def describe_config(config):
    return (
        f"{config.epochs} epoch(s) over {config.train_size or 'all'} training images, width x{config.width_mult:g} "
        f"(blog widths 64/128/256), batch {config.batch_size}, peak LR {config.learning_rate:g}, "
        f"augmentation {'on' if config.augment else 'off'}, label smoothing {config.label_smoothing:g}, "
        f"seed {config.seed}, {config.precision}"
        + (", starting from the shipped weights" if config.init_weights else "")
    )


def progress_html(fraction, text, kind="running"):
    """A progress bar with a line of text under it (kind: running, done, error, idle)."""
    fraction = min(1.0, max(0.0, fraction))
    return (
        f'<div class="run-status run-{kind}"><div class="run-bar"><div style="width:{fraction * 100:.1f}%"></div></div>'
        f'<div class="run-text">{html.escape(text)}</div></div>'
    )


def save_downloads(result):
    """Writes the weights and config for download; prunes downloads older than an hour."""
    DOWNLOADS_DIR.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in DOWNLOADS_DIR.iterdir():
        if now - old.stat().st_mtime > DOWNLOADS_KEEP_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
    out = DOWNLOADS_DIR / uuid.uuid4().hex
    weights = training.save_final_weights(result, out)
    return [str(weights), str(out / training.CONFIG_FILE)]


class RunView:
    """What the page shows of one run, rebuilt from its events."""

    def __init__(self, config):
        self.config = config
        self.history = {"steps": [], "epochs": []}
        self.latest = None
        self.started = time.perf_counter()

    def add(self, event):
        if isinstance(event, training.BatchEnded):
            self.latest = event
            self.history["steps"].append({"step": event.step, "loss": event.loss, "accuracy": event.accuracy})
        elif isinstance(event, training.EpochEnded):
            self.history["epochs"].append(dataclasses.asdict(event))

    def curves(self):
        if self.config.init_weights:
            # The shipped weights trained on all 50,000 images: these were not held out from them.
            title = "Live training curves (validation images were in the shipped model's training set)"
        else:
            title = "Live training curves (validation on held-out training images)"
        return plots.training_curves(self.history, title=title)

    def status(self):
        event = self.latest
        if event is None:
            return progress_html(0, "Starting the run (building the model)...")
        last_epoch = self.history["epochs"][-1] if self.history["epochs"] else None
        validation = (
            f" · validation accuracy {last_epoch['val_accuracy']:.1%} after epoch {last_epoch['epoch']}" if last_epoch else ""
        )
        return progress_html(
            event.step / event.total_steps,
            f"Epoch {event.epoch}/{self.config.epochs} · step {event.step}/{event.total_steps} · "
            f"{event.images_per_second:.0f} images/s · {format_duration(event.eta_seconds)} left{validation}",
        )


def results_markdown(outcome, view):
    report = outcome.report
    result = outcome.result
    if outcome.time_limited:
        ending = f"stopped at the {SLOT.max_seconds / 60:g}-minute limit, keeping what it had learned"
    elif result.stopped:
        ending = "stopped by you, keeping what it had learned"
    else:
        ending = "finished"
    per_class = " · ".join(f"{name} {report['per_class_accuracy'][name]:.0%}" for name in CLASSES)
    return (
        f"### Test accuracy: {report['accuracy']:.1%} on the {report['images']:,} official test images\n"
        f"The run {ending} after {result.steps:,} steps in {format_duration(time.perf_counter() - view.started)}.\n\n"
        f"Per class: {per_class}\n\n"
        "Press **Use this model** to see its answer beside the shipped model's on the Classify tab "
        "(only in this browser session), or download its weights below."
    )


def build(trained_model, tab):
    """Lays out the tab; `trained_model` is the session's gr.State shared with the Classify
    tab, and selecting `tab` shows whether a run is already going."""
    quick = training.preset("Quick")
    gr.Markdown(
        "Train the network yourself and watch it learn. **Quick** takes about 2 minutes, "
        "**Standard** about 10; **Custom** lets you set everything. One run trains at a time on "
        "this server: if someone else's run is going, yours waits its turn in the queue."
    )
    server_status = gr.Markdown()
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            preset_name = gr.Radio(PRESET_CHOICES, value="Quick", label="Preset")
            start_from = gr.Radio([FROM_SCRATCH, FINE_TUNE], value=FROM_SCRATCH, label="Start from")
            with gr.Accordion("Settings (editable with Custom)", open=False):
                epochs = FormNumber(quick.epochs, label="Epochs", precision=0, interactive=False)
                train_size = FormNumber(quick.train_size, label="Training images", precision=0, interactive=False)
                batch_size = FormNumber(quick.batch_size, label="Batch size", precision=0, interactive=False)
                learning_rate = FormNumber(quick.learning_rate, label="Peak learning rate (SGD, one-cycle)", interactive=False)
                width_mult = gr.Slider(LIMITS["width_mult"][0], LIMITS["width_mult"][1], value=quick.width_mult, step=0.125, label="Width multiplier (1.0 = the blog's 64/128/256 channels)", interactive=False)
                augment = gr.Checkbox(quick.augment, label="Augmentation (random crop + flip)", interactive=False)
                label_smoothing = gr.Slider(LIMITS["label_smoothing"][0], LIMITS["label_smoothing"][1], value=quick.label_smoothing, step=0.05, label="Label smoothing", interactive=False)
                seed = FormNumber(quick.seed, label="Seed", precision=0, interactive=False)
            with gr.Row():
                start_button = gr.Button("Start training", variant="primary", elem_id="start-training")
                stop_button = gr.Button("Stop", variant="stop", elem_id="stop-training")
        with gr.Column(scale=5):
            status = gr.HTML(progress_html(0, "No run yet.", "idle"), elem_id="run-status")
            curves = gr.Plot(show_label=False, elem_id="training-curves", format="png")
    results = gr.Markdown(elem_id="run-results")
    with gr.Row():
        use_button = gr.Button("Use this model", visible=False, elem_id="use-model")
        downloads = gr.File(label="Download the trained weights and config", file_count="multiple", visible=False)
    with gr.Row():
        # The figures carry their own titles; a Gradio label would sit on top of them.
        confusion = gr.Plot(show_label=False, visible=False, format="png")
        grid = gr.Plot(show_label=False, visible=False, format="png")
    candidate = gr.State()
    form = [epochs, train_size, batch_size, learning_rate, width_mult, augment, label_smoothing, seed]

    def show_preset(name):
        """Fills the form with the preset's values; only Custom makes it editable."""
        if name == "Custom":
            return [gr.update(interactive=True) for _ in form]
        config = training.preset(name)
        values = [config.epochs, config.train_size, config.batch_size, config.learning_rate,
                  config.width_mult, config.augment, config.label_smoothing, config.seed]
        return [gr.update(value=value, interactive=False) for value in values]

    def server_line():
        line = SLOT.status()
        return f"**Server busy:** {line}" if line else ""

    def train(preset_value, start_value, epochs_value, train_size_value, batch_size_value, learning_rate_value,
              width_value, augment_value, smoothing_value, seed_value, request: gr.Request):
        """Streams a run's progress, curves and, at the end, its results (the /train API)."""
        try:
            config = config_from_form(preset_value, start_value, epochs_value, train_size_value, batch_size_value,
                                      learning_rate_value, width_value, augment_value, smoothing_value, seed_value)
        except ValueError as error:
            raise gr.Error(str(error), title="Cannot start this run") from None
        hidden = {use_button: gr.update(visible=False), downloads: gr.update(visible=False, value=None),
                  confusion: gr.update(visible=False), grid: gr.update(visible=False), results: ""}
        loading = "Downloading CIFAR-10 (about 170 MB, only once)..." if data.needs_download() else "Loading CIFAR-10..."
        yield {status: progress_html(0, loading), curves: None, **hidden}
        try:
            dataset = load_data()
        except ValueError as error:
            yield {status: progress_html(0, f"No data to train on. {error}", "error")}
            return
        try:
            # The queue lets one /train through at a time; a run whose page just closed may
            # still be finishing its last batch, so wait for it briefly.
            run = SLOT.start(config, dataset, owner=request.session_hash, wait_seconds=SLOT_WAIT_SECONDS)
        except (RunInProgress, ValueError) as error:
            yield {status: progress_html(0, str(error), "error")}
            return
        view = RunView(config)
        yield {status: progress_html(0, f"Starting: {describe_config(config)}.")}
        last_refresh = 0.0
        ended = False
        try:
            for event in run.events():
                if isinstance(event, RunFailed):
                    ended = True
                    yield {status: progress_html(0, event.message, "error"), curves: view.curves()}
                    return
                if isinstance(event, RunFinished):
                    ended = True
                    yield finish(event, view)
                    return
                if isinstance(event, EvaluationProgress):
                    yield {status: progress_html(event.done / event.total, f"Testing on the official test set: {event.done:,}/{event.total:,} images...")}
                    continue
                if event is not None:
                    view.add(event)
                now = time.perf_counter()
                if now - last_refresh >= REFRESH_SECONDS or isinstance(event, training.EpochEnded):
                    last_refresh = now
                    yield {status: view.status(), curves: view.curves()}
        finally:
            if not ended:  # the page was closed or the request cancelled: free the server
                run.abandon()

    def finish(outcome, view):
        report = outcome.report
        dataset = load_data()
        x_test, y_test = dataset.x_test[:GRID_IMAGES], dataset.y_test[:GRID_IMAGES]
        model = TrainedModel(
            outcome.predictor, f"{view.config.epochs}-epoch run, {report['accuracy']:.1%} test accuracy", outcome.probabilities
        )
        return {
            status: progress_html(1, "Done." if not outcome.result.stopped else "Stopped; evaluated what it had learned.", "done"),
            curves: view.curves(),
            results: results_markdown(outcome, view),
            confusion: gr.update(value=plots.confusion_matrix_figure(
                np.asarray(report["confusion_matrix"]), title=f"Confusion matrix on the {report['images']:,} test images"), visible=True),
            grid: gr.update(value=plots.prediction_grid(
                x_test, y_test, np.argmax(outcome.probabilities[:GRID_IMAGES], axis=1),
                title=f"The blog's grid: the first {len(y_test)} test images, wrong predictions in red"), visible=True),
            downloads: gr.update(value=save_downloads(outcome.result), visible=True),
            use_button: gr.update(visible=True),
            candidate: model,
        }

    def stop(request: gr.Request):
        if not SLOT.stop(request.session_hash):
            gr.Info("You have no training run going (another person's run can only be stopped by them).")

    def use(model):
        if model is None:
            raise gr.Error("Train a model first.")
        gr.Info("The Classify tab now shows your model's answer beside the shipped model's.")
        return model

    preset_name.change(show_preset, inputs=preset_name, outputs=form, api_visibility="private", show_progress="hidden")
    start_button.click(
        train,
        inputs=[preset_name, start_from, *form],
        outputs=[status, curves, results, confusion, grid, downloads, use_button, candidate],
        api_name="train",
        concurrency_limit=1,
        concurrency_id="training",
        show_progress="minimal",
    )
    stop_button.click(stop, api_name="stop_training", show_progress="hidden")
    use_button.click(use, inputs=candidate, outputs=trained_model, api_visibility="private")
    tab.select(server_line, outputs=server_status, api_visibility="private", show_progress="hidden")
