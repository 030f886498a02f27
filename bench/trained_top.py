"""What keeping a session model's top images and feature map costs its run's test evaluation,
and what the Inside the network tab then spends drawing them.

    python -m bench.trained_top [--repeats 2] [--width 0.25]

The evaluation as a run does it at the Quick preset's width (ui/training_runs.py: chunks of
TEST_CHUNK test images), before (predict_proba only) and now (predict_with_peaks, each
channel's top images kept chunk by chunk, the PCA of the pooled features at the end), over
the 10,000 test images, taken in turn. Then, for that model, the tab's feature map with its
8 neighbours and a channel's 9 top images with their maps. Weights are freshly initialised:
the cost does not depend on what the model learned.
"""

import argparse
import os
import statistics
import time

import numpy as np

from bench.results import record
from cifar_demo import data
from cifar_demo.inside import RunningTopK, fit_pca, top_layers, trained_top_activations
from cifar_demo.model import FEATURES_LAYER, build_model, scaled_widths
from cifar_demo.predictor import Predictor
from cifar_demo.ui import inside_tab
from cifar_demo.ui.training_runs import TEST_CHUNK


def before(predictor, x_test):
    return np.concatenate([predictor.predict_proba(x_test[start : start + TEST_CHUNK])
                           for start in range(0, len(x_test), TEST_CHUNK)])


def now(predictor, x_test):
    tops = RunningTopK(top_layers(predictor.activation_layers()))
    chunks, features = [], []
    for start in range(0, len(x_test), TEST_CHUNK):
        scored, peaks = predictor.predict_with_peaks(x_test[start : start + TEST_CHUNK], (*tops.layers, FEATURES_LAYER))
        chunks.append(scored)
        tops.add(peaks)
        features.append(peaks[FEATURES_LAYER])
    features = np.concatenate(features)
    return np.concatenate(chunks), trained_top_activations(tops, features), features


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--width", type=float, default=0.25)
    args = parser.parse_args()
    load = os.getloadavg()
    x_test = data.load_cifar10_cached().x_test
    predictor = Predictor(build_model(scaled_widths(args.width)))
    before(predictor, x_test[:TEST_CHUNK])  # traces both passes
    now(predictor, x_test[:TEST_CHUNK])
    old_times, new_times = [], []
    for _ in range(args.repeats):
        old_times.append(timed(lambda: before(predictor, x_test))[0])
        seconds, (_, kept, pooled) = timed(lambda: now(predictor, x_test))
        new_times.append(seconds)
    pca_seconds = timed(lambda: fit_pca(pooled))[0]
    features = predictor.activations(x_test[0])[FEATURES_LAYER]
    views = inside_tab.InsideViews(lambda: (None, "not used"))
    map_seconds = [timed(lambda: views.feature_space(features, False, kept))[0] for _ in range(5)]
    last = kept.layers[-1]
    click_seconds = [timed(lambda channel=channel: views.top_images(predictor, last, channel, False, kept))[0]
                     for channel in range(5)]
    old, new = statistics.median(old_times), statistics.median(new_times)
    size = kept.points.nbytes + sum(v.nbytes for v in (*kept.indices.values(), *kept.values.values()))
    figures = {
        f"test evaluation before (predict_proba, {len(x_test):,} images), median of {args.repeats}": (old, "s"),
        "test evaluation now (+ top images per channel, feature map)": (new, "s"),
        "added": (new - old, "s"),
        "added, share of the evaluation before": (100 * (new - old) / old, "%"),
        f"of which the PCA of the pooled features {pooled.shape}": (pca_seconds * 1000, "ms"),
        "kept per session model (indices, peaks, map positions)": (size / 1e6, "MB"),
        "tab: the model's feature map and 8 neighbours, median of 5": (statistics.median(map_seconds) * 1000, "ms"),
        "tab: a channel's 9 top images with their maps, median of 5": (statistics.median(click_seconds) * 1000, "ms"),
    }
    for name, (value, unit) in figures.items():
        print(f"{name}: {value:.3f} {unit}")
    record("trained_top", figures, notes=f"width {args.width:g} (Quick); load average before {load[0]:.1f} on a "
           "shared machine; Gradio's PNG encoding not included")


if __name__ == "__main__":
    main()
