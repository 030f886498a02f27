"""Where the shipped artifacts live, and the companion files saved beside any weights file.

A weights file `x.weights.h5` travels with `x.config.json` (its TrainConfig: the width the
model is built with), `x.calibration.json` (the fitted temperature) and `x.ood.npz` (the
out-of-distribution statistics), with `x.neighbours.npz` (the training images those
statistics' kNN bank holds), `x.corruptions.json` (accuracy under corruption) and
`x.inside.npz` (each channel's top test images). Everything that reads or writes one asks here for its name,
so `shipped_files()` can list every file under weights/ the app reads (what a Space must hold).
"""

import os
import zipfile
import zlib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPOSITORY / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "cifar10_cnn.weights.h5"
SHIPPED_METRICS = WEIGHTS_DIR / "cifar10_cnn.metrics.json"       # what `evaluate --json` measured
SHIPPED_TEST_PREDICTIONS = WEIGHTS_DIR / "test_predictions.npz"  # `evaluate --write-predictions`
SHIPPED_SAMPLE = WEIGHTS_DIR / "train_sample.npz"                # `data --write-sample`: the Data tab's images
EXAMPLES_DIR = WEIGHTS_DIR / "examples"                          # `data --write-examples`: one test image per class
SHIPPED_MODEL_CARD = WEIGHTS_DIR / "README.md"                   # the About tab's recipe section
SHIPPED_CURVES = WEIGHTS_DIR / "training_curves.png"             # the About tab's curves of the shipped run
# What np.load and reading an .npz's arrays raise for a missing, truncated or damaged file
# (BadZipFile: a broken archive or checksum; zlib.error: a member's compressed bytes damaged).
# Every reader of an .npz catches these and raises a ValueError naming the file.
UNREADABLE_NPZ = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def without_server_paths(message):
    """`message` with the app's own folder left out of the paths in it ("weights/x.npz", not
    "/srv/.../weights/x.npz"): what people see of an error about a shipped file."""
    return str(message).replace(f"{REPOSITORY}{os.sep}", "")


def companion_path(weights_path, kind, suffix=".json"):
    """The file of `kind` saved beside a weights file: (x.weights.h5, "config") -> x.config.json."""
    weights_path = Path(weights_path)
    stem = weights_path.name.removesuffix(".weights.h5").removesuffix(".h5")
    return weights_path.with_name(f"{stem}.{kind}{suffix}")


def config_path_for(weights_path):
    """x.weights.h5 -> x.config.json: the training settings, width included."""
    return companion_path(weights_path, "config")


def calibration_path_for(weights_path):
    """x.weights.h5 -> x.calibration.json: the fitted temperature."""
    return companion_path(weights_path, "calibration")


def ood_path_for(weights_path):
    """x.weights.h5 -> x.ood.npz: the out-of-distribution statistics and threshold."""
    return companion_path(weights_path, "ood", ".npz")


def neighbours_path_for(weights_path):
    """x.weights.h5 -> x.neighbours.npz: the training images of the OOD score's kNN bank,
    shown as the nearest neighbours of an input."""
    return companion_path(weights_path, "neighbours", ".npz")


def corruptions_path_for(weights_path):
    """x.weights.h5 -> x.corruptions.json: accuracy per corruption and severity
    (`evaluate --corruptions`), which the Robustness and About tabs show."""
    return companion_path(weights_path, "corruptions")


def inside_path_for(weights_path):
    """x.weights.h5 -> x.inside.npz: the top test images per channel and the feature map
    (`evaluate --write-top-activations`), read by the Inside the network tab."""
    return companion_path(weights_path, "inside", ".npz")


def shipped_files():
    """Every file under weights/ the app reads, missing ones included (the caller reports
    them): the shipped weights with their companions, the files named above, the examples."""
    weights = SHIPPED_WEIGHTS
    return [weights, config_path_for(weights), calibration_path_for(weights), ood_path_for(weights),
            corruptions_path_for(weights), inside_path_for(weights), neighbours_path_for(weights), SHIPPED_METRICS,
            SHIPPED_TEST_PREDICTIONS, SHIPPED_SAMPLE, SHIPPED_MODEL_CARD, SHIPPED_CURVES,
            *sorted(EXAMPLES_DIR.glob("*.png"))]
