"""Train tab: start a short run in the browser and watch its curves move live.

The engine (cifar_demo.training) runs as the /train request iterates a run held by the
server-wide TrainingSlot (cifar_demo/ui/training_runs.py; on a ZeroGPU Space, inside its GPU
lease); this module turns the run's events into page updates. The form is
ui/train_form.py; the trained model lives in the person's session state only (ui/session.py).
"""

import dataclasses
import html
import logging
import time

import gradio as gr
import numpy as np

from cifar_demo import CLASSES, data, plots, training
from cifar_demo.predictions import GRID_IMAGES
from cifar_demo.ui import guards, inside_views
from cifar_demo.ui.downloads import save_downloads
from cifar_demo.ui.event_streams import STREAM_GRACE_SECONDS, STREAMS
from cifar_demo.ui.internals import ShownImage
from cifar_demo.ui.session import TrainedModel
from cifar_demo.ui.train_form import build_form, config_from_form, describe_config, shipped_config, show_preset
from cifar_demo.ui.training_runs import (
    EvaluationProgress,
    RunFailed,
    RunFinished,
    RunRefused,
    TrainingSlot,
    format_duration,
)

REFRESH_SECONDS = 1.0       # at most one page update per second while a run streams
SLOT_WAIT_SECONDS = 10      # how long an admitted run waits for an abandoned one to finish its batch

SLOT = TrainingSlot()
LOG = logging.getLogger(__name__)
REFUSALS = logging.getLogger("cifar_demo.refused")  # one line per refused request, as the guards log them


def client_address(request):
    """The client as the server sees it (a proxy's address unless it forwards the client's
    and uvicorn trusts it: FORWARDED_ALLOW_IPS), IPv6 per /64 as the upload guard counts
    it; None when unknown."""
    return guards.client_key(request.client.host) if request.client is not None else None


def progress_html(fraction, text, kind="running"):
    """A progress bar with a line of text under it (kind: running, done, error, idle)."""
    fraction = min(1.0, max(0.0, fraction))
    return (
        f'<div class="run-status run-{kind}"><div class="run-bar"><div style="width:{fraction * 100:.1f}%"></div></div>'
        f'<div class="run-text">{html.escape(text)}</div></div>'
    )


class RunView:
    """What the page shows of one run, rebuilt from its events."""

    def __init__(self, config):
        self.config = config
        self.history = {"steps": [], "epochs": []}
        self.latest = None
        self.device = ""            # backend and device, from the run's RunStarted
        self.started = time.perf_counter()
        self.snapshot = None        # the last epoch's training.EpochSnapshot
        self.snapshot_shown = None  # the one last sent to the page

    def add(self, event):
        if isinstance(event, training.RunStarted):
            self.device = event.device
        elif isinstance(event, training.BatchEnded):
            self.latest = event
            self.history["steps"].append({"step": event.step, "loss": event.loss, "accuracy": event.accuracy})
        elif isinstance(event, training.EpochEnded):
            self.history["epochs"].append(dataclasses.asdict(event))
        elif isinstance(event, training.EpochSnapshot):
            self.snapshot = event

    def watched(self):
        """The newest epoch's filters and maps as one picture, or gr.skip() when the page
        already shows it (a picture is drawn and sent once per epoch)."""
        if self.snapshot is None or self.snapshot is self.snapshot_shown:
            return gr.skip()
        self.snapshot_shown = snapshot = self.snapshot
        return gr.update(value=inside_views.learning_snapshot(snapshot.first_kernels, snapshot.watched_maps,
                                                              snapshot.watched_image),
                         label=f"After epoch {snapshot.epoch}: an input, the first layer's filters, its last maps")

    def curves(self):
        shipped = shipped_config()
        if self.config.init_weights and not (shipped and self.config.validates_on_images_held_out_of(shipped)):
            title = "Live training curves (validation images were in the shipped model's training set)"
        else:
            title = "Live training curves (validation on held-out training images)"
        return plots.training_curves(self.history, title=title)

    def status(self):
        event = self.latest
        where = f" · {self.device}" if self.device else ""
        if event is None:
            return progress_html(0, f"Starting the run (building the model){where}...")
        last_epoch = self.history["epochs"][-1] if self.history["epochs"] else None
        validation = ""
        if last_epoch:
            validation = f" · validation accuracy {last_epoch['val_accuracy']:.1%} after epoch {last_epoch['epoch']}"
        return progress_html(
            event.step / event.total_steps,
            f"Epoch {event.epoch}/{self.config.epochs} · step {event.step}/{event.total_steps} · "
            f"{event.images_per_second:.0f} images/s · {format_duration(event.eta_seconds)} left{validation}{where}",
        )


class TrainingData:
    """Iterating yields status bars while CIFAR-10 loads: the download's megabytes when it
    downloads (on a Space, once after every restart), an error bar when it fails; then
    `dataset` holds it (None after a failure)."""

    def __init__(self, poll_seconds=1.0):
        self.dataset = None
        self._poll_seconds = poll_seconds

    def __iter__(self):
        def downloading(done, total):
            return progress_html(done / total, f"Downloading CIFAR-10: {done / 1e6:.0f} of {total / 1e6:.0f} MB. "
                                 "This happens once per server start (on a Space, again after every restart).")

        try:
            self.dataset = yield from data.load_cifar10_showing(downloading, self._poll_seconds)
        except ValueError as error:
            yield progress_html(0, f"No data to train on. {error}", "error")


def results_markdown(outcome, view):
    report = outcome.report
    result = outcome.result
    if outcome.time_limited:
        ending = f"stopped at the {format_duration(SLOT.max_seconds)} limit, keeping what it had learned"
    elif result.stopped:
        ending = "stopped by you, keeping what it had learned"
    else:
        ending = "finished"
    per_class = " · ".join(f"{name} {report['per_class_accuracy'][name]:.0%}" for name in CLASSES)
    tested = f"the {report['images']:,} official test images"
    if report["images"] < len(data.load_cifar10_cached().y_test):
        tested = f"the first {report['images']:,} official test images (a stopped run is tested on a subset)"
    return (
        f"### Test accuracy: {report['accuracy']:.1%} on {tested}\n"
        f"The run {ending} after {result.steps:,} steps in {format_duration(time.perf_counter() - view.started)}.\n\n"
        f"Per class: {per_class}\n\n"
        "Press **Use this model** to see its answer beside the shipped model's on the Classify tab "
        "(only in this browser session), or download its weights below."
    )


def build(trained_model, tab):
    """Lays out the tab; `trained_model` is the session's gr.State shared with the Classify
    tab, and selecting `tab` shows whether a run is already going."""
    gr.Markdown(
        "Train the network yourself and watch it learn. **Quick** takes about 2 minutes, "
        "**Standard** about 10; **Custom** lets you set everything. One run trains at a time on "
        f"this server: while someone else's run is going, you are told how long it has left. {SLOT.rules()}"
    )
    server_status = gr.Markdown()
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            form = build_form()
            with gr.Row():
                start_button = gr.Button("Start training", variant="primary", elem_id="start-training")
                stop_button = gr.Button("Stop", variant="stop", elem_id="stop-training")
        with gr.Column(scale=5):
            status = gr.HTML(progress_html(0, "No run yet.", "idle"), elem_id="run-status")
            curves = gr.Plot(show_label=False, elem_id="training-curves", format="png")
            watch = ShownImage(label="Watch it learn (after every epoch)", interactive=False, format="png",
                               buttons=[], elem_id="watch-it-learn", elem_classes=["pixelated"])
    results = gr.Markdown(elem_id="run-results")
    with gr.Row():
        use_button = gr.Button("Use this model", visible=False, elem_id="use-model")
        downloads = gr.File(label="Download the trained weights and config", file_count="multiple", visible=False)
    with gr.Row():
        # The figures carry their own titles; a Gradio label would sit on top of them.
        confusion = gr.Plot(show_label=False, visible=False, format="png")
        grid = gr.Plot(show_label=False, visible=False, format="png")
    candidate = gr.State()

    def server_line():
        line = SLOT.status()
        return f"**Server busy:** {line}" if line else ""

    def check_run(preset_value, start_value, epochs_value, train_size_value, batch_size_value, learning_rate_value,
                  width_value, augment_value, smoothing_value, seed_value, request: gr.Request):
        """Gradio's validator for /train, run before the request joins the queue: a bad
        setting, a busy slot or a fair-use limit refuses it at once, so runs never wait in
        (or fill) the queue that every other event shares. Admits at most one run at a time."""
        values = (preset_value, start_value, epochs_value, train_size_value, batch_size_value, learning_rate_value,
                  width_value, augment_value, smoothing_value, seed_value)
        try:
            config = config_from_form(*values)
            if request.session_hash is None:  # the REST API: its session id is the event's, known only later
                SLOT.check(config, None, client_address(request))
            else:
                SLOT.admit(config, request.session_hash, client_address(request))
        except (ValueError, RunRefused) as error:
            REFUSALS.info("refused /train: %s", error)
            return [gr.validate(False, str(error))] + [gr.validate(True, "")] * (len(values) - 1)
        return [gr.validate(True, "")] * len(values)

    def train(preset_value, start_value, epochs_value, train_size_value, batch_size_value, learning_rate_value,
              width_value, augment_value, smoothing_value, seed_value, request: gr.Request):
        """Streams a run's progress, curves and, at the end, its results (the /train API)."""
        owner = request.session_hash
        try:
            config = config_from_form(preset_value, start_value, epochs_value, train_size_value, batch_size_value,
                                      learning_rate_value, width_value, augment_value, smoothing_value, seed_value)
        except ValueError as error:
            raise gr.Error(str(error), title="Cannot start this run") from None
        if not STREAMS.wait_for(owner, STREAM_GRACE_SECONDS):
            SLOT.withdraw(owner)  # nobody listens to this request: it takes nothing shared
            REFUSALS.info("dropped a training request whose client never listened")
            return
        run = None
        try:
            try:
                SLOT.claim(owner)
            except RunRefused as error:
                yield {status: progress_html(0, str(error), "error")}
                return
            hidden = {use_button: gr.update(visible=False), downloads: gr.update(visible=False, value=None),
                      confusion: gr.update(visible=False), grid: gr.update(visible=False), results: ""}
            yield {status: progress_html(0, "Loading CIFAR-10..."), curves: None, watch: None, **hidden}
            loading = TrainingData()
            for update in loading:
                yield {status: update}
            dataset = loading.dataset
            if dataset is None:
                return
            try:
                run = SLOT.start(config, dataset, owner=owner, address=client_address(request),
                                 wait_seconds=SLOT_WAIT_SECONDS)
            except (RunRefused, ValueError) as error:
                yield {status: progress_html(0, str(error), "error")}
                return
        finally:
            if run is None:
                SLOT.withdraw(owner)
        yield from stream_run(run, config)

    def stream_run(run, config):
        view = RunView(config)
        last_refresh = 0.0
        ended = False
        try:  # from here on, a page closed at any yield frees the slot (finally)
            yield {status: progress_html(0, f"Starting: {describe_config(config)}.")}
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
                    testing = (f"Testing on the official test set and finding each channel's top images: "
                               f"{event.done:,}/{event.total:,} images...")
                    yield {status: progress_html(event.done / event.total, testing)}
                    continue
                if event is not None:
                    view.add(event)
                now = time.perf_counter()
                if now - last_refresh >= REFRESH_SECONDS or isinstance(event, training.EpochEnded):
                    last_refresh = now
                    yield {status: view.status(), curves: view.curves(), watch: view.watched()}
        finally:
            if not ended:  # the page was closed or the request cancelled: free the server
                run.abandon()

    def finish(outcome, view):
        report = outcome.report
        dataset = data.load_cifar10_cached()
        x_test, y_test = dataset.x_test[:GRID_IMAGES], dataset.y_test[:GRID_IMAGES]
        summary = f"{view.config.epochs}-epoch run, {report['accuracy']:.1%} test accuracy"
        model = TrainedModel(outcome.predictor, summary, outcome.probabilities, outcome.top_activations)
        ending = "Stopped; evaluated what it had learned." if outcome.result.stopped else "Done."
        return {
            status: progress_html(1, ending, "done"),
            curves: view.curves(),
            watch: view.watched(),
            results: results_markdown(outcome, view),
            confusion: gr.update(visible=True, value=plots.confusion_matrix_figure(
                np.asarray(report["confusion_matrix"]),
                title=f"Confusion matrix on the {report['images']:,} test images")),
            grid: gr.update(value=plots.prediction_grid(
                x_test, y_test, np.argmax(outcome.probabilities[:GRID_IMAGES], axis=1),
                title=f"The blog's grid: the first {len(y_test)} test images, wrong predictions in red and marked "
                      "“wrong”"), visible=True),
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

    form.preset_name.change(show_preset, inputs=form.preset_name, outputs=form.settings, api_visibility="private",
                            show_progress="hidden")
    start_button.click(
        train,
        inputs=[form.preset_name, form.start_from, *form.settings],
        outputs=[status, curves, results, confusion, grid, downloads, use_button, candidate, watch],
        api_name="train",
        validator=check_run,
        preprocess=False,  # raw values: config_from_form checks each one and names it in its message
        # Never queued behind another run: check_run admits one at a time and refuses the rest.
        concurrency_limit=None,
        show_progress="minimal",
    )
    stop_button.click(stop, api_name="stop_training", show_progress="hidden")
    use_button.click(use, inputs=candidate, outputs=trained_model, api_visibility="private")
    tab.select(server_line, outputs=server_status, api_visibility="private", show_progress="hidden")
