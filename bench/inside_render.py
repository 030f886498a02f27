"""Server-side cost of the Inside the network tab: a new input redrawn, and a channel click.

    python -m bench.inside_render [--repeats 20]

A new input: the activations of every stage (one pass), the 12 channel mosaics, the
logits, softmax and contributions, the feature map with its marker and the 8 nearest test
images, each image encoded to PNG as Gradio sends it. A channel click: that channel's map
over the input, its kernels and its 9 top test images with their maps (the first click on
a channel computes them, later ones reuse them; both are timed), encoded to PNG. Examples
taken in turn, after a warm-up that traces the functions.
"""

import argparse
import io
import os
import statistics
import time

from PIL import Image

from bench.results import record
from cifar_demo import Predictor
from cifar_demo.ui import inside_tab
from cifar_demo.ui.current_input import example_inputs


def encoded(image):
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(io.BytesIO(), format="png")


def redraw(views, predictor, pixels, phases=None):
    """Everything a new input redraws; `phases` collects the seconds of the network pass
    with the mosaics, the decision and map, and the PNG encoding."""
    start = time.perf_counter()
    path, activations = views.path(predictor, pixels, 0)
    drawn = time.perf_counter()
    views.decision(predictor, activations["global_pool"])
    image, items, _ = views.feature_space(activations["global_pool"], True)
    decided = time.perf_counter()
    for picture in [*(mosaic for mosaic, _ in path.values()), image, *(item[0] for item in items)]:
        encoded(picture)
    if phases is not None:
        phases.append((drawn - start, decided - drawn, time.perf_counter() - decided))


def click(views, predictor, pixels, channel):
    overlay, kernels, items, _ = views.close_up(predictor, pixels, "stage3_conv3_relu", channel, True)
    for picture in [overlay, kernels, *(item[0] for item in items)]:
        encoded(picture)


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    load = os.getloadavg()
    predictor = Predictor.load()
    views = inside_tab.InsideViews()
    views.prepare(predictor)
    examples = [example.pixels for example in example_inputs().values()]
    redraw(views, predictor, examples[0])
    click(views, predictor, examples[0], 0)
    phases = []
    draws = [timed(lambda i=i: redraw(views, predictor, examples[i % len(examples)], phases))
             for i in range(args.repeats)]
    activations, decision, encoding = (statistics.median(phase) * 1000 for phase in zip(*phases, strict=True))
    first_clicks = [timed(lambda i=i: click(views, predictor, examples[i % len(examples)], 1 + i))
                    for i in range(args.repeats)]
    repeat_clicks = [timed(lambda i=i: click(views, predictor, examples[i % len(examples)], 1 + i))
                     for i in range(args.repeats)]
    figures = {
        f"new input redrawn (12 mosaics, decision, feature map, PNGs), p50 of {args.repeats}":
            (statistics.median(draws) * 1000, "ms"),
        "new input redrawn, worst": (max(draws) * 1000, "ms"),
        "of which the network pass and the 12 mosaics, p50": (activations, "ms"),
        "of which the decision, feature map and neighbours, p50": (decision, "ms"),
        "of which PNG encoding (21 images, as Gradio sends them), p50": (encoding, "ms"),
        "channel click, first on that channel (9 top images' maps computed), p50": (
            statistics.median(first_clicks) * 1000, "ms"),
        "channel click, again on that channel, p50": (statistics.median(repeat_clicks) * 1000, "ms"),
    }
    for name, (value, unit) in figures.items():
        print(f"{name}: {value:.0f} {unit}")
    load = ", ".join(f"{value:.1f}" for value in load)
    record("inside_render", figures, notes="server side, in-process, shipped weights; the goals are 300 ms for a "
           f"new input and 100 ms for a click; load average before the run {load}")


if __name__ == "__main__":
    main()
