"""Work the first page view does not need, done after the server answers: the shipped model
loaded, views sent when a page first opens their tab, each computed once, by whoever
needs it first.

Every component's value at build time is part of the page config (/config), which each
page load downloads, and is computed before the server can answer at all. Figures are
the heavy part: a 100-image grid is a 550 KB PNG in base64. So the tabs behind the first
one build their plots empty and a FirstView fills them the first time a page opens the
tab. Each view is computed once per server, in the background after launch (app.warm_up)
or by the first page that opens its tab sooner, which then waits for it. The shipped
model loads the same way, behind a Lazy stand-in: a deferred value is never missing,
only sometimes late.
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
        if self._done:
            return self._value
        with self._lock:
            if not self._done:
                self._value = self._compute()
                self._done = True
        return self._value


class Lazy:
    """Stands for the object `get()` returns (a Deferred's get: the shipped Predictor while
    it loads), so code written for that object runs unchanged: each attribute is looked up
    on it, waiting for it the first time."""

    def __init__(self, get):
        self._get = get

    def __getattr__(self, name):
        return getattr(self._get(), name)


class FirstView:
    """Fills `outputs` (components of `tab`) with the values `compute()` returns, the first
    time each page opens the tab. They are computed once per server (prepare(), or the
    first page that opens the tab), and figures (gr.Plot) drawn to PNG once, not for every page.

    `event_options` go to the tab's select event: a concurrency_id shared with the events
    that replace the same outputs keeps those from running before it (the queue is first in,
    first out within a concurrency group), so this fill never overwrites their answer."""

    def __init__(self, tab, outputs, compute, **event_options):
        outputs = list(outputs)
        self._values = Deferred(lambda: [drawn(output, value)
                                         for output, value in zip(outputs, compute(), strict=True)])
        shown = gr.State(False)  # per page: whether this page has its first view already
        tab.select(self._show, inputs=shown, outputs=[shown, *outputs], api_visibility="private", **event_options)

    def prepare(self):
        """Computes the values now (the app's background warm-up), unless a page did already."""
        self._values.get()

    def _show(self, shown):
        if shown:
            return gr.skip()
        return True, *self._values.get()


def drawn(output, value):
    """A figure for a gr.Plot as Gradio sends it (PlotData, a PNG: sent again as is, not
    drawn again); any other value as it is."""
    return output.postprocess(value) if isinstance(output, gr.Plot) else value
