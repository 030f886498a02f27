"""Newest view wins: a tab's views of one page land in the order they were asked for.

Gradio's queue runs a page's events side by side (a queue group's limit counts every
session's events together), so a slow view (an attack, about a second) can finish after a
faster, newer one (a mode switch) and overwrite it with what the page no longer asks for.
Each wrapped event takes a ticket per browser session as it starts; one that finishes
after a newer ticket was taken changes nothing on the page.
"""

import inspect
import threading
from collections import OrderedDict

import gradio as gr

MAX_SESSIONS = 10_000  # tickets kept for the most recent sessions; an older one starts afresh


class NewestView:
    """The tickets of one tab's views, per browser session (Gradio's session hash)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._latest = OrderedDict()  # session hash -> the newest ticket taken

    def take(self, session):
        """A new ticket for `session`: every earlier one of the session is now stale."""
        with self._lock:
            ticket = self._latest.pop(session, 0) + 1
            self._latest[session] = ticket
            while len(self._latest) > MAX_SESSIONS:
                self._latest.popitem(last=False)
            return ticket

    def is_newest(self, session, ticket):
        with self._lock:
            return self._latest.get(session) == ticket

    def only(self, handler, when=None, keep=0):
        """`handler` as an event function that takes a ticket as it starts and, when a newer
        view of the same page started before it finished, changes nothing (gr.skip(), which
        Gradio spreads over every output) but its first `keep` outputs: what only it sets,
        such as the controls a mode switch shows. With `when`, called with the same inputs:
        False means there is nothing to draw, so it skips at once and takes no ticket (the
        views running still land). Gradio passes the request to the added last parameter,
        found by its gr.Request annotation like any event function's (so `handler` names
        each of its inputs: no *args)."""

        def event(*args):
            *inputs, request = args
            if when is not None and not when(*inputs):
                return gr.skip()
            ticket = self.take(request.session_hash)
            result = handler(*inputs)
            if self.is_newest(request.session_hash, ticket):
                return result
            return (*result[:keep], *[gr.skip()] * (len(result) - keep)) if keep else gr.skip()

        signature = inspect.signature(handler)
        if any(parameter.kind is parameter.VAR_POSITIONAL for parameter in signature.parameters.values()):
            raise ValueError(f"{handler.__name__} takes *args: name its inputs, so the request can follow them")
        request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                    annotation=gr.Request)
        event.__signature__ = signature.replace(parameters=[*signature.parameters.values(), request])
        event.__annotations__ = {**handler.__annotations__, "request": gr.Request}
        event.__name__, event.__doc__ = handler.__name__, handler.__doc__
        return event
