"""What the browser tests do on the real page, shared by the plain run (test_browser.py) and
the Space-like SSR run (test_ssr.py), so both drive the same flows the same way."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
EXAMPLES = REPO / "weights" / "examples"
CLASS_NAMES = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
# Milliseconds a page waits for anything: generous, the suite runs beside the other
# backends' re-runs on two cores.
PAGE_TIMEOUT = 60_000
LAPTOP = {"width": 1280, "height": 1000}
PHONE = {"width": 390, "height": 844}

needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}"),
]


def shipped_example(class_name):
    """The first example image shipped for `class_name`."""
    return sorted(EXAMPLES.glob(f"*_{class_name}.png"))[0]


def fill_until_kept(page, values, tries=5):
    """Fills form fields and checks they kept their values: the preset's own update (which
    makes the fields editable) may land after a fill on a slow machine and overwrite it."""
    for _ in range(tries):
        for label, value in values.items():
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")
        page.wait_for_timeout(500)
        if all(page.get_by_label(label, exact=True).input_value() == value for label, value in values.items()):
            return
    raise AssertionError(f"the form did not keep {values}")


def predicted_label(scope):
    """The big heading of the (first) gr.Label in `scope`, once it shows a class."""
    heading = scope.locator("[data-testid='label-output-value'] h2, .output-class").first
    heading.wait_for()
    return heading.inner_text().strip()


def wait_for_loaded_image(page, selector):
    """Waits until the first image matching `selector` has been fetched and decoded (its
    file came back from the server, not just an <img> tag)."""
    page.wait_for_function(
        "selector => { const img = document.querySelector(selector); return img?.complete && img.naturalWidth > 0; }",
        arg=selector,
    )


def upload_photo(page, path):
    """Uploads `path` in the Classify tab; returns the label the model gives it."""
    page.locator("input[type=file]").first.set_input_files(str(path))
    return predicted_label(page)


def wait_for_heatmap(page, class_name):
    """Waits for the Grad-CAM heatmap explaining `class_name`."""
    heatmap = page.locator("#heatmap")
    heatmap.locator("img").wait_for()
    heatmap.get_by_text(f"Why {class_name}").wait_for()


def draw_a_stroke(page):
    """Opens the Draw tab, draws a diagonal stroke; returns the label the model gives it."""
    page.get_by_role("tab", name="Draw").click()
    # Opening the tab picks the brush, so a person can draw at once.
    page.get_by_text("select the draw tool to start").wait_for(state="hidden")
    canvas = page.locator("#drawing canvas").first
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    # Eight pointer moves draw one continuous stroke; each costs the canvas about half a
    # second in headless Chromium on a busy 2-core machine, so no more than that.
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7, steps=8)
    page.mouse.up()
    page.locator(".pixelated img").last.wait_for()
    return predicted_label(page)


def open_confusion_cell(page):
    """Clicks the Mistakes tab's cell for true cat, predicted dog; returns the captions of
    the images the gallery then shows."""
    page.get_by_role("tab", name="Mistakes").click()
    page.locator("#mistakes-summary").get_by_text("test accuracy").wait_for()
    page.locator("#confusion-table [data-testid='cell-3-6']").click()
    page.locator("#mistakes-page").get_by_text("true class cat predicted dog").wait_for()
    return page.locator("#mistakes-gallery .caption-label").all_inner_texts()


def start_a_tiny_run(page):
    """Starts a Custom run long enough to be stopped (30 epochs of 500 images) and waits
    until its first epoch trains and its curves have been redrawn once; returns the
    status text."""
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("Custom").check()
    page.get_by_text("Settings (editable with Custom)").click()
    page.get_by_label("Epochs", exact=True).wait_for()
    fill_until_kept(page, {"Epochs": "30", "Training images": "500", "Batch size": "16"})
    page.locator("#start-training").click()
    status = page.locator("#run-status")
    status.get_by_text("Epoch 1/30").wait_for()
    curves = page.locator("#training-curves img")
    curves.wait_for()
    first = curves.get_attribute("src")
    page.wait_for_function(
        "src => { const img = document.querySelector('#training-curves img'); return img && img.src !== src; }",
        arg=first,
    )  # the curves were redrawn while the run went on
    return status.inner_text()


def stop_the_run(page):
    """Stops the running run and waits for its results; returns their text."""
    page.locator("#stop-training").click()
    results = page.locator("#run-results")
    results.get_by_text("stopped by you").wait_for()
    return results.inner_text()
