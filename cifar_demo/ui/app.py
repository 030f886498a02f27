"""Assembles the tabs into one gr.Blocks and holds the launch settings."""

import contextlib
import json
import logging
import os
import time

import gradio as gr
import numpy as np

from cifar_demo import images, ood
from cifar_demo.artifacts import SHIPPED_METRICS, SHIPPED_TEST_PREDICTIONS, SHIPPED_WEIGHTS
from cifar_demo.ood import OodDetector, UnavailableDetector
from cifar_demo.predictions import PredictionSet
from cifar_demo.predictor import Predictor
from cifar_demo.ui import (
    about_tab,
    classify_tab,
    data_tab,
    event_streams,
    guards,
    inside_tab,
    mistakes_tab,
    robustness_tab,
    train_tab,
    upload_cache,
)
from cifar_demo.ui.first_view import Deferred, Lazy
from cifar_demo.ui.internals import after_launch, files_gradio_keeps, quiet_refusals, release_after
from cifar_demo.ui.session import free_trained_model

LOG = logging.getLogger(__name__)
TITLE = "CIFAR-10 Studio"
# Gradio's queue: every event waits in it; beyond QUEUE_SIZE waiting events a new one is
# refused with "queue full" instead of piling up. Events run QUEUE_CONCURRENCY at a time
# unless they set their own limit (/train sets none: its validator admits one run at a time).
QUEUE_SIZE = 64
QUEUE_CONCURRENCY = 4
MAX_UPLOAD = images.MAX_FILE_BYTES  # larger uploads are refused before they reach any handler
# Seconds: every 5 minutes, delete uploads and outputs older than 30 minutes (a page shows
# its images long before); upload_cache also caps the cache's total size.
CACHE_CLEANUP = (300, 1800)
# Seconds a closed page's state (its trained model above all) is kept in case the page was
# not really closed (a dropped connection that comes back, a laptop waking up): Gradio's
# own wait is an hour. Environment variable for deployments and tests.
SESSION_GRACE_SECONDS = float(os.environ.get("CIFAR10_STUDIO_SESSION_GRACE", "300"))
# Gradio's Soft theme with its indigo text and fills one shade darker: the defaults
# (primary_500 on primary_100, white on primary_500) fall short of WCAG AA's 4.5:1 contrast.
THEME = gr.themes.Soft().set(
    block_label_text_color="*primary_700", block_title_text_color="*primary_700", color_accent="*primary_600",
    button_primary_background_fill="*primary_600", checkbox_label_background_fill_selected="*primary_600",
    body_text_color_subdued="*neutral_600",
)
CSS = """
.pixelated img, #neighbours img { image-rendering: pixelated; }
.fill-image img { width: 100%; height: 100%; object-fit: contain; }
footer { display: none !important; }
.run-status .run-bar { height: 14px; border-radius: 7px; background: var(--neutral-200); overflow: hidden; }
.run-status .run-bar > div { height: 100%; background: var(--color-accent); transition: width 0.4s; }
.run-status.run-done .run-bar > div { background: #2ca02c; }
.run-status.run-error .run-bar { background: #f8d7da; }
.run-status .run-text { margin-top: 6px; font-size: 0.95em; }
.run-status.run-error .run-text { color: #b00020; font-weight: 600; }
.ood-notice { padding: 8px 12px; border-radius: 8px; font-size: 0.95em; }
.ood-notice.ood-flagged { background: #fff3cd; border: 2px solid #e0a800; color: #5c4400; font-size: 1.05em; }
.ood-notice.ood-ok { color: var(--body-text-color-subdued); }
.ood-notice.ood-drawing { background: #e7f1ff; border: 2px solid #4a7fc1; color: #163d6b; }
.ood-notice .ood-numbers { font-size: 0.85em; margin-top: 4px; }
#train-preset > [data-testid="status-tracker"]:has(.validation-error) { position: relative !important; }
#train-preset .validation-error { position: relative; text-align: left; margin-bottom: 8px; }
/* The camera's message box (ui/camera.py) takes no room until it has something to say. */
#camera-message:has(.camera-message:empty) { display: none; }
/* Code in Markdown wraps instead of scrolling sideways, in the text's own colour (the
   syntax colours fall short of 4.5:1 contrast). */
.prose pre, .prose pre code { white-space: pre-wrap; overflow-wrap: anywhere; }
.prose pre code .token { color: inherit !important; }
/* Phones and tablets: galleries of 32x32 thumbnails take fewer, narrower columns (Gradio
   gives each at least 100 px), and the drawing canvas shrinks to the screen's width. */
@media (max-width: 820px) {
  .grid-container { grid-template-columns: repeat(auto-fill, minmax(84px, 1fr)) !important; }
}
/* Phones: the confusion table's counts stay whole in its narrow cells (smaller, no padding). */
@media (max-width: 480px) {
  #confusion-table [role=gridcell], #confusion-table [role=columnheader] { font-size: 11px; }
  #confusion-table .cell-wrap, #confusion-table .cell-wrap > span { padding: 0 1px !important; }
}
.camera-message { padding: 8px 12px; background: #fff3cd; border: 2px solid #e0a800; color: #5c4400; }
"""


def shipped_metrics():
    """What `evaluate --json` measured for the shipped weights (None when absent)."""
    return json.loads(SHIPPED_METRICS.read_text()) if SHIPPED_METRICS.is_file() else None


def shipped_accuracy_note(report):
    """One line on the shipped model's measured test accuracy, to the hundredth of a point the
    model card gives (one decimal would round 93.97% up to a 94.0% it does not reach)."""
    if report is None:
        return ""
    return (
        f" The shipped weights score **{report['accuracy']:.2%}** on the "
        f"{report['images']:,} official test images (the blog's recipe reached 62%)."
    )


@contextlib.contextmanager
def timed(name, timings):
    """Records the seconds its block took as `timings[name]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - start


def timings_line(timings):
    """{"model load": 0.61, ...} -> "model load 0.61 s, ..." (bench/startup.py parses it)."""
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())


def build_app(predictor=None):
    """Builds the UI around `predictor`: the shipped weights, loaded when None, or the same
    weights loaded by the caller (the OOD statistics, metrics, model card and test
    predictions the tabs show are the files shipped beside them).

    What the first page view does not need waits until the server listens (warm_up), which
    then logs where the start-up time went (bench/startup.py reads it)."""
    timings = {}
    started = time.perf_counter()
    cache_folder = upload_cache.own_cache_folder()  # before any component is built
    quiet_refusals()
    # The shipped model and its OOD statistics load after launch (warm_up); until then the
    # tabs hold stand-ins, and an event that needs the model sooner waits for it.
    shipped = Deferred(lambda: load_shipped(predictor))
    lazy_predictor, detector = Lazy(lambda: shipped.get()[0]), Lazy(lambda: shipped.get()[1])
    metrics = shipped_metrics()
    predictions = PredictionSet.load(SHIPPED_TEST_PREDICTIONS)  # for the Mistakes and About tabs
    first_views = []
    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP, analytics_enabled=analytics_enabled()) as demo:
        gr.Markdown(
            f"# {TITLE}\n"
            "A 9-layer convolutional network that sorts 32x32 images into CIFAR-10's ten classes: "
            "airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck." + shipped_accuracy_note(metrics)
        )
        # The model this browser session trained and chose to use; never shared between sessions.
        trained_model = gr.State(delete_callback=free_trained_model)
        # The last 32x32 input the person looked at, in any tab (a current_input.CurrentInput).
        shared_input = gr.State()
        # The id of the tab the page shows: tabs that follow shared_input skip work while hidden.
        shown_tab = gr.State("classify")
        with gr.Tabs(overflow_behavior="wrap"):  # on a phone every tab stays in sight, on two rows
            with gr.Tab("Classify", id="classify") as classify, timed("Classify tab", timings):
                classify_tab.build(lazy_predictor, trained_model, detector, metrics, shared_input)
            with gr.Tab("Data", id="data") as data, timed("Data tab", timings):
                first_views.append(data_tab.build(data))
            with gr.Tab("Mistakes", id="mistakes") as mistakes, timed("Mistakes tab", timings):
                first_views.append(mistakes_tab.build(mistakes, lazy_predictor, trained_model, predictions,
                                                     shared_input))
            with gr.Tab("Inside the network", id="inside") as inside, timed("Inside tab", timings):
                first_views.append(inside_tab.build(inside, lazy_predictor, trained_model, shared_input,
                                                   shown_tab))
            with gr.Tab("Robustness", id="robustness") as robustness, timed("Robustness tab", timings):
                first_views.append(robustness_tab.build(robustness, lazy_predictor, detector, trained_model,
                                                        shared_input, shown_tab))
            with gr.Tab("Train", id="train") as train, timed("Train tab", timings):
                train_tab.build(trained_model, train)
            with gr.Tab("About the model", id="about") as about, timed("About tab", timings):
                first_views.append(about_tab.build(about, lazy_predictor, detector, metrics, predictions))

        for tab in (classify, data, mistakes, inside, robustness, train, about):
            tab.select(lambda tab_id=tab.id: tab_id, outputs=shown_tab, queue=False, api_visibility="private",
                       show_progress="hidden")

        def free_session(request: gr.Request):
            """Schedules a closed page's state for deletion after the grace period."""
            release_after(demo, request.session_hash, SESSION_GRACE_SECONDS)

        demo.unload(free_session)
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_SIZE)
    upload_cache.start_pruner(cache_folder, lambda: files_gradio_keeps(demo))
    timings["whole build"] = time.perf_counter() - started
    after_launch(demo, lambda: warm_up(shipped, first_views, timings))
    return demo


def analytics_enabled():
    """Gradio's usage analytics only when GRADIO_ANALYTICS_ENABLED asks for them (Gradio's
    own default is on)."""
    return os.environ.get("GRADIO_ANALYTICS_ENABLED", "False").strip().lower() == "true"


def load_shipped(predictor=None):
    """(predictor, its OodDetector): the shipped weights loaded when `predictor` is None. An
    unreadable detector file is logged (with its path and the error) and stood in for, so
    the app still answers; people see the file's name only, no path on the server."""
    predictor = predictor if predictor is not None else Predictor.load()
    try:
        return predictor, OodDetector.load(predictor)
    except ValueError as error:
        LOG.error("serving without the out-of-distribution check: %s", error)
        name = ood.ood_path_for(SHIPPED_WEIGHTS).name  # the file OodDetector.load reads
        return predictor, UnavailableDetector(predictor, f"its statistics file ({name}) is missing or unreadable "
                                                         "(the server's log says why).")


def warm_up(shipped, first_views=(), built=None):
    """After launch: loads the `shipped` model (a Deferred of load_shipped), traces its OOD
    features and Grad-CAM functions (about a second) and computes the tabs' first views,
    rather than in the first request that needs them; a request that comes sooner waits
    for the same work (a Deferred or FirstView computes once; the Predictor builds each
    function once, under a lock). Logs the seconds each part of the build (`built`) and
    of this took."""
    timings = {}
    with timed("model load", timings):
        predictor, detector = shipped.get()
    blank = np.zeros((32, 32, 3), dtype=np.uint8)
    with timed("explanations traced", timings):
        detector.score(blank[None])
        predictor.explain_pixels(blank)
    with timed("first views drawn", timings):
        for view in first_views:
            view.prepare()
    LOG.info("start-up times: built %s; after launch %s", timings_line(built or {}), timings_line(timings))


def launch_settings():
    """Keyword arguments for `demo.launch()`, fit for a public Space: no share link, no
    folder served beyond Gradio's own cache (no allowed_paths), an upload size limit, the
    upload guards (guards.middleware), result-stream tracking that lets unheard events
    expire (event_streams.middleware), no monitoring dashboard, and only the messages the
    app raises on purpose (gr.Error) shown to users, never the text of an unexpected
    exception (it can name files and internals).

    Server-side rendering: on a Space (SYSTEM=spaces) it is left to GRADIO_SSR_MODE, which
    Spaces set to True: Gradio then puts Node (20 or newer) on the public port in front of
    Python on the next free port. It works with this app (tests/test_ssr.py runs it that
    way); Gradio 6.31 renders only the page's shell on the server, the components still
    mount in the browser. Elsewhere it is off: Node forwards a client's X-Forwarded-For as
    it came and uvicorn trusts Node (127.0.0.1), so without a proxy in front that sets the
    header, any visitor could claim any address and slip the per-address limits."""
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "max_file_size": MAX_UPLOAD,
        "app_kwargs": {"middleware": [*guards.middleware(), *event_streams.middleware()]},
        "enable_monitoring": False,
        "share": False,
        "show_error": False,
        "css": CSS,
        "theme": THEME,
        "ssr_mode": None if os.environ.get("SYSTEM") == "spaces" else False,
    }
