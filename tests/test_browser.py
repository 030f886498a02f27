"""The real page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright)."""

import time

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
    predicted_label,
    shipped_example,
    start_a_tiny_run,
    stop_the_run,
    upload_photo,
    wait_for_heatmap,
    wait_for_loaded_image,
)

pytestmark = needs_chromium
LAPTOP_SHOT = {"width": 1280, "height": 800}


def test_click_an_example_and_see_a_label(page):
    page.get_by_text("CIFAR-10 test images: click one").wait_for()
    page.locator("button.gallery-item, .gallery-item").first.click()
    assert predicted_label(page) in CLASS_NAMES
    page.locator(".pixelated img").last.wait_for()  # the 32x32 the model saw, enlarged


def test_upload_a_photo_see_a_label_and_a_bad_file_gets_a_message(page, tmp_path):
    from PIL import Image

    photo = tmp_path / "ship.png"
    Image.open(shipped_example("ship")).resize((200, 150)).save(photo)
    assert upload_photo(page, photo) == "ship"
    page.locator("button[aria-label='Remove Image']").first.click()  # clear it, as a person would
    (tmp_path / "notes.jpg").write_text("not a picture")
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "notes.jpg"))
    page.get_by_text("notes.jpg is not an image Pillow can read").first.wait_for()  # the error toast says why
    assert not page.locator("[data-testid='label-output-value'] h2").first.is_visible()  # no stale answer


def test_heatmap_follows_the_upload_and_noise_gets_the_ood_warning(page, tmp_path):
    import numpy as np
    from PIL import Image

    assert upload_photo(page, shipped_example("ship")) == "ship"
    wait_for_heatmap(page, "ship")
    assert "Looks like a CIFAR-10 photo" in page.locator("#ood-notice").inner_text()
    page.locator("#neighbours img").nth(7).wait_for()  # the 8 nearest training images, with their classes
    captions = page.locator("#neighbours .caption-label").all_inner_texts()
    assert len(captions) == 8 and all(caption.split(" (")[0] in CLASS_NAMES for caption in captions)
    page.locator("#explain-class input").fill("cat")  # why not cat?
    page.get_by_role("option", name="cat", exact=True).click()
    wait_for_heatmap(page, "cat")
    page.locator("button[aria-label='Remove Image']").first.click()
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(noise)
    page.locator("input[type=file]").first.set_input_files(str(noise))
    page.locator("#ood-notice .ood-flagged").get_by_text("Probably none of these").wait_for()
    page.get_by_text("forced guess among the ten classes").wait_for()


def test_draw_strokes_and_see_a_label_and_the_drawing_notice(page):
    assert draw_a_stroke(page) in CLASS_NAMES
    page.locator("#ood-notice .ood-drawing").get_by_text("Looks like a drawing").wait_for()


def test_start_a_tiny_run_see_the_curves_move_and_stop_it(page, browser, app_server):
    status = start_a_tiny_run(page)
    assert "Keras" in status and "CPU" in status  # which backend and device train
    other = browser.new_page(viewport=LAPTOP)
    other.set_default_timeout(PAGE_TIMEOUT)
    try:  # someone else, meanwhile, is told at once why they cannot start a run
        other.goto(page.url)
        other.get_by_role("tab", name="Train").click()
        other.locator("#start-training").click()
        refusal = other.locator("#train-preset .validation-error")
        refusal.get_by_text("One run trains at a time").wait_for()
        assert "in progress" in refusal.inner_text() and "min left" in refusal.inner_text()
    finally:
        other.close()
    assert "Test accuracy" in stop_the_run(page)
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
    page.get_by_role("tab", name="Inside the network").click()  # its layers, for the Classify example
    page.locator("#inside-model").get_by_label("Your trained model").check()
    page.locator("#inside-notice").get_by_text("Showing your trained model").wait_for()
    page.locator("#inside-input-line").get_by_text("your image from the Classify tab").wait_for()
    page.locator("#inside-map-line").get_by_text("Your model's pooled features of the 300 test images").wait_for()
    wait_for_loaded_image(page, "#inside-stage3_conv3_relu img")  # its top images, kept by its run's test pass
    grid = page.locator("#inside-stage3_conv3_relu img")
    ratio = grid.bounding_box()["width"] / grid.evaluate("image => image.naturalWidth")
    grid.click(position={"x": (34 * 2 + 16) * ratio, "y": 16 * ratio})  # the third cell: channel 3
    page.locator("#inside-close-line").get_by_text("activate it most for your model, among all 300").wait_for()
    page.locator("#inside-top .thumbnail-item").nth(8).wait_for()
    assert page.locator("#inside-top .thumbnail-item").count() == 9

    # Another browser session never sees this model...
    other = browser.new_page(viewport=LAPTOP)
    other.set_default_timeout(PAGE_TIMEOUT)
    try:
        other.goto(app_server[0])
        other.locator(".gallery-item").first.click()
        predicted_label(other)
        assert not other.locator("#trained-label").is_visible()
        other.get_by_role("tab", name="Mistakes").click()
        other.get_by_label("Your trained model").click()  # not check(): the refusal puts the choice back
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
    captions = open_confusion_cell(page)  # true cat, predicted dog
    assert captions and all(text.startswith("cat → dog") for text in captions)
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


def test_robustness_tab_corrupts_an_example_live_and_the_attack_flips_it_at_the_reported_epsilon(page):
    import re

    page.get_by_role("tab", name="Robustness").click()
    shown = page.locator("#robust-shown")
    shown.get_by_text("No input yet").wait_for()  # nothing classified in this session: a hint
    assert not page.locator("#robust-seen").is_visible()  # and no empty pictures
    page.get_by_role("tab", name="Classify").click()
    page.locator(".gallery-item").first.click()  # an example, classified: the session's current input
    predicted_label(page)
    page.get_by_role("tab", name="Robustness").click()
    shown.get_by_text("Showing your image from the Classify tab, with gaussian noise").wait_for()
    page.locator("#robust-input input").click()
    page.get_by_role("option", name="truck (test image #11)").click()
    shown.get_by_text("the example truck (official test image #11), with gaussian noise at severity 3 of 5").wait_for()
    seen, answer = page.locator("#robust-seen img"), page.locator("#robust-label")
    wait_for_loaded_image(page, "#robust-seen img")
    before, answered = seen.get_attribute("src"), answer.inner_text()
    track = page.locator("#robust-severity input[type=range]").bounding_box()
    page.mouse.click(track["x"] + track["width"] - 2, track["y"] + track["height"] / 2)  # drag to the end: 5
    shown.get_by_text("gaussian noise at severity 5 of 5").wait_for()
    page.wait_for_function("src => document.querySelector('#robust-seen img').src !== src", arg=before)
    assert answer.inner_text() != answered  # the answer followed the noisier picture
    wait_for_loaded_image(page, "#robust-seen img")
    box = seen.bounding_box()  # a click relative to the picture once it stays put: the line above it may rewrap
    seen.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.5})  # a grey square there
    shown.get_by_text("with occlusion at severity 5 of 5").wait_for()

    page.get_by_label("Adversarial pixels").check()
    shown.get_by_text("attacked by PGD (7 steps) with ε = 1/255").wait_for()
    assert "the answer is still truck" in shown.inner_text()  # this example holds out for a few levels
    reported = re.search(r"The smallest ε that flips it: (\d)", shown.inner_text())
    assert reported, shown.inner_text()
    epsilon = int(reported.group(1))
    page.locator("#robust-epsilon input[type=number]").fill(str(epsilon))
    page.locator("#robust-epsilon input[type=number]").press("Tab")  # let go: the view updates
    shown.get_by_text(f"with ε = {epsilon}/255").wait_for()
    flipped = re.search(r"the answer flips: truck → (\w+)", shown.inner_text())
    assert flipped, shown.inner_text()
    assert predicted_label(answer) == flipped.group(1) != "truck"
    page.locator("#robust-perturbation img").wait_for()
    assert f"amplified x{127 // epsilon}" in page.locator("#robust-perturbation").inner_text()


def test_inside_the_network_shows_a_channel_up_close_with_its_top_images_and_switches_model(page):
    """The whole flow of the Inside the network tab in one page: the hint with no input, an
    example drawn through every stage, a click on a channel of the last convolution (its map,
    kernels and the 9 test images that activate it most), then the session-model choice that
    falls back to the shipped model when there is none; screenshots at laptop and phone size."""
    page.get_by_role("tab", name="Inside the network").click()
    page.locator("#inside-input-line").get_by_text("No input yet").wait_for()
    page.locator("#inside-examples .thumbnail-item").nth(4).click()  # the automobile
    page.locator("#inside-input-line").get_by_text("the example automobile").wait_for()
    grid = page.locator("#inside-stage3_conv3_relu img")
    wait_for_loaded_image(page, "#inside-stage3_conv3_relu img")
    ratio = grid.bounding_box()["width"] / grid.evaluate("image => image.naturalWidth")
    grid.click(position={"x": (34 * 2 + 16) * ratio, "y": 16 * ratio})  # the third cell: channel 3
    page.locator("#inside-close-line").get_by_text("stage3_conv3_relu, channel 3").wait_for()
    page.locator("#inside-top .thumbnail-item").nth(8).wait_for()
    assert page.locator("#inside-top .thumbnail-item").count() == 9
    page.locator("#inside-kernels img").wait_for()
    page.locator("#inside-logits").get_by_text("The 10 logits").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    for size, name in ((LAPTOP_SHOT, "inside_laptop"), (PHONE, "inside_phone")):
        page.set_viewport_size(size)
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]  # nothing scrolls sideways
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(LAPTOP)
    page.locator("#inside-model").get_by_label("Your trained model").check()  # none trained in this page
    page.locator("#inside-notice").get_by_text("showing the shipped model").wait_for()
