"""Camera, phone and accessibility in the real page (headless Chromium through Playwright):
a fake camera that films the shipped truck, every tab at phone and tablet sizes with
axe-core run on it, and the main flow and a training run with the keyboard alone."""

import os
import re
from pathlib import Path

import pytest

from tests.browser_pages import (
    ARTIFACTS,
    CHROMIUM,
    PAGE_TIMEOUT,
    PHONE,
    REPO,
    fill_until_kept,
    needs_chromium,
    predicted_label,
    shipped_example,
)

pytestmark = needs_chromium

TABLET = {"width": 768, "height": 1024}
# axe-core from the npm registry: .ci/run installs it here (`npm install --prefix .cache/axe axe-core@...`).
AXE = Path(os.environ.get("AXE_CORE_PATH", REPO / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"))
LIVE_UPDATES = 5            # live answers expected within LIVE_WINDOW seconds (about 12 at 2.5 frames/s)
LIVE_WINDOW = 5.0
# Controls a person must reach: none may lie beyond the screen's right edge (outside a
# container that scrolls them into view).
OFF_SCREEN_JS = """() => {
  const width = window.innerWidth, out = [];
  const clipped = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
      const overflow = getComputedStyle(p).overflowX; if (overflow !== 'visible') return true; } return false; };
  for (const el of document.querySelectorAll('button, input, select, textarea, canvas, [role=tab], a[href]')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && el.offsetParent !== null && box.right > width + 1 && !clipped(el))
      out.push(`${el.tagName} ${el.getAttribute('aria-label') || el.textContent.trim().slice(0, 30)} ${box.right}`);
  }
  return out;
}"""
# Rendered: no event of the page is still running and every image shown has arrived (lazy
# gallery thumbnails out of sight load only when scrolled to).
SETTLED_JS = """() => !document.querySelector('.generating, .pending, .eta-bar')
  && [...document.images].filter(img => img.offsetParent !== null && img.loading !== 'lazy')
       .every(img => img.complete)"""
AXE_JS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({id: v.id, where: v.nodes.slice(0, 2).map(n => n.target.join(' ')).join(' | ')}));
}"""


def known_accessibility_gaps():
    """The axe rule ids README.md lists under "Known accessibility gaps" (Gradio's own markup)."""
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^### Known accessibility gaps\n(.*?)(?=^#)", readme, re.S | re.M)
    assert section, "README.md has no '### Known accessibility gaps' section"
    return set(re.findall(r"^- `([a-z0-9-]+)`", section.group(1), re.M))


def settle(page):
    page.wait_for_function(SETTLED_JS)
    page.wait_for_timeout(300)  # one more frame for what the last answer rendered


def main_tabs(page):
    """The names of the app's top-level tabs, as the page shows them (other tabs included)."""
    return page.locator("[role=tablist]").first.get_by_role("tab").all_inner_texts()


def open_tab(page, name):
    page.locator("[role=tablist]").first.get_by_role("tab", name=name, exact=True).click()
    settle(page)


def fits(page, where):
    """Asserts no horizontal page scroll and every control within the screen's width."""
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{where}: the page scrolls sideways ({width} > {inner} px)"
    assert page.evaluate(OFF_SCREEN_JS) == [], f"{where}: controls beyond the screen's edge"


def touch_stroke(page, box):
    """A one-finger diagonal stroke over `box` (touch events, as a phone sends them)."""
    session = page.context.new_cdp_session(page)
    points = [(box["x"] + box["width"] * f, box["y"] + box["height"] * f) for f in (0.3, 0.4, 0.5, 0.6, 0.7)]
    for kind, (x, y) in zip(["touchStart", *["touchMove"] * 4], points, strict=True):
        session.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    session.detach()


def run_axe(page, where, found):
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    for violation in page.evaluate(AXE_JS):
        found.setdefault(violation["id"], f"{where}: {violation['where']}")


@pytest.mark.skipif(not AXE.exists(), reason=f"needs axe-core at {AXE} (.ci/run installs it from npm)")
def test_every_tab_fits_phone_and_tablet_and_axe_finds_only_the_known_gaps(browser, app_url):
    """One page per size walks every tab: no sideways scroll, every control on screen, a
    screenshot under test-artifacts/; at phone size the canvas takes a finger stroke and
    axe-core runs on every tab (and the Draw and Camera sources)."""
    ARTIFACTS.mkdir(exist_ok=True)
    found = {}
    for size_name, size in (("phone", PHONE), ("tablet", TABLET)):
        context = browser.new_context(viewport=size, has_touch=True)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT)
        try:
            page.goto(app_url)
            page.get_by_role("tab", name="Classify").first.wait_for()
            tabs = main_tabs(page)
            assert {"Classify", "Data", "Mistakes", "Train", "About the model"} <= set(tabs), tabs
            for number, name in enumerate(tabs):
                open_tab(page, name)
                where = f"{name} at {size['width']}x{size['height']}"
                fits(page, where)
                if name == "Train":  # the form's start button is reachable
                    page.locator("#start-training").scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / f"{size_name}-{number}-{name.replace(' ', '_')}.png"),
                                full_page=True)
                if size_name == "phone":
                    run_axe(page, where, found)
            if size_name == "phone":
                open_tab(page, "Classify")
                page.get_by_role("tab", name="Draw").click()
                page.get_by_text("select the draw tool to start").wait_for(state="hidden")
                canvas = page.locator("#drawing canvas").first
                canvas.scroll_into_view_if_needed()
                fits(page, "Draw at phone size")
                touch_stroke(page, canvas.bounding_box())
                assert predicted_label(page) and page.locator("#seen img").get_attribute("alt")
                run_axe(page, "Draw", found)
                page.get_by_role("tab", name="Camera").click()
                page.locator("#camera-snapshot").wait_for()
                fits(page, "Camera at phone size")
                run_axe(page, "Camera", found)
        finally:
            context.close()
    known = known_accessibility_gaps()
    new = {rule: where for rule, where in found.items() if rule not in known}
    assert not new, f"serious or critical axe violations not listed in README's known gaps: {new}"
    assert known <= set(found), f"README lists gaps axe no longer finds (remove them): {known - set(found)}"


def tab_to(page, selector, limit=200):
    """Presses Tab until the focused element matches `selector`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_keyboard_only_example_classify_and_open_a_mistake_and_a_missing_camera(page):
    """Tab and Enter alone: an example is classified, the Mistakes tab opens, a mistake
    opens with its explanation. Then the camera, which this headless browser lacks, says
    why in the page, and the other sources keep working."""

    tab_to(page, ".gallery-item")
    page.keyboard.press("Enter")
    assert predicted_label(page) in {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                     "truck"}
    tab_to(page, "[role=tab][data-tab-id=mistakes]")
    page.keyboard.press("Enter")
    page.locator("#mistakes-summary").get_by_text("test accuracy").wait_for()
    tab_to(page, "#mistakes-gallery .thumbnail-item")
    page.keyboard.press("Enter")
    opened = predicted_label(page.locator("#opened-label"))
    heatmap = page.locator("#opened-heatmap img")
    heatmap.wait_for()
    assert heatmap.get_attribute("alt").startswith(f"Why {opened} (")  # the map's words, for a screen reader
    assert "strongest at the" in heatmap.get_attribute("alt") or "spread evenly" in heatmap.get_attribute("alt")

    page.get_by_role("tab", name="Classify").click()
    page.get_by_role("tab", name="Camera").click()
    page.locator("#camera-snapshot").get_by_text("Click to Access Webcam").click()
    page.locator("#camera-message").get_by_text("No camera could be used").wait_for()
    page.get_by_role("tab", name="Upload").click()
    page.locator("input[type=file]").first.set_input_files(str(shipped_example("ship")))
    page.locator("#shipped-label").get_by_text("ship").first.wait_for()


def test_a_training_run_starts_and_stops_from_the_keyboard(page):
    """The Train tab's buttons take Tab and Enter: a Custom run (set up as in the mouse test)
    starts from the keyboard, shows its epochs, and stops from the keyboard with its results."""
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("Custom").check()
    page.get_by_text("Settings (editable with Custom)").click()
    page.get_by_label("Epochs", exact=True).wait_for()
    fill_until_kept(page, {"Epochs": "30", "Training images": "500", "Batch size": "16"})
    tab_to(page, "#start-training")
    page.keyboard.press("Enter")
    page.locator("#run-status").get_by_text("Epoch 1/30").wait_for()
    tab_to(page, "#stop-training")
    page.keyboard.press("Enter")
    page.locator("#run-results").get_by_text("stopped by you").wait_for()


def write_y4m(image_path, y4m_path, side=320, frames=2):
    """A short .y4m video (4:2:0) of one image, for Chromium's fake camera."""
    from PIL import Image

    picture = Image.open(image_path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    luma, blue, red = picture.convert("YCbCr").split()
    half = (side // 2, side // 2)
    frame = luma.tobytes() + blue.resize(half).tobytes() + red.resize(half).tobytes()
    with open(y4m_path, "wb") as video:
        video.write(f"YUV4MPEG2 W{side} H{side} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            video.write(b"FRAME\n" + frame)


def live_frame_number(page):
    """The live line's frame count ("Live: frame 12, 2.5 frames/s answered"), 0 before any."""
    match = re.search(r"Live: frame (\d+)", page.locator("#live-rate").inner_text())
    return int(match.group(1)) if match else 0


def test_fake_camera_snapshot_and_live_stream(browser, app_url, tmp_path):
    """Chromium's fake camera films the shipped truck: the snapshot is classified "truck"
    with its 32x32 view and heatmap described; live, the answers keep coming and say
    truck, and stop when the stream is stopped."""
    video = tmp_path / "truck.y4m"
    write_y4m(shipped_example("truck"), video)
    filming = browser.browser_type.launch(executable_path=CHROMIUM, args=[  # a browser of its own, with the camera
        "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}"])
    try:
        page = filming.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(PAGE_TIMEOUT)
        page.goto(app_url)
        page.get_by_role("tab", name="Camera").click()
        snapshot = page.locator("#camera-snapshot")
        snapshot.get_by_text("Click to Access Webcam").click()
        page.wait_for_function("() => document.querySelector('#camera-snapshot video')?.videoWidth > 0")
        snapshot.locator("button[aria-label='capture photo']").click()
        assert predicted_label(page) == "truck"
        page.locator("#heatmap").get_by_text("Why truck").wait_for()
        assert page.locator("#heatmap img").get_attribute("alt").startswith("Why truck (")
        assert page.locator(".pixelated img").last.get_attribute("alt").startswith("32x32 input, mostly ")

        page.get_by_label("Live", exact=True).check()
        live = page.locator("#camera-live")
        live.get_by_text("Click to Access Webcam").click()
        page.wait_for_function("() => document.querySelector('#camera-live video')?.videoWidth > 0")
        live.get_by_role("button", name="capture photo").click()  # Gradio's Record button (its aria-label)
        page.locator("#live-rate").get_by_text("Live: frame").wait_for()
        first = live_frame_number(page)
        page.wait_for_timeout(LIVE_WINDOW * 1000)
        assert live_frame_number(page) - first >= LIVE_UPDATES
        assert predicted_label(page.locator("#live-label")) == "truck"
        live.get_by_role("button", name="capture photo").click()  # now Stop
        page.wait_for_timeout(1500)  # an answer already on its way may still land
        stopped = live_frame_number(page)
        page.wait_for_timeout(2000)
        assert live_frame_number(page) == stopped, "answers kept coming after the stream was stopped"
    finally:
        filming.close()
