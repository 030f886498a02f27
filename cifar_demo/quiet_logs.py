"""TensorFlow's start-up INFO lines kept off the console of the CLIs and the app.

Importing TensorFlow (2.21) writes, from C++ and before absl's logging is initialised:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:... port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:... cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...

TF_CPP_MIN_LOG_LEVEL=1 hides the last one but not the oneDNN line (absl writes everything
to stderr until InitializeLog is called, whatever the level). So `install()` sets that
level only when the user has not (os.environ.setdefault) and, when the level hides INFO,
drops exactly those lines from stderr while TensorFlow is first imported; warnings, errors
and anything else printed meanwhile are written through unchanged. TF_CPP_MIN_LOG_LEVEL=0
shows everything again.

Relies on: the absl/TensorFlow log line format matched by NOISE, and TensorFlow writing
these lines while `import tensorflow` runs (nothing of the kind prints later in a run).
After an upgrade: tests/test_cli.py::test_command_lines_start_without_tensorflow_log_noise
fails if new noise appears; `TF_CPP_MIN_LOG_LEVEL=0 python -c "import tensorflow"` shows
what TensorFlow prints.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "1"  # INFO off; warnings and errors kept
NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|I\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "             # absl INFO line
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: I \S+:\d+\] "        # TensorFlow's own INFO line
)


def install():
    """Sets TF_CPP_MIN_LOG_LEVEL unless set, and filters TensorFlow's first import (once,
    and only if it has not happened yet and the level hides INFO)."""
    level = os.environ.setdefault(LEVEL_VARIABLE, DEFAULT_LEVEL)
    if not level.strip().isdigit() or int(level) < 1 or "tensorflow" in sys.modules:
        return
    if not any(isinstance(finder, QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietImport())


def is_noise(line):
    return NOISE.match(line) is not None


@contextlib.contextmanager
def filtered_stderr():
    """Captures file descriptor 2 (C++ writes there, not to sys.stderr) and writes back
    every captured line that is not NOISE."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_noise(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as usual (then leaves sys.meta_path) and runs its import inside
    filtered_stderr()."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = FilteringLoader(spec.loader)
        return spec


class FilteringLoader(importlib.abc.Loader):
    """Wraps TensorFlow's loader for its one import; the module never sees the wrapper."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader
        with filtered_stderr():
            self.loader.exec_module(module)
