"""Accuracy under corruption: every corruption of cifar_demo.corruptions at severities 1-5
over labelled images, the report `evaluate --corruptions` writes beside the weights
(`<name>.corruptions.json`), and its table.

The images go through the predictor in chunks of CHUNK at batch throughput (one compiled
forward pass). Each chunk's corruption draws from its own generator, seeded by (seed,
corruption, severity, chunk): the first 1,000 images are corrupted the same way whether
1,000 or all 10,000 are evaluated, so a subset's figures are the full run's on that subset.
"""

import datetime
import json
import time
import zlib
from pathlib import Path

import numpy as np

from cifar_demo.corruptions import CORRUPTIONS, DISPLAY_NAMES, SEVERITIES

CHUNK = 1000


def corruption_accuracy(predictor, images, labels, seed=0, progress=None):
    """{clean_accuracy, corruptions: {name: {display_name, accuracy (one per severity 1-5),
    mean}}, mean_corruption_accuracy, images, seed, severities, date, seconds} for uint8
    images (N, 32, 32, 3) with their labels. `progress(done, total, name, severity,
    accuracy)` is called after each corruption and severity."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or len(images) == 0 or labels.shape != (len(images),):
        raise ValueError(f"need one label per image and at least one image, got {images.shape} images "
                         f"and {labels.shape} labels")
    started = time.perf_counter()
    clean = _correct(predictor, images, labels) / len(images)
    total, done, table = len(CORRUPTIONS) * len(SEVERITIES), 0, {}
    for name, corrupt in CORRUPTIONS.items():
        accuracies = []
        for severity in SEVERITIES:
            correct = 0
            for start in range(0, len(images), CHUNK):
                rng = np.random.default_rng([seed, zlib.crc32(name.encode()), severity, start // CHUNK])
                correct += _correct(predictor, corrupt(images[start : start + CHUNK], severity, rng),
                                    labels[start : start + CHUNK])
            accuracies.append(correct / len(images))
            done += 1
            if progress is not None:
                progress(done, total, name, severity, accuracies[-1])
        table[name] = {"display_name": DISPLAY_NAMES[name], "accuracy": [round(a, 6) for a in accuracies],
                       "mean": round(float(np.mean(accuracies)), 6)}
    return {
        "clean_accuracy": round(clean, 6),
        "mean_corruption_accuracy": round(float(np.mean([row["mean"] for row in table.values()])), 6),
        "corruptions": table,
        "severities": list(SEVERITIES),
        "images": len(images),
        "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _correct(predictor, images, labels):
    return int(np.sum(predictor.predict_proba(images).argmax(axis=1) == labels))


def save_report(report, path):
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


def load_report(path):
    """The report saved at `path`; ValueError if it is missing or not such a report."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"cannot read the corruption report {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise ValueError(f"cannot read the corruption report {path}: {error}") from None
    if not isinstance(report, dict) or not {"clean_accuracy", "corruptions", "mean_corruption_accuracy"} <= set(report):
        raise ValueError(f"{path} is not a corruption report (written by python -m cifar_demo.evaluate --corruptions)")
    return report


def format_table(report):
    """The report as a text table: accuracy (%) per corruption and severity, and the means."""
    severities = report["severities"]
    header = f"{'corruption':<16}" + "".join(f"{f'sev {s}':>8}" for s in severities) + f"{'mean':>8}"
    lines = [f"accuracy under corruption, {report['images']:,} test images, seed {report['seed']} (%):", header]
    for row in report["corruptions"].values():
        lines.append(f"{row['display_name']:<16}" + "".join(f"{a * 100:8.2f}" for a in row["accuracy"])
                     + f"{row['mean'] * 100:8.2f}")
    lines.append(f"clean accuracy: {report['clean_accuracy'] * 100:.2f}%; mean corruption accuracy: "
                 f"{report['mean_corruption_accuracy'] * 100:.2f}%")
    return "\n".join(lines)
