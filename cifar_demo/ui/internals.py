"""Where the app relies on Gradio beyond its documented API, in one place (Gradio 6.31).

Each item says what it relies on and which tests fail when an upgrade breaks it; after
upgrading Gradio run those tests, the browser ones included (`pytest -m browser`).
The Keras counterpart (its dataset cache layout) is cifar_demo/keras_internals.py, below
ui/ because the data layer uses it; TensorFlow's start-up log format, which
cifar_demo/quiet_logs.py filters, is described and guarded there.

Defining these component subclasses makes Gradio write internals.pyi (type stubs with
their event listeners) beside this file; .gitignore keeps such files out of the repository.
"""

import base64
import datetime
import json
import logging
import sys
import threading
import traceback

import gradio as gr
import gradio.blocks
import gradio.queueing
import gradio.routes
from fastapi import HTTPException
from gradio.components.base import server
from gradio.components.image_editor import AcceptBlobs
from gradio.data_classes import FileData
from gradio_client import utils as client_utils

from cifar_demo import images

# The canvas is 320x320 (0.1 MP) and exports at most a few times that on a high-DPI screen;
# no drawing needs more than this. Checked with images' own rule before Gradio decodes.
MAX_DRAWING_PIXELS = 4_000_000
# The canvas has one layer (layers=False); the browser sends it as index 0.
MAX_DRAWING_LAYERS = 4
# Drawings the browser sent (accept_blobs) and whose event has not come yet are kept in
# memory; beyond this many bytes the oldest are dropped (that drawing then shows the hint).
MAX_PENDING_DRAWING_BYTES = 64 * 1024 * 1024
REFUSALS = logging.getLogger("cifar_demo.refused")


async def refuse_links(component, url_or_file_path):
    """An image component's `async_move_resource_to_block_cache`: an http(s) link sent as
    the file is refused with a message. Gradio would download it whole into memory (httpx
    reads the response before the file size is known), past every bound the app sets on
    uploads. (A method assigned in each class rather than a mixin: Gradio names a template
    component's front end after its first base class.)

    Relies on: Gradio moving each input file to the cache through the component's
    `async_move_resource_to_block_cache(path)` before preprocess. Guarded by
    tests/test_bad_input_api.py::test_links_and_inline_images_in_place_of_a_file."""
    if url_or_file_path is not None and client_utils.is_http_url_like(str(url_or_file_path)):
        raise gr.Error("Links are not fetched: send the image file itself (with gradio_client, "
                       "handle_file on a local path).", title="Cannot read this image")
    return await gradio.blocks.Block.async_move_resource_to_block_cache(component, url_or_file_path)


def data_url_bytes(url):
    """The bytes of a base64 data URL ("data:image/png;base64,..."); ValueError when it is
    over images.MAX_FILE_BYTES or not base64."""
    encoded = url.partition(",")[2]
    if len(encoded) > images.MAX_FILE_BYTES * 4 // 3 + 4:
        raise ValueError(f"the image is over the {images.MAX_FILE_BYTES / 2**20:.0f} MB limit")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ValueError("the data URL is not base64") from None


class UploadedImage(gr.Image):
    """gr.Image that hands the raw uploaded file (or an inline image's bytes) to
    cifar_demo.images.

    gr.Image opens uploads with PIL before the event function runs, so a corrupt or
    non-image file fails inside Gradio with a generic error, and an inline base64 image
    would be decoded by plain Pillow (a 16-bit PNG turns white) and stored as a lossy
    WebP; here every file reaches our reader, which answers with a message a person can
    act on.

    Relies on: `preprocess(payload)` receiving a FileData with `.path` (the uploaded
    copy in Gradio's cache) or, sent through the API, an ImageData whose `url` is a data
    URL, and `is_template = True` keeping gr.Image's front end for a subclass. Guarded by
    tests/test_bad_input_api.py::test_unreadable_uploads_are_refused_with_a_message,
    ::test_odd_but_valid_uploads_are_classified and
    ::test_links_and_inline_images_in_place_of_a_file, tests/test_app_api.py::
    test_bad_uploads_get_a_clear_message_and_the_app_keeps_serving, and in the browser
    tests/test_browser.py::test_click_an_example_and_see_a_label and
    ::test_upload_a_photo_see_a_label_and_a_bad_file_gets_a_message, and with Node's
    server-side rendering tests/test_ssr.py::test_upload_a_photo_see_its_label_and_heatmap.
    """

    is_template = True
    async_move_resource_to_block_cache = refuse_links

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path is not None:
            return payload.path
        if payload.url and payload.url.startswith("data:"):
            try:
                return data_url_bytes(payload.url)
            except ValueError as error:
                raise gr.Error(f"The inline image could not be read: {error}.",
                               title="Cannot read this image") from None
        raise gr.Error("No image file was sent (with gradio_client, send handle_file(path)).",
                       title="Cannot read this image")


class CameraFrame(gr.Image):
    """gr.Image for the live webcam stream that hands each frame's bytes to
    cifar_demo.images (bounded, decoded by our reader) instead of decoding it itself, so a
    frame that cannot be decoded reaches the handler, which skips it: an exception would
    end the whole stream.

    Relies on: a streamed frame arriving at `preprocess(payload)` as an ImageData whose
    `url` is a base64 data URL (the browser's canvas.toDataURL("image/jpeg")), and
    `is_template = True` keeping gr.Image's front end. Guarded by tests/test_camera.py::
    test_camera_frame_hands_over_the_bytes_of_a_data_url and, in the browser (where the
    front end sends the frames), tests/test_accessibility.py::test_fake_camera_snapshot_and_live_stream.
    """

    is_template = True
    async_move_resource_to_block_cache = refuse_links

    def preprocess(self, payload):
        """bytes of the frame, its uploaded path, or None when there is none or it is not base64."""
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            try:
                return data_url_bytes(payload.url)
            except ValueError:
                return None
        return payload.path


class ShownImage(gr.Image):
    """gr.Image that only shows what the app's private events send it: left out of the API
    description, so the page config (/config, downloaded by every page load) does not carry
    its three copies of gr.Image's API schema (about 3 KB per image; the Inside the network
    tab shows 16).

    Relies on: the `skip_api` property deciding whether get_config writes a component's
    api_info (and whether /info lists it), and `is_template = True` keeping gr.Image's front
    end for a subclass. Guarded by tests/test_app_api.py::test_the_page_config_stays_small
    and, for the front end, tests/test_browser.py::
    test_inside_the_network_shows_a_channel_up_close_with_its_top_images_and_switches_model.
    """

    is_template = True

    @property
    def skip_api(self):
        return True


class ShownGallery(gr.Gallery):
    """gr.Gallery left out of the API description, for the same reason and with the same
    reliance and guards as ShownImage (about 10 KB per gallery)."""

    is_template = True

    @property
    def skip_api(self):
        return True


class ShownLabel(gr.Label):
    """gr.Label left out of the API description, as ShownImage (about 2.5 KB per label)."""

    is_template = True

    @property
    def skip_api(self):
        return True


class ShownPlot(gr.Plot):
    """gr.Plot left out of the API description, as ShownImage (about 1 KB per plot)."""

    is_template = True

    @property
    def skip_api(self):
        return True


class DrawingCanvas(gr.Sketchpad):
    """gr.Sketchpad whose unreadable payloads (only possible through the API: a file that
    is not an image as the drawing) end in a message instead of a generic server error,
    and whose images are bounded (MAX_DRAWING_PIXELS, images.MAX_FILE_BYTES) before
    Gradio decodes them: gr.ImageEditor opens every layer with PIL before our handler runs.

    Relies on: gr.Sketchpad being itself a template of gr.ImageEditor, so the front end
    to keep is named "imageeditor" (`get_block_name`), and on gr.ImageEditor.preprocess
    raising OSError/ValueError/SyntaxError (PIL's errors) for an unreadable layer; on
    preprocess decoding each image through `convert_and_format_image(file, flatten_on_white)`
    (a FileData or the bytes of a blob); and on the browser sending the canvas first to the
    `accept_blobs` server function (AcceptBlobs: data["index"], files[0][1]), which keeps
    it in `blob_storage` (id -> EditorDataBlobs) until the event names its id.
    Guarded by tests/test_bad_input_api.py::test_drawings_that_are_blank_missing_or_not_images,
    tests/test_app_api.py::test_drawing_endpoint_hints_on_a_blank_canvas_and_classifies_a_drawing,
    tests/test_guards.py::test_a_declared_12000x12000_png_is_refused_quickly_without_memory
    and ::test_drawing_blobs_are_bounded, and, for the front end (which sends blobs),
    tests/test_browser.py::test_draw_strokes_and_see_a_label and (server-side rendered)
    tests/test_ssr.py::test_draw_and_see_a_label.
    """

    is_template = True
    async_move_resource_to_block_cache = refuse_links

    def get_block_name(self):
        return "imageeditor"

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:  # a ValueError too: convert_and_format_image's refusal, kept as it is
            raise
        except (OSError, ValueError, SyntaxError):
            raise gr.Error("The drawing is not an image that can be read.", title="Cannot read this drawing") from None

    def convert_and_format_image(self, file, flatten_on_white=False):
        """Bounds each image of the payload (background, layers, composite; uploaded file or
        browser blob) by bytes and declared pixels before gr.ImageEditor decodes it."""
        if file is not None:
            try:
                images.check_bounds(file.path if isinstance(file, FileData) else bytes(file), MAX_DRAWING_PIXELS)
            except ValueError as error:
                raise gr.Error(f"The drawing was refused: {error}", title="Cannot read this drawing") from None
        return super().convert_and_format_image(file, flatten_on_white)

    @server
    def accept_blobs(self, data: AcceptBlobs):
        """gr.ImageEditor's own, bounded: each blob by bytes and declared pixels, the layer
        index, and the bytes of all drawings waiting for their event (oldest dropped)."""
        index = data.data.get("index")
        if index not in (None, "", "null") and not (str(index).isdigit() and int(index) < MAX_DRAWING_LAYERS):
            refuse_blob(400, f"a drawing has at most {MAX_DRAWING_LAYERS} layers, got layer index {index!r}")
        if not data.files:
            refuse_blob(400, "no drawing was sent")
        try:
            images.check_bounds(data.files[0][1], MAX_DRAWING_PIXELS)
        except ValueError as error:
            refuse_blob(413 if isinstance(error, images.TooLarge) else 400, f"The drawing was refused: {error}")
        with PENDING_DRAWINGS_LOCK:
            super().accept_blobs(data)
            while len(self.blob_storage) > 1 and pending_bytes(self.blob_storage) > MAX_PENDING_DRAWING_BYTES:
                self.blob_storage.pop(next(iter(self.blob_storage)))


PENDING_DRAWINGS_LOCK = threading.Lock()  # accept_blobs runs in Gradio's thread pool


def refuse_blob(status, message):
    REFUSALS.info("refused a drawing upload: %s", message)
    raise HTTPException(status_code=status, detail=message)


def pending_bytes(blob_storage):
    """Bytes held by gr.ImageEditor's blob_storage (id -> EditorDataBlobs)."""
    return sum(len(blob) for blobs in blob_storage.values()
               for blob in (blobs.background, blobs.composite, *blobs.layers) if blob is not None)


def release_after(demo, session_hash, seconds):
    """Deletes a closed page's session state `seconds` from now (calling each gr.State's
    delete_callback), unless the session is used again meanwhile.

    Relies on: `demo.state_holder` (gradio.state_holder.StateHolder, not public API) with
    `time_last_used[session_hash]`, `session_hash in state_holder` and
    `delete_state(session_hash)`; Gradio's own expiry waits an hour. Guarded by
    tests/test_security.py::test_a_closed_session_is_freed_only_if_it_stayed_idle (the
    rule, on a stand-in) and tests/test_browser.py::
    test_start_a_tiny_run_see_the_curves_move_and_stop_it (a real closed page's model is freed).
    """
    timer = threading.Timer(seconds, release_if_idle, args=(demo.state_holder, session_hash, datetime.datetime.now()))
    timer.daemon = True
    timer.start()


def release_if_idle(state_holder, session_hash, closed_at):
    """Deletes a session's state unless the session was used again after `closed_at`."""
    last_used = state_holder.time_last_used.get(session_hash)
    if session_hash in state_holder and (last_used is None or last_used <= closed_at):
        state_holder.delete_state(session_hash)


class RefusalAwareTraceback:
    """Stands in for the `traceback` module in gradio.queueing and gradio.routes: for a
    gr.Error (a refused request: our messages and Gradio's own input checks) print_exc()
    writes one log line instead of a traceback; for anything else, the full traceback."""

    def __getattr__(self, name):
        return getattr(traceback, name)

    def print_exc(self, *args, **kwargs):
        error = sys.exc_info()[1]
        if not isinstance(error, gr.Error):
            traceback.print_exc(*args, **kwargs)
            return
        api_name = getattr(sys._getframe(1).f_locals.get("fn"), "api_name", None)
        where = f" /{api_name}" if api_name else ""
        text = " ".join(f"{error.title + ': ' if error.title else ''}{error.message}".split())
        REFUSALS.info("refused%s: %s", where, text)


def quiet_refusals():
    """Installs RefusalAwareTraceback where Gradio prints the traceback of a failed event.

    Relies on: gradio.queueing and gradio.routes calling `traceback.print_exc()` (the
    module-level name `traceback`) inside the `except` that caught an event's error, with
    the event's BlockFunction as the local `fn` (only used to name the endpoint in the
    line). Guarded by tests/test_guards.py::test_a_refused_request_logs_one_line_not_a_traceback
    and ::test_refusals_log_one_line_and_other_errors_keep_their_traceback.
    """
    for module in (gradio.queueing, gradio.routes):
        module.traceback = RefusalAwareTraceback()


def files_gradio_keeps(demo):
    """The cached files Gradio keeps for the page itself (components' initial values),
    which the cache pruner must never delete.

    Relies on: each component's `keep_in_cache` set of paths, the set Gradio's own
    delete_cache skips (gradio.route_utils.delete_files_created_by_app). Guarded by
    tests/test_guards.py::test_the_cache_stays_under_its_cap_after_500_uploads (a kept file survives).
    """
    return {path for block in list(demo.blocks.values()) for path in getattr(block, "keep_in_cache", ())}


def after_launch(demo, function):
    """Runs `function()` in a daemon thread once the server is listening, so that work the
    first page does not need leaves the start-up path without competing with it.

    Relies on: `demo.extra_startup_events` (a list of coroutine functions, not public API;
    gr.Examples' lazy caching uses it), awaited once when launch() calls the server's
    /startup-events route after it listens (or in the lifespan of a mounted app). Guarded
    by tests/test_app_api.py::test_the_first_views_are_drawn_after_launch_without_a_request
    (its log line appears with no request made).
    """

    async def start():
        threading.Thread(target=function, name="after-launch", daemon=True).start()

    demo.extra_startup_events.append(start)


# Why getUserMedia failed (DOMException names) -> the end of the camera message.
CAMERA_FAILURES = {
    "NotAllowedError": "the browser or you refused access to it.",
    "SecurityError": "the browser refused access to it (camera use needs https).",
    "NotFoundError": "this device has none, or it is switched off.",
    "OverconstrainedError": "this device has none that fits.",
    "NotReadableError": "another program is using it.",
    "AbortError": "it stopped before it started.",
}
NO_CAMERA_API = "this browser offers none to web pages."


def camera_refusals_js(selector, message):
    """JavaScript for an event's `js=`: from then on, a camera the browser refuses or lacks
    is explained in the element at `selector`, with `message`'s "{reason}" filled in.

    Relies on: Gradio 6.31's webcam (image/Webcam) calling getUserMedia without catching
    its rejection (it shows nothing), so the DOMException reaches the window's
    "unhandledrejection" event. Guarded by tests/test_accessibility.py::
    test_keyboard_only_example_classify_and_open_a_mistake_and_a_missing_camera.
    """
    return """() => {
  if (window.cifarCameraWatch) return;
  window.cifarCameraWatch = true;
  const reasons = REASONS;
  const show = (reason) => {
    const box = document.querySelector(SELECTOR);
    if (box) box.textContent = MESSAGE.replace("{reason}", reason);
  };
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) show(NO_API);
  window.addEventListener("unhandledrejection", (event) => {
    const name = event.reason && event.reason.name;
    if (name in reasons) { show(reasons[name]); event.preventDefault(); }
  });
}""".replace("REASONS", json.dumps(CAMERA_FAILURES)).replace("SELECTOR", json.dumps(selector)).replace(
        "MESSAGE", json.dumps(message)).replace("NO_API", json.dumps(NO_CAMERA_API))
