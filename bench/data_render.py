"""Server-side cost of the Data tab's first render, and of a "New draw" click.

    python -m bench.data_render [--repeats 5]

The first render is everything the tab shows when it opens: reading
weights/train_sample.npz, the blog's grid of 100 training images, the class balance
chart (both drawn to PNG, as gr.Plot does), the statistics table, the first class page
and the augmentation preview. The app computes it once while it is built; this times
that work (median and worst of --repeats runs), then one augmentation preview.
"""

import argparse
import io
import itertools
import statistics

from bench.results import record
from bench.timing import time_calls
from cifar_demo import data, plots
from cifar_demo.ui import data_tab


def first_render():
    sample = data.DataSample.load()
    figures = (
        data_tab.sample_grid(sample.images, sample.labels, "100 training images"),
        plots.class_balance_figure(sample.train_counts, sample.test_counts),
    )
    for figure in figures:
        figure.savefig(io.BytesIO(), format="png")  # what gr.Plot does with it
    data_tab.statistics_table(sample)
    _, _, shown, _ = data_tab.class_page("airplane", 0, sample, use_full=False)
    data_tab.preview_views(*shown[0], seed=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seconds = time_calls(first_render, args.repeats)
    print(f"first render (sample, grid and balance chart drawn to PNG, table, class page, preview): "
          f"median {statistics.median(seconds) * 1000:.0f} ms, worst {max(seconds) * 1000:.0f} ms, "
          f"first {seconds[0] * 1000:.0f} ms over {len(seconds)} runs")
    sample, seeds = data.DataSample.load(), itertools.count()
    draws = time_calls(
        lambda: data_tab.preview_views(int(sample.indices[0]), sample.images[0], next(seeds)), args.repeats
    )
    print(f"New draw (16 augmented versions + mosaic): median {statistics.median(draws) * 1000:.1f} ms")
    record("data_render", {
        f"first render, median of {len(seconds)}": (statistics.median(seconds) * 1000, "ms"),
        "first render, worst": (max(seconds) * 1000, "ms"),
        "first render, first call": (seconds[0] * 1000, "ms"),
        "New draw (16 augmented versions + mosaic), median": (statistics.median(draws) * 1000, "ms"),
    })

if __name__ == "__main__":
    main()
