"""Work the first page view does not need, done after the server answers: figures sent when
a page first opens their tab, and values computed once, by whoever needs them first.

Every component's value at build time is part of the page config (/config), which each
page load downloads, and is computed before the server can answer at all. Figures are
the heavy part: a 100-image grid is a 550 KB PNG in base64. So the tabs behind the first
one build their plots empty and a FirstView fills them the first time a page opens the
tab. Each figure is drawn once per server, in the background after launch (app.warm_up) or
by the first page that opens its tab sooner, which then waits for it: a Deferred value is
never missing, only sometimes late.
"""

import threading

import gradio as gr


class Deferred:
    """A value computed once, by the first caller of get(); later and concurrent callers
    wait for that computation and get the same value. A failed computation raises in the
    caller that ran it and is tried again by the next."""

    def __init__(self, compute):
        self._compute = compute
        self._lock = threading.Lock()
        self._done = False
        self._value = None

    def get(self):
        with self._lock:
            if not self._done:
                self._value = self._compute()
                self._done = True
        return self._value


class FirstView:
    """Fills `plots` (gr.Plot components of `tab`) with the figures `draw()` returns, the
    first time each page opens the tab. The figures are drawn to PNG once per server
    (prepare(), or the first page that opens the tab), not for every page.

    `event_options` go to the tab's select event: a concurrency_id shared with the events
    that replace the same plots keeps those from running before it (the queue is first in,
    first out within a concurrency group), so this fill never overwrites their answer."""

    def __init__(self, tab, plots, draw, **event_options):
        plots = list(plots)
        if not all(isinstance(plot, gr.Plot) for plot in plots):
            raise ValueError("FirstView fills gr.Plot components only (their drawn value can be sent again as is)")
        self._values = Deferred(lambda: [plot.postprocess(figure) for plot, figure in zip(plots, draw(), strict=True)])
        shown = gr.State(False)  # per page: whether this page has its figures already
        tab.select(self._show, inputs=shown, outputs=[shown, *plots], api_visibility="private", **event_options)

    def prepare(self):
        """Draws the figures now (the app's background warm-up), unless a page did already."""
        self._values.get()

    def _show(self, shown):
        if shown:
            return gr.skip()
        return True, *self._values.get()
