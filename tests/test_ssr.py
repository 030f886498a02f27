"""The app run the way a Hugging Face Space runs it, driven in headless Chromium.

A Space runs `python app.py` with SYSTEM=spaces, its SPACE_ID, GRADIO_SERVER_NAME=0.0.0.0,
port 7860 and GRADIO_SSR_MODE=True: Gradio then starts a Node server on the public port
that renders the page and proxies everything else to Python on an internal port. Here the
same, on a free port, with one app start for the whole module.
"""

import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests.browser_pages import (
    ARTIFACTS,
    CLASS_NAMES,
    LAPTOP,
    PAGE_TIMEOUT,
    PHONE,
    draw_a_stroke,
    needs_chromium,
    open_confusion_cell,
    shipped_example,
    start_a_tiny_run,
    stop_the_run,
    upload_photo,
    wait_for_heatmap,
    wait_for_loaded_image,
)
from tests.conftest import serve_app

NODE = shutil.which("node")
SPACE = {"SYSTEM": "spaces", "SPACE_ID": "cifar10-studio/ssr-test", "GRADIO_SERVER_NAME": "0.0.0.0",
         "GRADIO_SSR_MODE": "True"}
TABS = ["Classify", "Data", "Mistakes", "Inside the network", "Robustness", "Train", "About the model"]

pytestmark = [
    *needs_chromium,
    pytest.mark.skipif(NODE is None, reason="needs Node (`node` on PATH), which serves Gradio's SSR"),
]


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """The app as a Space starts it; yields (URL of the Node server, log path)."""
    yield from serve_app(tmp_path_factory.mktemp("space"), **SPACE)


@pytest.fixture(scope="module")
def app_url(app_server):
    return app_server[0]


def wait_for_log(log_path, pattern, timeout=30):
    """The match of `pattern` in the app's log, once it is there (Gradio prints the line
    a moment after Node starts listening)."""
    deadline = time.monotonic() + timeout
    while not (match := re.search(pattern, log_path.read_text())):
        assert time.monotonic() < deadline, f"no {pattern!r} in the app's log:\n{log_path.read_text()[-2000:]}"
        time.sleep(0.2)
    return match


def fetch(url):
    """(headers, body) of a GET."""
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.headers, response.read().decode()


def test_node_renders_the_page_in_front_of_python(app_server):
    url, log_path = app_server
    major = int(re.match(r"v(\d+)", subprocess.check_output([NODE, "--version"], text=True)).group(1))
    assert major >= 20, f"Gradio's SSR server needs Node 20 or newer, found {major}"
    started = wait_for_log(log_path, r"with SSR ⚡ \(Node proxy -> Python :(\d+)\)")
    headers, page = fetch(url)
    assert headers["x-sveltekit-page"] == "true"  # SvelteKit, on Node, answered
    # Rendered on the server: the app's container, title and CSS are in the HTML itself...
    assert 'class="gradio-container' in page and "<title>CIFAR-10 Studio</title>" in page
    assert ".ood-notice.ood-flagged" in page
    # ...whereas Python on its internal port serves the plain client-side page: an empty
    # shell with the whole config embedded for the browser to build the app from.
    python_url = re.sub(r":\d+/$", f":{started.group(1)}/", url)
    python_headers, python_page = fetch(python_url)
    assert "x-sveltekit-page" not in python_headers and 'class="gradio-container' not in python_page
    assert "window.gradio_config" in python_page and "window.gradio_config" not in page


def test_upload_a_photo_see_its_label_and_heatmap(page):
    assert upload_photo(page, shipped_example("ship")) == "ship"
    wait_for_heatmap(page, "ship")
    wait_for_loaded_image(page, "#heatmap img")  # the heatmap's file, served through Node


def test_draw_and_see_a_label(page):
    assert draw_a_stroke(page) in CLASS_NAMES


def test_click_a_confusion_cell_and_see_its_images(page):
    captions = open_confusion_cell(page)  # true cat, predicted dog
    assert captions and all(text.startswith("cat → dog") for text in captions)
    wait_for_loaded_image(page, "#mistakes-gallery img")


def test_start_a_tiny_run_watch_the_curves_move_and_stop_it(page):
    assert "Epoch 1/30" in start_a_tiny_run(page)
    assert "Test accuracy" in stop_the_run(page)


@pytest.mark.parametrize("size", ["laptop", "phone"])
def test_every_tab_renders_without_errors(browser, app_url, size):
    """Each tab on a laptop-sized and a phone-sized screen: no script error or hydration
    warning while the page hydrates and its tabs open, every request to this machine sent
    to Node's port, nothing wider than the screen; screenshots under test-artifacts/."""
    viewport = LAPTOP if size == "laptop" else PHONE
    page = browser.new_page(viewport=viewport)
    app = urllib.parse.urlsplit(app_url)
    errors, bypassing_node = [], []

    def on_request(request):
        if by_another_port(request.url, app):
            bypassing_node.append(request.url)

    def on_console(message):
        if message.type == "error" or "hydration" in message.text.lower():  # Svelte warns of a mismatch
            errors.append((message.text, message.location.get("url")))

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.set_default_timeout(PAGE_TIMEOUT)
        page.goto(app_url)
        page.get_by_role("tab", name="Classify", exact=True).wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        for tab in TABS:
            open_tab(page, tab)
            page.wait_for_timeout(1500)  # let its images and plots arrive
            page.screenshot(path=str(ARTIFACTS / f"ssr-{size}-{tab.split()[0].lower()}.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"the {tab} tab is {width} px wide on a {viewport['width']} px screen"
        assert not [error for error in errors if not offline_only(error, app_url)], errors
        assert not bypassing_node, bypassing_node
    finally:
        page.close()


def by_another_port(url, app):
    """Whether `url` is on the app's machine but not on its public port (Node's): the
    page must reach Python only through Node, as it can on a Space."""
    parts = urllib.parse.urlsplit(url)
    local = parts.hostname in {app.hostname, "localhost", "0.0.0.0", "127.0.0.1"}
    return parts.scheme in {"http", "https", "ws", "wss"} and local and parts.port != app.port


def offline_only(error, app_url):
    """Whether a console error comes only from this machine having no internet: on a Space
    the page also fetches fonts from Google and its own Space's details from
    huggingface.co, and says "Space not found" when that fails."""
    if isinstance(error, str):  # an uncaught exception in the page's scripts
        return False
    text, url = error
    if text.startswith("Failed to load resource: net::ERR_NAME_NOT_RESOLVED"):
        return urllib.parse.urlsplit(url).netloc != urllib.parse.urlsplit(app_url).netloc
    return text == "Space not found"


def open_tab(page, name):
    """Opens a top-level tab; on a narrow screen Gradio moves the tabs that do not fit into
    a menu behind a "More tabs" button."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if not tab.is_visible():
        page.locator("button[aria-label='More tabs']:visible").first.click()
        tab = page.locator(".overflow-dropdown:visible").get_by_role("button", name=name, exact=True)
    tab.click()
