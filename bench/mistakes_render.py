"""Server-side cost of the Mistakes tab's first render, and of a filter click.

    python -m bench.mistakes_render [--repeats 5]

The first render is everything the tab shows when it opens for the shipped model:
reading weights/test_predictions.npz, the summary, per-class table and chart, the styled
confusion table, the blog's grid and the first gallery page. The app computes it once
while it is built; this times that work (median and worst of --repeats runs, in a fresh
process so nothing is cached), then a confusion-cell click (one filtered page).
"""

import argparse
import io
import statistics

from bench.results import record
from bench.timing import time_calls
from cifar_demo.ui import mistakes_tab


def first_render():
    source = mistakes_tab.shipped_source(predictor=None)  # the first render explains nothing
    overview = mistakes_tab.overview(source)
    mistakes_tab.gallery_page(source, mistakes_tab.ANY, mistakes_tab.ANY, next(iter(mistakes_tab.ORDERS)), 0)
    for figure in (overview[2], overview[4]):
        figure.savefig(io.BytesIO(), format="png")  # what gr.Plot does with it


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seconds = time_calls(first_render, args.repeats)
    print(f"first render (load, overview with figures drawn to PNG, first page): "
          f"median {statistics.median(seconds) * 1000:.0f} ms, worst {max(seconds) * 1000:.0f} ms, "
          f"first {seconds[0] * 1000:.0f} ms over {len(seconds)} runs")
    source = mistakes_tab.shipped_source(predictor=None)
    clicks = time_calls(
        lambda: mistakes_tab.gallery_page(source, "cat", "dog", "Most confident first", 0), args.repeats
    )
    print(f"confusion-cell click (filtered page of {mistakes_tab.PAGE_SIZE}): "
          f"median {statistics.median(clicks) * 1000:.0f} ms")
    record("mistakes_render", {
        f"first render, median of {len(seconds)}": (statistics.median(seconds) * 1000, "ms"),
        "first render, worst": (max(seconds) * 1000, "ms"),
        "first render, first call (cold)": (seconds[0] * 1000, "ms"),
        "confusion-cell click (one filtered page), median": (statistics.median(clicks) * 1000, "ms"),
    })

if __name__ == "__main__":
    main()
