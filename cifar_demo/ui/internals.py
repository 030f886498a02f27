"""Where the app relies on Gradio beyond its documented API, in one place (Gradio 6.31).

Each item says what it relies on and which tests fail when an upgrade breaks it; after
upgrading Gradio run those tests, the browser ones included (`pytest -m browser`).
The Keras counterpart (its dataset cache layout) is cifar_demo/keras_internals.py, below
ui/ because the data layer uses it; TensorFlow's start-up log format, which
cifar_demo/quiet_logs.py filters, is described and guarded there.

Defining these component subclasses makes Gradio write internals.pyi (type stubs with
their event listeners) beside this file; .gitignore keeps such files out of the repository.
"""

import datetime
import threading

import gradio as gr


class UploadedImage(gr.Image):
    """gr.Image that hands the raw uploaded file to cifar_demo.images.

    gr.Image opens uploads with PIL before the event function runs, so a corrupt or
    non-image file fails inside Gradio with a generic error; here every file reaches
    our reader, which answers with a message a person can act on.

    Relies on: `preprocess(payload)` receiving a FileData with `.path` (the uploaded
    copy in Gradio's cache), and `is_template = True` keeping gr.Image's front end for
    a subclass. Guarded by tests/test_bad_input_api.py::test_unreadable_uploads_are_refused_with_a_message
    and ::test_odd_but_valid_uploads_are_classified, tests/test_app_api.py::
    test_bad_uploads_get_a_clear_message_and_the_app_keeps_serving, and in the browser
    tests/test_browser.py::test_click_an_example_and_see_a_label and
    ::test_upload_a_photo_see_a_label_and_a_bad_file_gets_a_message.
    """

    is_template = True

    def preprocess(self, payload):
        if payload is None or payload.path is None:
            return super().preprocess(payload)
        return payload.path


class DrawingCanvas(gr.Sketchpad):
    """gr.Sketchpad whose unreadable payloads (only possible through the API: a file that
    is not an image as the drawing) end in a message instead of a generic server error.

    Relies on: gr.Sketchpad being itself a template of gr.ImageEditor, so the front end
    to keep is named "imageeditor" (`get_block_name`), and on gr.ImageEditor.preprocess
    raising OSError/ValueError/SyntaxError (PIL's errors) for an unreadable layer.
    Guarded by tests/test_bad_input_api.py::test_drawings_that_are_blank_missing_or_not_images,
    tests/test_app_api.py::test_drawing_endpoint_hints_on_a_blank_canvas_and_classifies_a_drawing
    and, for the front end, tests/test_browser.py::test_draw_strokes_and_see_a_label.
    """

    is_template = True

    def get_block_name(self):
        return "imageeditor"

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (OSError, ValueError, SyntaxError):
            raise gr.Error("The drawing is not an image that can be read.", title="Cannot read this drawing") from None


class FormNumber(gr.Number):
    """gr.Number whose API callers get a message naming the field for a value that is not
    a number (gr.Number's own conversion fails with an unnamed server error).

    Relies on: gr.Number.preprocess converting the raw payload (TypeError, ValueError or
    OverflowError for text, lists, infinity) and `is_template = True` keeping gr.Number's
    front end. Guarded by tests/test_training_runs.py::
    test_form_numbers_refuse_what_is_not_a_finite_number_by_name,
    tests/test_bad_input_api.py::test_bad_training_values_are_refused_with_a_message
    [epochs-text] and, for the front end, tests/test_browser.py::
    test_start_a_tiny_run_see_the_curves_move_and_stop_it (it fills these fields).
    """

    is_template = True

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (TypeError, ValueError, OverflowError):  # OverflowError: infinity, which JSON allows
            raise gr.Error(f"{self.label} must be a finite number, got {payload!r}",
                           title="Cannot start this run") from None


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
