"""The real page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright)."""

import os
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
EXAMPLES = Path(__file__).resolve().parent.parent / "weights" / "examples"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def browser():
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
    """A fresh page on the app; saves a screenshot under test-artifacts/ if the test fails."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(app_url)
    page.get_by_role("tab", name="Classify").first.wait_for()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not page.is_closed():
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    if not page.is_closed():
        page.close()


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


def test_click_an_example_and_see_a_label(page):
    page.get_by_text("CIFAR-10 test images: click one").wait_for()
    page.locator("button.gallery-item, .gallery-item").first.click()
    label = predicted_label(page)
    assert label in {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    page.locator(".pixelated img").last.wait_for()  # the 32x32 the model saw, enlarged


def test_upload_a_photo_see_a_label_and_a_bad_file_gets_a_message(page, tmp_path):
    from PIL import Image

    photo = tmp_path / "ship.png"
    Image.open(sorted(EXAMPLES.glob("*_ship.png"))[0]).resize((200, 150)).save(photo)
    upload = page.locator("input[type=file]").first
    upload.set_input_files(str(photo))
    assert predicted_label(page) == "ship"
    page.locator("button[aria-label='Remove Image']").first.click()  # clear it, as a person would
    (tmp_path / "notes.jpg").write_text("not a picture")
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "notes.jpg"))
    page.get_by_text("notes.jpg is not an image Pillow can read").first.wait_for()  # the error toast says why
    assert not page.locator("[data-testid='label-output-value'] h2").first.is_visible()  # no stale answer


def test_heatmap_follows_the_upload_and_noise_gets_the_ood_warning(page, tmp_path):
    import numpy as np
    from PIL import Image

    page.locator("input[type=file]").first.set_input_files(str(sorted(EXAMPLES.glob("*_ship.png"))[0]))
    assert predicted_label(page) == "ship"
    heatmap = page.locator("#heatmap")
    heatmap.locator("img").wait_for()
    heatmap.get_by_text("Why ship").wait_for()
    assert "Looks like a CIFAR-10 photo" in page.locator("#ood-notice").inner_text()
    page.locator("#explain-class input").fill("cat")  # why not cat?
    page.get_by_role("option", name="cat", exact=True).click()
    heatmap.get_by_text("Why cat").wait_for()
    page.locator("button[aria-label='Remove Image']").first.click()
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(noise)
    page.locator("input[type=file]").first.set_input_files(str(noise))
    page.locator("#ood-notice .ood-flagged").get_by_text("Probably none of these").wait_for()
    page.get_by_text("forced guess among the ten classes").wait_for()


def test_draw_strokes_and_see_a_label(page):
    page.get_by_role("tab", name="Draw").click()
    # Opening the tab picks the brush, so a person can draw at once.
    page.get_by_text("select the draw tool to start").wait_for(state="hidden")
    canvas = page.locator("#drawing canvas").first
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    for i in range(1, 21):
        along = 0.3 + 0.02 * i
        page.mouse.move(box["x"] + box["width"] * along, box["y"] + box["height"] * along, steps=2)
    page.mouse.up()
    page.locator(".pixelated img").last.wait_for()
    label = predicted_label(page)
    assert label in {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}


def test_start_a_tiny_run_see_the_curves_move_and_stop_it(page, browser, app_server):
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("Custom").check()
    page.get_by_text("Settings (editable with Custom)").click()
    page.get_by_label("Epochs", exact=True).wait_for()
    fill_until_kept(page, {"Epochs": "30", "Training images": "500", "Batch size": "16"})
    page.locator("#start-training").click()
    status = page.locator("#run-status")
    status.get_by_text("Epoch 1/30").wait_for()
    assert "Keras" in status.inner_text() and "CPU" in status.inner_text()  # which backend and device train
    curves = page.locator("#training-curves img")
    curves.wait_for()
    first = curves.get_attribute("src")
    page.wait_for_function(
        "src => { const img = document.querySelector('#training-curves img'); return img && img.src !== src; }",
        arg=first,
    )  # the curves were redrawn while the run went on
    page.locator("#stop-training").click()
    page.locator("#run-results").get_by_text("stopped by you").wait_for()
    assert "Test accuracy" in page.locator("#run-results").inner_text()
    page.locator("#use-model").click()
    page.get_by_role("tab", name="Classify").click()
    page.locator(".gallery-item").first.click()
    page.locator("#trained-label").get_by_text("Your trained model").wait_for()
    page.get_by_role("tab", name="Mistakes").click()
    page.get_by_label("Your trained model").check()  # its mistakes on the (toy) test set
    page.locator("#mistakes-summary").get_by_text("Your trained model:").wait_for()
    page.get_by_text("Compare: where your trained model and the shipped one disagree").click()
    # The app trains on a generated toy set here, so there is no official test set to compare on.
    page.locator("#compare-summary").get_by_text("not the official test set").wait_for()

    # Another browser session never sees this model...
    other = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        other.goto(app_server[0])
        other.locator(".gallery-item").first.click()
        predicted_label(other)
        assert not other.locator("#trained-label").is_visible()
        other.get_by_role("tab", name="Mistakes").click()
        other.get_by_label("Your trained model").check()
        other.get_by_text("Train a model in the Train tab").first.wait_for()  # refused, with the reason
    finally:
        other.close()
    # ...and the model is freed as soon as its page closes.
    page.close()
    log_path = app_server[1]
    deadline = time.monotonic() + 30
    while "freed the trained model of a closed session" not in log_path.read_text():
        assert time.monotonic() < deadline, "the closed session's model was not freed"
        time.sleep(0.5)


def test_mistakes_tab_filters_by_a_confusion_cell_and_opens_an_image(page):
    page.get_by_role("tab", name="Mistakes").click()
    page.locator("#mistakes-summary").get_by_text("test accuracy").wait_for()
    page.locator("#confusion-table [data-testid='cell-3-6']").click()  # true cat, predicted dog
    page.locator("#mistakes-page").get_by_text("true class cat predicted dog").wait_for()
    captions = page.locator("#mistakes-gallery .caption-label")
    assert captions.count() > 0
    assert all(text.startswith("cat → dog") for text in captions.all_inner_texts())
    page.locator("#mistakes-gallery .thumbnail-item").first.click()
    assert predicted_label(page.locator("#opened-label")) == "dog"


def test_data_tab_shows_the_grid_and_the_augmentation_preview(page):
    page.get_by_role("tab", name="Data").click()
    page.locator("#data-grid img").wait_for()
    preview = page.locator("#augmentation-preview img")
    preview.wait_for()
    first = preview.get_attribute("src")
    thumbnail = page.locator("#class-gallery .thumbnail-item").nth(2)
    index = thumbnail.locator(".caption-label").inner_text().strip()  # "#<training index>"
    thumbnail.click()  # another image to preview
    caption = page.locator("#preview-caption")
    caption.get_by_text(f"Training image {index}, seed 0").wait_for()
    page.wait_for_function("src => document.querySelector('#augmentation-preview img').src !== src", arg=first)
    shown = preview.get_attribute("src")
    page.locator("#new-draw").click()
    caption.get_by_text(f"Training image {index}, seed 1").wait_for()  # the same image, drawn again
    page.wait_for_function("src => document.querySelector('#augmentation-preview img').src !== src", arg=shown)
    grid = page.locator("#data-grid img").get_attribute("src")
    page.locator("#shuffle").click()  # the app's data is the generated toy set: no download
    page.locator("#shuffle-line").get_by_text("Drawn at random").wait_for()
    assert page.locator("#data-grid img").get_attribute("src") != grid


def test_about_tab_shows_the_layers_and_the_calibration(page):
    page.get_by_role("tab", name="About the model").click()
    page.locator("#about-summary").get_by_text("top-1 on the 10,000 official test images").wait_for()
    page.locator("#layer-table").get_by_text("stage1_conv1", exact=True).first.wait_for()
    page.locator("#reliability-diagram img").wait_for()
    page.locator("#ood-about").get_by_text("Probably none of these").wait_for()


@pytest.mark.parametrize(("tab", "accordion", "figures"), [
    ("Data", None, ["#data-grid", "#class-balance"]),
    ("Mistakes", "The blog's grid: 100 test predictions", ["#mistakes-per-class", "#mistakes-grid"]),
    ("About the model", None, ["#about-per-class", "#reliability-diagram"]),
])
def test_every_figure_of_a_tab_arrives_when_the_tab_opens(page, tab, accordion, figures):
    """The figures are not in the page config (first_view.FirstView): opening the tab sends them."""
    page.get_by_role("tab", name=tab).click()
    if accordion:
        page.get_by_text(accordion).click()
    for figure in figures:
        image = page.locator(f"{figure} img")
        image.wait_for()
        assert image.get_attribute("src").startswith("data:image/png;base64,")
