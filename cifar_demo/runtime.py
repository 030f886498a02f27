"""Checks made before Keras is imported: which backend KERAS_BACKEND asks for, and
whether its package is installed.

Keras itself answers an unknown or missing backend with a traceback deep inside its
import. `cifar_demo/__init__.py` runs `check_keras_backend()` first, so the app, every
CLI and every import of the package answer with one line that names the choices and the
pip command instead. It imports nothing heavy: `import cifar_demo` stays light.
"""

import importlib.util
import os

DEFAULT_BACKEND = "tensorflow"
# backend -> (the package it needs, how to install it with this project's pins)
BACKENDS = {
    "tensorflow": ("tensorflow", "pip install -r requirements.txt"),
    "torch": ("torch", "pip install -r requirements-torch.txt"),
    "jax": ("jax", "pip install -r requirements-jax.txt"),
}


class BackendUnavailable(SystemExit):
    """The chosen Keras backend cannot run here. A SystemExit, so that an entry point
    stops with its one-line message and no traceback, and callers can still catch it."""


def requested_backend(environ=os.environ):
    """The backend KERAS_BACKEND names, tensorflow when unset."""
    return environ.get("KERAS_BACKEND") or DEFAULT_BACKEND


def check_keras_backend(environ=os.environ, find_spec=importlib.util.find_spec):
    """Raises BackendUnavailable for an unknown KERAS_BACKEND or one whose package is
    not installed; returns the backend's name otherwise."""
    name = requested_backend(environ)
    choices = ", ".join(BACKENDS)
    if name not in BACKENDS:
        raise BackendUnavailable(
            f"error: KERAS_BACKEND={name!r} is not a backend this app runs on; choose one of {choices} "
            f"(for example: KERAS_BACKEND=torch, after {BACKENDS['torch'][1]})"
        )
    package, install = BACKENDS[name]
    if find_spec(package) is None:
        raise BackendUnavailable(
            f"error: KERAS_BACKEND={name} needs the {package} package, which is not installed: {install} "
            f"(or choose another of {choices})"
        )
    return name
