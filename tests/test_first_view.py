"""Deferred values, Lazy stand-ins and FirstView: computed once, whoever asks first; the others wait."""

import threading
import time

import gradio as gr
import pytest

from cifar_demo.ui.first_view import Deferred, FirstView, Lazy


def test_a_deferred_value_is_computed_once_and_concurrent_callers_wait_for_it():
    calls = []

    def compute():
        calls.append(threading.get_ident())
        time.sleep(0.2)  # long enough for every other thread to ask meanwhile
        return object()

    deferred = Deferred(compute)
    results = []
    threads = [threading.Thread(target=lambda: results.append(deferred.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 8 and all(result is results[0] for result in results)


def test_a_failed_computation_is_tried_again_by_the_next_caller():
    attempts = []

    def compute():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("the disk hiccuped")
        return 42

    deferred = Deferred(compute)
    with pytest.raises(OSError):
        deferred.get()
    assert deferred.get() == 42
    assert deferred.get() == 42 and len(attempts) == 2


def figure():
    from matplotlib.figure import Figure

    result = Figure(figsize=(1, 1))
    result.subplots().plot([0, 1], [1, 0])
    return result


def test_a_first_view_draws_once_and_sends_the_figures_to_a_page_once():
    drawn = []

    def draw():
        drawn.append(1)
        return figure(), None

    with gr.Blocks():
        with gr.Tabs(), gr.Tab("Figures") as tab:
            plots = [gr.Plot(format="png"), gr.Plot(format="png")]
            view = FirstView(tab, plots, draw)
    view.prepare()
    shown, first, second = view._show(False)
    assert shown is True
    assert first.type == "matplotlib" and first.plot.startswith("data:image/png;base64,")
    assert second is None
    assert view._show(False)[1] is first  # another page: the same drawing, not drawn again
    assert view._show(True) == gr.skip()  # this page has them already
    assert len(drawn) == 1


def test_values_other_than_figures_are_sent_as_computed():
    with gr.Blocks(), gr.Tabs(), gr.Tab("Text") as tab:
        view = FirstView(tab, [gr.Markdown(), gr.Plot()], lambda: ["**text**", figure()])
    _, text, drawn = view._show(False)
    assert text == "**text**" and drawn.type == "matplotlib"


def test_a_lazy_stand_in_waits_for_its_object_on_first_use():
    loaded = []
    deferred = Deferred(lambda: loaded.append(1) or "the model")
    stand_in = Lazy(deferred.get)
    assert not loaded  # nothing is loaded by making the stand-in
    assert stand_in.upper() == "THE MODEL" and stand_in.title() == "The Model"
    assert len(loaded) == 1
