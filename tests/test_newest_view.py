"""NewestView: a page's views land in the order they were asked for, per browser session,
whatever order Gradio's queue finishes them in; and Gradio hands the wrapped event its request."""

import threading
import warnings
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio.helpers import special_args

from cifar_demo.ui.newest_view import NewestView

pytestmark = pytest.mark.same_on_every_backend


def request(session):
    return SimpleNamespace(session_hash=session)


def run_in_thread(function, *args):
    """Starts function(*args) in a thread; returns (thread, a list that receives its result)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function(*args)))
    thread.start()
    return thread, result


def test_tickets_are_per_session_and_only_the_newest_is_current():
    newest = NewestView()
    first = newest.take("a")
    assert newest.is_newest("a", first)
    other = newest.take("b")
    assert newest.is_newest("a", first) and newest.is_newest("b", other)
    second = newest.take("a")
    assert not newest.is_newest("a", first) and newest.is_newest("a", second)
    assert not newest.is_newest("never seen", 1)


def held(answer):
    """(a view that, once started, waits for `release` before it answers answer(value);
    `started`; `release`): the slow side of a race."""
    started, release = threading.Event(), threading.Event()

    def slow(value):
        started.set()
        release.wait(10)
        return answer(value)

    return slow, started, release


def test_a_slow_view_that_ends_after_a_newer_one_started_changes_nothing():
    newest = NewestView()
    slow, started, release = held(lambda value: [f"slow {value}", "x"])
    slow_view, fast_view = newest.only(slow), newest.only(lambda value: [f"fast {value}", "y"])
    thread, slow_result = run_in_thread(slow_view, 1, request("page"))
    assert started.wait(10)
    other_thread, other_result = run_in_thread(slow_view, 3, request("another page"))
    assert fast_view(2, request("page")) == ["fast 2", "y"]  # the newer view lands at once
    release.set()
    thread.join(10)
    other_thread.join(10)
    assert slow_result == [gr.skip()]  # ...and the older one, ending later, changes nothing
    assert other_result == [["slow 3", "x"]]  # another page's view is its own


def test_a_view_with_nothing_to_draw_takes_no_ticket_so_the_running_one_still_lands():
    newest = NewestView()
    slow, started, release = held(lambda value: value)
    calls = []

    def guarded(value):
        calls.append(value)
        return value

    thread, result = run_in_thread(newest.only(slow), "drawn", request("page"))
    assert started.wait(10)
    assert newest.only(guarded, when=lambda value: False)("not drawn", request("page")) == gr.skip()
    assert calls == []  # the guard said there is nothing to draw: the handler never ran
    release.set()
    thread.join(10)
    assert result == ["drawn"]


def test_a_stale_view_still_sets_the_outputs_it_keeps():
    newest = NewestView()
    switch, started, release = held(lambda mode: (f"controls for {mode}", f"views for {mode}", "more views"))
    thread, result = run_in_thread(newest.only(switch, keep=1), "Attack", request("page"))
    assert started.wait(10)
    newest.take("page")  # a newer view of the page starts (it draws views, not the controls)
    release.set()
    thread.join(10)
    assert result == [("controls for Attack", gr.skip(), gr.skip())]


def test_gradio_passes_the_request_after_the_named_inputs_and_event_data_by_annotation():
    def place(mode, where, event: gr.SelectData):
        return mode, where, event

    event = NewestView().only(place)
    with warnings.catch_warnings(), gr.Blocks():
        # Gradio only warns when a function's parameters do not match its inputs: make that fail.
        warnings.filterwarnings("error", message="Expected .* arguments", category=UserWarning)
        image, text = gr.Image(), gr.Textbox()
        image.select(event, inputs=[text, text], outputs=[text, text, text])
    marker = SimpleNamespace(session_hash="page")
    inputs, _, event_data_index, _ = special_args(event, inputs=["Corruptions", "centre"], request=marker,
                                                  event_data=gr.EventData(None, {"index": [3, 4], "value": None}))
    assert event_data_index == 2 and inputs[0] == "Corruptions" and inputs[-1] is marker
    mode, where, data = event(*inputs)
    assert (mode, where, data.index) == ("Corruptions", "centre", [3, 4])


def test_a_handler_taking_star_args_is_refused():
    def handler(*inputs):
        return inputs

    with pytest.raises(ValueError, match="name its inputs"):
        NewestView().only(handler)
