"""The Robustness tab's live update and the `evaluate --corruptions` run, timed.

    CIFAR10_PATH=.../cifar10.npz python -m bench.robustness [--images 1000] [--repeats 30]
    python -m bench.robustness --tab [--repeats 30]

--tab (its own section, "robustness tab"): the tab's handler as the app runs it (the
corruption, robustness_views.answer_views and the PNG encoding of its two pictures) per
corruption, the adversarial views (the first attack of an input, then an epsilon move),
and the round trip from slider release to the new picture: through the API (/corrupt with
gradio_client) and through the page (headless Chromium: the severity typed in and let go,
until the picture the model sees has changed), against the real app started here.

Live: one 32x32 test image through each corruption (severity 3) and everything the tab
updates (predict_proba, Grad-CAM, the out-of-distribution verdict), p50/p90 per
corruption after warm-up (goal: 150 ms p50); beside it the same without the corruption,
and the adversarial searches on one image (FGSM and PGD over epsilon 1-8).
Evaluation: cifar_demo.robustness.corruption_accuracy on the first --images test images
(all corruptions x 5 severities, the CLI's code path), extrapolated linearly to the
10,000 test images (goal: 15 minutes), and the share of it the corruptions take alone;
in float32 (the figures of record) and, side by side, in mixed_bfloat16.
Without CIFAR-10 the images are the shipped test images (weights/test_predictions.npz).
"""

import argparse
import io
import itertools
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.gradcam import test_images
from bench.results import record
from bench.timing import percentiles, time_calls
from cifar_demo import Predictor
from cifar_demo.adversarial import smallest_flipping_epsilon
from cifar_demo.corruptions import CORRUPTIONS, SEVERITIES
from cifar_demo.ood import OodDetector
from cifar_demo.robustness import corruption_accuracy
from cifar_demo.ui import robustness_views as views
from cifar_demo.ui.current_input import example_inputs

FULL_TEST_SET = 10_000
GOAL_MINUTES = 15
LIVE_SEVERITY = 3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights to load (default: shipped)")
    parser.add_argument("--images", type=int, default=1000, help="test images the timed evaluation covers")
    parser.add_argument("--repeats", type=int, default=30, help="live updates timed per corruption")
    parser.add_argument("--tab", action="store_true", help="time the tab's handler and round trips instead")
    args = parser.parse_args()
    if args.tab:
        tab(args.repeats)
        return

    predictor = Predictor.load(args.weights)
    detector = OodDetector.load(predictor)
    images, labels, source = test_images()
    one = images[0]
    rng = np.random.default_rng(0)

    def live(corrupt):
        pixels = corrupt(one[None], LIVE_SEVERITY, rng)[0]
        predictor.predict_proba(pixels[None])
        predictor.explain_pixels(pixels)
        detector.assess(pixels)

    figures = {}
    print(f"live update, one image, severity {LIVE_SEVERITY}, {args.repeats} calls each (ms):")
    clean_p50, clean_p90 = percentiles(time_calls(lambda: live(lambda batch, severity, rng: batch), args.repeats))
    print(f"  {'no corruption':<16}{clean_p50:8.2f}{clean_p90:8.2f}")
    figures["live update without corruption (predict, Grad-CAM, OOD), p50"] = (clean_p50, "ms")
    worst = 0.0
    for name, corrupt in CORRUPTIONS.items():
        live(corrupt)  # warm-up
        p50, p90 = percentiles(time_calls(lambda corrupt=corrupt: live(corrupt), args.repeats))
        worst = max(worst, p50)
        print(f"  {name:<16}{p50:8.2f}{p90:8.2f}")
        figures[f"live update, {name}, p50"] = (p50, "ms")
    figures["live update, slowest corruption's p50"] = (worst, "ms")

    for method in ("fgsm", "pgd"):
        smallest_flipping_epsilon(predictor, one, method)  # warm-up
        seconds = np.median(time_calls(lambda method=method: smallest_flipping_epsilon(predictor, one, method), 3))
        print(f"smallest flipping epsilon by {method}, one image: {seconds * 1000:.0f} ms")
        figures[f"smallest flipping epsilon by {method} (epsilon 1-8 in one batch), one image"] = (
            seconds * 1000, "ms")

    count = min(args.images, len(images))
    subset, subset_labels = images[:count], labels[:count]
    start = time.perf_counter()
    for corrupt in CORRUPTIONS.values():
        for severity in SEVERITIES:
            corrupt(subset, severity, np.random.default_rng(severity))
    corrupting = time.perf_counter() - start
    passes = len(CORRUPTIONS) * len(SEVERITIES) + 1
    for precision in ("float32", "mixed_bfloat16"):
        scorer = predictor if precision == "float32" else Predictor.load(args.weights, precision=precision)
        start = time.perf_counter()
        report = corruption_accuracy(scorer, subset, subset_labels)
        seconds = time.perf_counter() - start
        full_minutes = seconds * FULL_TEST_SET / count / 60
        print(f"{precision}: evaluation on {count:,} images ({source}) x {len(CORRUPTIONS)} corruptions x "
              f"{len(SEVERITIES)} severities + clean: {seconds:.1f} s, {passes * count / seconds:.0f} images/s; "
              f"mean corruption accuracy {report['mean_corruption_accuracy'] * 100:.2f}% "
              f"(clean {report['clean_accuracy'] * 100:.2f}%)")
        print(f"  extrapolated to {FULL_TEST_SET:,} images: T({FULL_TEST_SET:,}) = T({count:,}) x {FULL_TEST_SET:,} / "
              f"{count:,} = {seconds:.1f} s x {FULL_TEST_SET / count:g} = {full_minutes:.1f} min "
              f"(goal {GOAL_MINUTES} min)")
        figures.update({
            f"{precision}: evaluation, {count:,} images x {len(CORRUPTIONS)} x {len(SEVERITIES)} + clean": (
                seconds, "s"),
            f"{precision}: evaluation throughput": (passes * count / seconds, "images/s"),
            f"{precision}: extrapolated to {FULL_TEST_SET:,} images (x {FULL_TEST_SET / count:g})": (
                full_minutes, "min"),
        })
    print(f"corrupting alone, {count:,} images x {passes - 1}: {corrupting:.1f} s")
    figures["of which corrupting alone (both precisions)"] = (corrupting, "s")
    record("robustness", figures, notes=f"live path in float32; images: {source}; shared 2-core machine, "
           "other sessions' work may be running")


def png(pixels):
    """What Gradio does with each picture the handler returns (format="png")."""
    from PIL import Image

    Image.fromarray(pixels).save(io.BytesIO(), "png")


def tab(repeats):
    """The "robustness tab" section: the handler in this process, then round trips to the app."""
    predictor = Predictor.load()
    detector = OodDetector.load(predictor)
    pixels = example_inputs()["truck (test image #11)"].pixels

    def handler(name, severity):
        enlarged, _, overlay, _, _ = views.answer_views(predictor, detector, views.corrupt(pixels, name, severity))
        png(enlarged)
        png(overlay)

    load = os.getloadavg()[0]
    figures, worst, fastest = {}, 0.0, []
    print(f"the tab's handler, one example, {repeats} calls per corruption, severities 1-5 in turn "
          "(ms p50, p90, min):")
    for name in CORRUPTIONS:
        handler(name, 3)  # warm-up
        levels = itertools.cycle(SEVERITIES)
        seconds = time_calls(lambda name=name, levels=levels: handler(name, next(levels)), repeats)
        p50, p90 = percentiles(seconds)
        worst = max(worst, p50)
        fastest.append(min(seconds) * 1000)
        print(f"  {name:<16}{p50:8.2f}{p90:8.2f}{fastest[-1]:8.2f}")
    figures["tab handler (corruption, answer, Grad-CAM, OOD, 2 PNGs), slowest corruption's p50"] = (worst, "ms")
    figures["tab handler, slowest corruption's fastest call (the cost without contention)"] = (max(fastest), "ms")

    for method in ("pgd", "fgsm"):
        views.attack(predictor, pixels, method)  # warm-up: the gradient compiles
        first = np.median(time_calls(lambda method=method: views.attack(predictor, pixels, method), 3)) * 1000
        cached, steps = views.attack(predictor, pixels, method), itertools.cycle(range(1, 9))

        def move(cached=cached, epsilons=steps):
            epsilon = next(epsilons)
            attacked = cached.attacked[epsilon - 1]
            enlarged, _, overlay, _, _ = views.answer_views(predictor, detector, attacked)
            change, _ = views.perturbation_view(pixels, attacked, epsilon)
            for picture in (enlarged, overlay, change):
                png(picture)

        p50, _ = percentiles(time_calls(move, repeats))
        print(f"{method}: first view of an input (epsilon 1-8 attacked in one batch) {first:.0f} ms; "
              f"an epsilon move {p50:.1f} ms p50")
        figures[f"adversarial {method}: first view of an input (8 epsilons in one batch)"] = (first, "ms")
        figures[f"adversarial {method}: epsilon slider move (3 PNGs), p50"] = (p50, "ms")

    figures.update(round_trips(repeats))
    record("robustness tab", figures, notes=f"shared 2-core machine, load average {load:.1f} at the start and "
           f"{os.getloadavg()[0]:.1f} at the end (other sessions' tests); the app and Chromium run on the same 2 "
           "cores as the client")


def round_trips(repeats):
    """p50/p90 of slider release -> new picture, through /corrupt and through the page."""
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    from tests.browser_pages import CHROMIUM, LAPTOP
    from tests.local_server import start_app, stop_app

    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_app(Path(folder) / "app.log")
        try:
            client = Client(url, verbose=False, download_files=False)  # the page fetches only what it shows
            example = "truck (test image #11)"
            client.predict(example, "gaussian_noise", 3, api_name="/corrupt")  # warm-up
            levels = itertools.cycle(SEVERITIES)
            api = time_calls(lambda: client.predict(example, "gaussian_noise", next(levels), api_name="/corrupt"),
                             repeats)
            p50, p90 = percentiles(api)
            print(f"round trip through /corrupt (gradio_client, files not fetched): p50 {p50:.0f} ms, "
                  f"p90 {p90:.0f} ms")
            figures["round trip, /corrupt via gradio_client (files not fetched), p50"] = (p50, "ms")
            figures["round trip, /corrupt via gradio_client (files not fetched), p90"] = (p90, "ms")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport=LAPTOP)
                page.set_default_timeout(60_000)
                page.goto(url)
                page.get_by_role("tab", name="Robustness").click()
                page.locator("#robust-input input").click()
                page.get_by_role("option", name=example).click()
                page.locator("#robust-shown").get_by_text("severity 3 of 5").wait_for()
                box = page.locator("#robust-severity input[type=number]")
                levels = itertools.cycle((4, 5, 1, 2, 3))  # never the severity shown: each release changes it

                def release():
                    before = page.locator("#robust-seen img").get_attribute("src")
                    box.fill(str(next(levels)))
                    box.press("Tab")  # letting go of the slider: Gradio's release event
                    page.wait_for_function("src => { const img = document.querySelector('#robust-seen img'); "
                                           "return img && img.src !== src && img.complete && img.naturalWidth > 0; }",
                                           arg=before, polling="raf")

                page.locator("#robust-seen img").wait_for()
                release()  # warm-up
                seconds = time_calls(release, repeats)
                p50, p90 = percentiles(seconds)
                browser.close()
            print(f"round trip through the page (release -> new picture loaded): p50 {p50:.0f} ms, p90 {p90:.0f} ms, "
                  f"fastest {min(seconds) * 1000:.0f} ms")
            figures["round trip, page: slider release -> new picture loaded in Chromium, p50 (goal 150)"] = (p50, "ms")
            figures["round trip, page: slider release -> new picture loaded in Chromium, p90"] = (p90, "ms")
            figures["round trip, page: fastest release (the cost without contention)"] = (min(seconds) * 1000, "ms")
        finally:
            stop_app(process)
    return figures


if __name__ == "__main__":
    main()
