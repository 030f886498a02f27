"""Gradio's file cache (uploads, and the images the app sends) in a folder the app owns,
kept under a size cap by a background thread.

Gradio deletes cached files by age only (`delete_cache`), so a client could fill the disk
between two passes. Here the folder's total size is checked after every upload (the
upload guard wakes the pruner) and at least every PRUNE_SECONDS; over MAX_BYTES, the oldest
files are deleted until it is under LOW_WATER of the cap, except those Gradio keeps for
the page itself (components' initial values). The folder is the app's alone, so pruning
it never touches another program's files: CIFAR10_STUDIO_CACHE_DIR, or a new folder
under the temp directory removed at exit.
"""

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

LOG = logging.getLogger("cifar_demo.upload_cache")
MAX_BYTES = int(float(os.environ.get("CIFAR10_STUDIO_CACHE_MB", "1024")) * 2**20)
LOW_WATER = 0.9     # prune to 90% of the cap, so the next upload does not prune again
PRUNE_SECONDS = 30  # a pass at least this often, whatever wakes it
_wake = threading.Event()


def own_cache_folder():
    """Points GRADIO_TEMP_DIR at the app's own folder (once per process) and returns it.
    Must run before any Gradio component is built: each reads the folder when created."""
    folder = os.environ.get("CIFAR10_STUDIO_CACHE_DIR")
    if folder is None:
        folder = tempfile.mkdtemp(prefix="cifar10-studio-cache-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["CIFAR10_STUDIO_CACHE_DIR"] = folder  # the same folder if called again
    Path(folder).mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = folder
    return Path(folder)


def wake():
    """Asks the pruner for a pass now (called after each upload)."""
    _wake.set()


def start_pruner(folder, kept, max_bytes=MAX_BYTES):
    """Starts the daemon thread that keeps `folder` under `max_bytes`; `kept()` returns the
    paths never to delete."""
    if max_bytes < 1:
        raise ValueError(f"the cache cap must be at least 1 byte, got {max_bytes}")

    def run():
        while True:
            _wake.wait(PRUNE_SECONDS)
            _wake.clear()
            try:
                prune(folder, max_bytes, kept())
            except OSError as error:  # a file vanished or the disk misbehaves: next pass
                LOG.warning("cache pruning failed: %s", error)

    threading.Thread(target=run, name="cache-pruner", daemon=True).start()


def cache_files(folder):
    """(modification time, size, path) of every file under `folder`."""
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            found.append((stat.st_mtime, stat.st_size, path))
    return found


def prune(folder, max_bytes, kept=()):
    """Deletes the oldest files under `folder` (not in `kept`) while its total size is
    over `max_bytes`, down to LOW_WATER of it; returns the bytes freed."""
    folder = str(folder)
    files = cache_files(folder)
    total = sum(size for _, size, _ in files)
    if total <= max_bytes:
        return 0
    kept = {os.path.realpath(path) for path in kept}
    freed = 0
    for _, size, path in sorted(files):
        if total - freed <= max_bytes * LOW_WATER:
            break
        if os.path.realpath(path) in kept:
            continue
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        freed += size
        parent = os.path.dirname(path)
        if parent != folder:
            with contextlib.suppress(OSError):  # not empty: left alone
                os.rmdir(parent)  # Gradio makes one folder per upload
    return freed
