"""What the Robustness tab shows, without Gradio: one input corrupted or attacked and the
model's answer on it, the shipped model's accuracy-under-corruption report, and the curves
of a session's own model on a fixed subset of the test set."""

import hashlib
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cifar_demo import CLASSES, images
from cifar_demo.adversarial import MAX_EPSILON, attack_every_epsilon, first_flip
from cifar_demo.artifacts import without_server_paths
from cifar_demo.corruptions import CORRUPTIONS, DISPLAY_NAMES, MAX_SEVERITY, SEVERITIES, SIZE, occlusion
from cifar_demo.robustness import corruption_accuracy, load_report
from cifar_demo.ui.explain_views import TOP_CLASS, explanation, ood_notice_html

CURRENT = "The current input (from Classify, Mistakes or Inside the network)"
SCALE = 8                   # the 32x32 views are shown at 256x256: a click lands on pixel (y // 8, x // 8)
SEED = 0                    # live noise, angles and directions: the same settings always show the same image
HEATMAP_OPACITY = 0.5
SUBSET = 1000               # a session's model is measured on the first SUBSET official test images
NO_INPUT = ("**No input yet.** Pick an example above, or upload, draw or open an image in the Classify or "
            "Mistakes tab: it shows here.")
METHOD_NAMES = {"pgd": "PGD (7 steps)", "fgsm": "FGSM (one step)"}


def chosen_input(choice, current, examples):
    """The input to show: the session's CurrentInput (None when it has none yet) or an example."""
    if choice == CURRENT:
        return current
    if not isinstance(choice, str) or choice not in examples:
        raise ValueError(f"unknown input {choice!r}: choose {CURRENT!r} or one of {', '.join(examples)}")
    return examples[choice]


def corruption_name(value):
    """The registry name of a corruption given by that name or its display name."""
    if not isinstance(value, str):
        raise ValueError(f"unknown corruption {value!r}: one of {', '.join(CORRUPTIONS)}")
    if value in CORRUPTIONS:
        return value
    by_display = {display: name for name, display in DISPLAY_NAMES.items()}
    if value in by_display:
        return by_display[value]
    raise ValueError(f"unknown corruption {value!r}: one of {', '.join(CORRUPTIONS)}")


def severity_level(value):
    """The severity as an int, 0-5; ValueError otherwise."""
    whole = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        isinstance(value, int) or value.is_integer())  # float(10**400) would overflow
    if not whole or not 0 <= value <= MAX_SEVERITY:
        raise ValueError(f"severity must be a whole number from 0 to {MAX_SEVERITY}, got {value!r}")
    return int(value)


def clicked_pixel(x, y):
    """(row, column) of the 32x32 input under a click at (x, y) on its enlarged view."""
    return min(max(int(y) // SCALE, 0), SIZE - 1), min(max(int(x) // SCALE, 0), SIZE - 1)


def corrupt(pixels, name, severity, center=None):
    """One uint8 (32, 32, 3) input through corruption `name` at `severity`, noise drawn from
    SEED; occlusion's square centred on `center` (row, column), the image's centre when None."""
    if name == "occlusion":
        return occlusion(pixels[None], severity, SEED, center=(SIZE // 2, SIZE // 2) if center is None else center)[0]
    return CORRUPTIONS[name](pixels[None], severity, SEED)[0]


def answer_views(predictor, detector, pixels):
    """(enlarged input, {class: probability}, Grad-CAM overlay, its caption, OOD notice html)
    for one uint8 (32, 32, 3) input: what Classify shows, for the changed image, with a
    caption short enough to sit over the map."""
    probabilities = predictor.predict_proba(pixels[None])[0]
    overlay, _ = explanation(predictor, pixels, probabilities, TOP_CLASS, HEATMAP_OPACITY, SCALE)
    top = int(probabilities.argmax())
    label = {name: float(p) for name, p in zip(CLASSES, probabilities, strict=True)}
    return (images.upscale_nearest(pixels, SCALE), label, overlay,
            f"Why {CLASSES[top]} ({probabilities[top]:.0%})? Grad-CAM: red = evidence",
            ood_notice_html(detector.assess(pixels)))


def corruption_line(shown, name, severity):
    """Which input is shown and what was done to it."""
    done = ("unchanged (severity 0)" if severity == 0
            else f"with **{DISPLAY_NAMES[name].lower()}** at severity **{severity}** of {MAX_SEVERITY}")
    return f"Showing {shown.source}, {done}."


@dataclass(frozen=True)
class Attack:
    """One input attacked at every epsilon 1-8 by one method, and the model's answers."""

    key: str                 # the input's pixels and the method: a new input or method attacks again
    clean: np.ndarray        # uint8 (32, 32, 3)
    attacked: np.ndarray     # uint8 (8, 32, 32, 3), epsilon 1-8
    probabilities: np.ndarray  # (8, 10)
    label: int               # the model's answer on the clean input
    flips_at: int | None     # the smallest epsilon that changes it


def attack_key(pixels, method):
    return f"{method}:{hashlib.sha1(pixels.tobytes()).hexdigest()}"


def attack(predictor, pixels, method, previous=None):
    """The Attack of `pixels` by `method` ("pgd" or "fgsm"), reusing `previous` when it is
    the same input and method (moving the epsilon slider only picks another of the eight)."""
    key = attack_key(pixels, method)
    if previous is not None and previous.key == key:
        return previous
    grid, attacked, label = attack_every_epsilon(predictor, pixels, method)
    probabilities = predictor.predict_proba(attacked)
    return Attack(key, pixels, attacked, probabilities, label, first_flip(grid, probabilities, label))


def perturbation_view(clean, attacked, epsilon):
    """The change the attack made (at most epsilon levels a pixel), amplified around mid-grey
    so that +-epsilon spans almost the whole range, enlarged; and a caption saying by how much."""
    gain = 127 // epsilon
    change = attacked.astype(np.int16) - clean.astype(np.int16)
    amplified = np.clip(128 + change * gain, 0, 255).astype(np.uint8)
    return images.upscale_nearest(amplified, SCALE), f"The change, amplified x{gain} (grey = none)"


def attack_line(shown, result, method, epsilon):
    """What the attack did at `epsilon`, and the smallest epsilon that flips the answer."""
    before = CLASSES[result.label]
    after = CLASSES[int(result.probabilities[epsilon - 1].argmax())]
    verdict = f"the answer is still **{after}**" if after == before else f"the answer flips: **{before} → {after}**"
    if result.flips_at is None:
        smallest = f"No ε up to {MAX_EPSILON} flips it."
    else:
        smallest = f"The smallest ε that flips it: **{result.flips_at}**."
    return (f"Showing {shown.source} attacked by {METHOD_NAMES[method]} with ε = **{epsilon}**/255 (no pixel "
            f"changes by more than {epsilon} levels; the change is shown amplified x{127 // epsilon}): "
            f"{verdict}. {smallest}")


def read_report(path):
    """(the corruption report at `path`, None), or (None, a message saying why it is not shown)."""
    try:
        return load_report(path), None
    except ValueError as error:
        return None, f"The accuracy-under-corruption figures are not available: {without_server_paths(error)}."


def report_summary(report):
    return (f"Mean corruption accuracy **{report['mean_corruption_accuracy']:.2%}** against "
            f"**{report['clean_accuracy']:.2%}** clean, over 12 corruptions at severities 1-5 on the "
            f"{report['images']:,} official test images (`python -m cifar_demo.evaluate --corruptions`).")


def report_frame(report):
    """Accuracy (%) per corruption and severity, and each corruption's mean, as a table."""
    rows = [{"corruption": row["display_name"],
             **{f"severity {s}": f"{a:.1%}" for s, a in zip(report["severities"], row["accuracy"], strict=True)},
             "mean": f"{row['mean']:.1%}"} for row in report["corruptions"].values()]
    return pd.DataFrame(rows)


class Busy(Exception):
    """A computation refused because one is already running; the message says whose."""


class OneAtATime:
    """At most one long computation on the whole server (the curves take minutes of both
    cores); a second request is refused at once, never queued."""

    def __init__(self):
        self._lock = threading.Lock()
        self._owner = None

    def start(self, owner):
        with self._lock:
            if self._owner == owner:
                raise Busy("Your model's curves are already being computed: wait for them.")
            if self._owner is not None:
                raise Busy("Another visitor's curves are being computed (one at a time on this server): "
                           "try again in a few minutes.")
            self._owner = owner

    def finish(self, owner):
        with self._lock:
            if self._owner == owner:
                self._owner = None


class SubsetReports:
    """The shipped model's report on a subset, computed once per subset (pixels and labels)
    for the whole server and kept: every session's curves are drawn beside it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reports = {}

    def get(self, predictor, subset_images, subset_labels, progress=None):
        key = hashlib.sha1(subset_images.tobytes() + subset_labels.tobytes()).hexdigest()
        with self._lock:  # one computation at a time anyway (OneAtATime): the lock costs no one
            if key not in self._reports:
                self._reports[key] = corruption_accuracy(predictor, subset_images, subset_labels, progress=progress)
            return self._reports[key]

    def has(self, subset_images, subset_labels):
        key = hashlib.sha1(subset_images.tobytes() + subset_labels.tobytes()).hexdigest()
        with self._lock:
            return key in self._reports


def subset_curves(trained, shipped, dataset, shipped_reports, progress=None, subset=SUBSET):
    """(the session's model's report, the shipped model's) on the first `subset` test
    images of `dataset`; `progress(fraction, text)` after each corruption and severity."""
    subset_images, subset_labels = dataset.x_test[:subset], dataset.y_test[:subset]
    steps = len(CORRUPTIONS) * len(SEVERITIES)
    passes = 1 if shipped_reports.has(subset_images, subset_labels) else 2

    def reporter(offset, whose):
        def report(done, total, name, severity, accuracy):
            if progress is not None:
                progress((offset + done) / (passes * steps),
                         f"{whose}: {DISPLAY_NAMES[name]}, severity {severity} ({accuracy:.0%})")
        return report

    yours = corruption_accuracy(trained, subset_images, subset_labels, progress=reporter(0, "your model"))
    theirs = shipped_reports.get(shipped, subset_images, subset_labels, progress=reporter(steps, "shipped model"))
    return yours, theirs


def subset_summary(yours, theirs):
    return (f"On the first {yours['images']:,} official test images: **your model** keeps "
            f"**{yours['mean_corruption_accuracy']:.2%}** mean corruption accuracy ({yours['clean_accuracy']:.2%} "
            f"clean), the **shipped model** {theirs['mean_corruption_accuracy']:.2%} "
            f"({theirs['clean_accuracy']:.2%} clean).")
