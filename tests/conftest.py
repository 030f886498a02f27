"""Shared fixtures: generated data for fast tests, and the real app on a free port."""

import os
import re
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cifar_demo.artifacts import SHIPPED_SAMPLE
from cifar_demo.data import Cifar10
from tests import backend_reruns
from tests.browser_pages import ARTIFACTS, CHROMIUM, LAPTOP, PAGE_TIMEOUT
from tests.local_server import AppFailedToStart, start_app, stop_app

REPO = Path(__file__).resolve().parent.parent
SHARED_CIFAR10 = REPO.parent / "shared" / "data" / "cifar10" / "cifar10.npz"


def cifar10_path():
    """$CIFAR10_PATH, else the shared copy beside the checkout, else None."""
    path = os.environ.get("CIFAR10_PATH")
    if path and Path(path).exists():
        return Path(path)
    return SHARED_CIFAR10 if SHARED_CIFAR10.exists() else None


requires_cifar10 = pytest.mark.skipif(
    cifar10_path() is None, reason="needs the real CIFAR-10: set CIFAR10_PATH to cifar10.npz"
)


def toy_dataset(train=256, test=64, seed=0):
    """A learnable stand-in for CIFAR-10: each class is a bright square at its own
    position over noise, so a tiny model can learn it in a few steps."""
    rng = np.random.default_rng(seed)

    def make(count):
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        images = rng.integers(0, 60, size=(count, 32, 32, 3)).astype(np.uint8)
        for image, label in zip(images, labels, strict=True):
            row, col = divmod(int(label), 5)
            image[4 + row * 14 : 14 + row * 14, 1 + col * 6 : 7 + col * 6] = 255
        return images, labels

    x_train, y_train = make(train)
    x_test, y_test = make(test)
    return Cifar10(x_train, y_train, x_test, y_test)


@pytest.fixture(scope="session")
def shipped_sample():
    """The Data tab's 100 shipped training images: real photos, every class."""
    with np.load(SHIPPED_SAMPLE) as sample:
        return sample["images"]


@pytest.fixture(scope="session")
def toy_data():
    return toy_dataset()


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    """A small toy_dataset as an .npz file, for the command lines' --data."""
    data = toy_dataset(train=96, test=40)
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    np.savez(path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    return path


def tiny_run(**changes):
    """Keyword arguments of /train for a Custom run small enough for the toy data, with
    `changes` applied (for example a bad value, or more epochs for a run that lasts)."""
    return {
        "preset_value": "Custom", "start_value": "From scratch", "epochs_value": 3, "train_size_value": 200,
        "batch_size_value": 25, "learning_rate_value": 0.05, "width_value": 0.125, "augment_value": True,
        "smoothing_value": 0.1, "seed_value": 0, **changes,
    }


def shown_value(output):
    """An output's value, whether it came as a plain value or as a gr.update dict."""
    return output.get("value") if isinstance(output, dict) and output.get("__type__") == "update" else output


def reported_steps(job):
    """The training steps a /train job's progress line has reported so far, in order."""
    steps = []
    for outputs in job.outputs():
        match = re.search(r"step (\d+)/\d+", str(outputs))
        if match and (not steps or int(match.group(1)) != steps[-1]):
            steps.append(int(match.group(1)))
    return steps


def wait_for_progress(job, reports=1, timeout=120):
    """Waits until a /train job reports `reports` training steps beyond the last one it had
    reported when called; returns the last step. Fails if the job ends or time runs out first.

    Two new reports prove a run kept training: the tab refreshes its progress at most
    once a second, and a run told to stop reports at most one more step."""
    before = reported_steps(job)
    deadline = time.monotonic() + timeout
    while True:
        new = [step for step in reported_steps(job)[len(before) :] if not before or step > before[-1]]
        if len(new) >= reports:
            return new[-1]
        assert not job.done(), f"the run ended after reporting steps {reported_steps(job)[-5:]}"
        assert time.monotonic() < deadline, f"no training progress within {timeout} s"
        time.sleep(0.2)


def serve_app(folder, **environment):
    """Starts `python app.py` (the real app, shipped weights) with `environment` added and
    yields (URL, log path) until the caller is done, then stops it.

    Its training data is a generated toy set (CIFAR10_PATH points at it), so runs
    started by the tests take seconds and never need the real dataset; closed pages are
    freed after 2 s.
    """
    toy = toy_dataset(train=1500, test=300, seed=1)
    np.savez(folder / "toy_cifar10.npz", x_train=toy.x_train, y_train=toy.y_train, x_test=toy.x_test, y_test=toy.y_test)
    log_path = folder / "app.log"
    try:
        process, url = start_app(log_path, CIFAR10_PATH=str(folder / "toy_cifar10.npz"),
                                 CIFAR10_STUDIO_SESSION_GRACE="2",
                                 CIFAR10_STUDIO_RUNS_PER_HOUR="50",  # the tests' runs all come from one address
                                 **environment)
    except AppFailedToStart as error:
        pytest.fail(str(error))
    try:
        yield url, log_path
    finally:
        stop_app(process)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app on a free loopback port; yields (URL, log path)."""
    yield from serve_app(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="session")
def app_url(app_server):
    return app_server[0]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, driven by Playwright) for one test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url, request):
    """A fresh laptop-sized page on `app_url` (a module may serve its own app under that
    name); saves a screenshot under test-artifacts/ if the test fails."""
    page = browser.new_page(viewport=LAPTOP)
    page.set_default_timeout(PAGE_TIMEOUT)
    page.goto(app_url)
    page.get_by_role("tab", name="Classify").first.wait_for()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not page.is_closed():
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    if not page.is_closed():
        page.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """After -k/-m have deselected: the re-runs under the other backends start now, in the
    background, and the tests that collect them run last (tests/backend_reruns.py)."""
    backend_reruns.schedule(config, items)


def pytest_unconfigure(config):
    backend_reruns.stop(config)


def damage_largest_member(path):
    """Damages an .npz the way a bad disk or a cut copy can, past what a file-type check
    sees: the largest member's data, so that reading it raises zlib.error (deflated: its
    compressed bytes overwritten) or zipfile.BadZipFile (stored: a bad CRC)."""
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
    raw = bytearray(Path(path).read_bytes())
    name_length, extra_length = struct.unpack("<HH", raw[member.header_offset + 26:member.header_offset + 30])
    start = member.header_offset + 30 + name_length + extra_length
    if member.compress_type == zipfile.ZIP_DEFLATED:
        raw[start:start + member.compress_size] = b"\xff" * member.compress_size
    else:
        raw[start + member.compress_size - 1] ^= 0xFF
    Path(path).write_bytes(bytes(raw))
