"""The trained weights and config offered for download: one folder per run under the
temp directory, and folders older than DOWNLOADS_KEEP_SECONDS pruned at each new run."""

import shutil
import tempfile
import time
import uuid
from pathlib import Path

from cifar_demo import training

DOWNLOADS_DIR = Path(tempfile.gettempdir()) / "cifar10-studio-downloads"
# As long as Gradio keeps its cached copy, which the page links to (app.CACHE_CLEANUP).
DOWNLOADS_KEEP_SECONDS = 1800


def save_downloads(result):
    """Writes a run's final weights and config for download; returns their paths."""
    DOWNLOADS_DIR.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in DOWNLOADS_DIR.iterdir():
        if now - old.stat().st_mtime > DOWNLOADS_KEEP_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
    out = DOWNLOADS_DIR / uuid.uuid4().hex
    weights = training.save_final_weights(result, out)
    return [str(weights), str(out / training.CONFIG_FILE)]
