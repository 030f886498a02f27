"""Evaluation of weights on the official test set, and their calibration.

CLI: `python -m cifar_demo.evaluate [--tta] [--fit-temperature] [--write-predictions]`, or
`python -m cifar_demo.evaluate --corruptions [--images N]` for accuracy under corruption, or
`python -m cifar_demo.evaluate --write-top-activations` for the Inside the network tab's file.
The metrics themselves live in cifar_demo.metrics, the predictions file in
cifar_demo.predictions, accuracy under corruption in cifar_demo.robustness.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from cifar_demo.artifacts import (
    SHIPPED_TEST_PREDICTIONS,
    SHIPPED_WEIGHTS,
    calibration_path_for,
    config_path_for,
    corruptions_path_for,
    inside_path_for,
)
from cifar_demo.backend import describe, resolve_device
from cifar_demo.data import load_cifar10
from cifar_demo.inside import compute_top_activations
from cifar_demo.metrics import expected_calibration_error, fit_temperature, negative_log_likelihood, softmax, summarize
from cifar_demo.predictions import GRID_IMAGES, PredictionSet, file_sha256
from cifar_demo.predictor import Predictor
from cifar_demo.robustness import corruption_accuracy, format_table, save_report
from cifar_demo.training import TrainConfig


def evaluate_predictor(predictor, images, labels):
    """summarize() of the predictor's calibrated probabilities on labelled images."""
    return summarize(predictor.predict_proba(images), labels)


def evaluate_logits(logits, labels, temperature):
    """summarize() of softmax(logits / T), with calibration error and NLL at T and at 1."""
    calibrated, raw = softmax(logits, temperature), softmax(logits)
    report = summarize(calibrated, labels)
    report.update(
        temperature=temperature,
        ece=expected_calibration_error(calibrated, labels),
        ece_uncalibrated=expected_calibration_error(raw, labels),
        nll=negative_log_likelihood(calibrated, labels),
        nll_uncalibrated=negative_log_likelihood(raw, labels),
    )
    return report


def format_report(report, weights):
    lines = [f"weights: {weights}",
             f"top-1 accuracy: {report['accuracy'] * 100:.2f}% on {report['images']} official test images"]
    if "tta_accuracy" in report:
        lines.append(f"with horizontal-flip test-time augmentation: {report['tta_accuracy'] * 100:.2f}%")
    lines.append(f"expected calibration error (15 bins): {report['ece'] * 100:.2f}% at temperature "
                 f"{report['temperature']:.3f}, {report['ece_uncalibrated'] * 100:.2f}% without")
    lines.append("per-class accuracy:")
    lines += [f"  {name:<10} {accuracy * 100:6.2f}%" for name, accuracy in report["per_class_accuracy"].items()]
    return "\n".join(lines)


def calibrate(predictor, weights_path, data):
    """Fits a temperature to the predictor's logits on the training images its run held
    out (the split is rebuilt from the config saved beside the weights; never the test
    set) and writes it to `<name>.calibration.json`, where Predictor.load finds it.
    Returns the record written; `Predictor(model, record["temperature"])` applies it."""
    config_path = config_path_for(weights_path)
    if not config_path.is_file():
        raise ValueError(f"{config_path} not found: it says which training images the run held out")
    config = TrainConfig.from_dict(json.loads(config_path.read_text()))
    if config.val_size == 0:
        raise ValueError(f"{weights_path} was trained on every training image: no held-out images to calibrate on")
    _, val_indices = config.held_out_split(len(data.x_train))
    logits = predictor.predict_logits(data.x_train[val_indices])
    labels = data.y_train[val_indices]
    temperature = fit_temperature(logits, labels)
    record = {
        "temperature": round(temperature, 6),
        "fitted_on": f"{len(val_indices):,} training images held out of training (seed {config.held_out_seed} split)",
        "held_out_nll_before": round(negative_log_likelihood(softmax(logits), labels), 5),
        "held_out_nll_after": round(negative_log_likelihood(softmax(logits, temperature), labels), 5),
    }
    calibration_path_for(weights_path).write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.evaluate",
        description="Evaluate weights on the official CIFAR-10 test set (10,000 images): accuracy, "
        "per-class accuracy, confusion matrix, calibration error; optionally flip-TTA accuracy, or "
        "(--corruptions) accuracy under each corruption of the Robustness tab at severities 1-5.",
    )
    parser.add_argument("--weights", default=None, help="a .weights.h5 file (default: the shipped weights)")
    parser.add_argument("--data", default=None,
                        help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (with the confusion matrix)")
    parser.add_argument("--tta", action="store_true",
                        help="also measure accuracy with horizontal-flip test-time augmentation")
    parser.add_argument("--fit-temperature", action="store_true",
                        help="first fit the calibration temperature on the run's held-out training images and "
                        "write it beside the weights (<name>.calibration.json)")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                        help="the network's compute precision: mixed_bfloat16 scores several times faster on CPUs "
                        "with AMX and on GPUs (bench/RESULTS.md), with answers a little off float32's; the "
                        "figures of record are float32's (default: float32)")
    parser.add_argument("--write-predictions", nargs="?", const="", default=None, metavar="NPZ",
                        help="also write the test-set probabilities and the mistakes' pixels for the Mistakes tab "
                        "(default file, for the shipped weights only: weights/test_predictions.npz)")
    parser.add_argument("--write-top-activations", action="store_true",
                        help="instead: the test images that activate each channel of each convolution "
                        "most, and the PCA feature map of the pooled features, written beside the weights "
                        "(<name>.inside.npz) for the Inside the network tab")
    parser.add_argument("--corruptions", action="store_true",
                        help="instead: accuracy under every corruption of cifar_demo.corruptions at severities 1-5 "
                        "(12 x 5 passes over the test images), written beside the weights (<name>.corruptions.json) "
                        "with the precision it was computed in: float32 takes about 30 min on a 2-core CPU, "
                        "mixed_bfloat16 about a third of that where the CPU has AMX (bench/RESULTS.md, robustness)")
    parser.add_argument("--images", type=int, default=None, metavar="N",
                        help="with --corruptions: the first N test images (default: all of them)")
    parser.add_argument("--seed", type=int, default=None,
                        help="with --corruptions: the corruptions' seed (default: 0)")
    parser.add_argument("--out", default=None, metavar="JSON",
                        help="with --corruptions: write the report here instead of beside the weights")
    args = parser.parse_args(argv)

    weights = Path(args.weights) if args.weights else SHIPPED_WEIGHTS
    refusal = _refusal(args)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    try:
        data = load_cifar10(args.data)
        predictor = Predictor.load(weights, precision=args.precision)
        if args.fit_temperature:
            record = calibrate(predictor, weights, data)
            predictor = Predictor(predictor.model, record["temperature"])
            print(f"temperature {record['temperature']:.4f} fitted on {record['fitted_on']}: held-out NLL "
                  f"{record['held_out_nll_before']:.4f} -> {record['held_out_nll_after']:.4f}", file=sys.stderr)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    shown_weights = str(args.weights) if args.weights else f"{SHIPPED_WEIGHTS.parent.name}/{SHIPPED_WEIGHTS.name}"
    if args.write_top_activations:
        return _write_top_activations(predictor, data, weights)
    if args.corruptions:
        return _evaluate_corruptions(args, predictor, data, weights, shown_weights)
    logits = predictor.predict_logits(data.x_test)
    report = evaluate_logits(logits, data.y_test, predictor.temperature)
    if args.tta:
        report["tta_accuracy"] = summarize(predictor.predict_proba(data.x_test, tta=True), data.y_test)["accuracy"]
    report["weights"] = shown_weights
    print(json.dumps(report, indent=2) if args.json else format_report(report, report["weights"]))
    if args.write_predictions is not None:
        out = Path(args.write_predictions or SHIPPED_TEST_PREDICTIONS)
        probabilities = softmax(logits, predictor.temperature).astype("float32")
        predictions = PredictionSet.from_arrays(probabilities, data.y_test, data.x_test, file_sha256(weights))
        predictions.save(out)
        print(f"wrote {out}: probabilities of {len(data.y_test):,} test images and the pixels of "
              f"{len(predictions.image_indices):,} of them (mistakes and the first {GRID_IMAGES})", file=sys.stderr)
    return 0


def _refusal(args):
    """Why these options cannot go together, or None."""
    if args.write_predictions == "" and args.weights:
        return ("--write-predictions needs a file name for weights other than the shipped ones "
                "(weights/test_predictions.npz belongs to the shipped weights)")
    if args.precision != "float32" and (args.write_predictions is not None or args.fit_temperature):
        return ("--write-predictions and --fit-temperature write what the app uses, which serves float32 "
                "answers; drop --precision")
    if args.write_top_activations:
        named = [flag for flag, given in (("--tta", args.tta), ("--fit-temperature", args.fit_temperature),
                                          ("--write-predictions", args.write_predictions is not None),
                                          ("--corruptions", args.corruptions), ("--json", args.json),
                                          ("--precision", args.precision != "float32"))
                 if given]
        if named:
            return f"--write-top-activations writes only the top-activations file: drop {', '.join(named)}"
    if not args.corruptions:
        named = [flag for flag, given in (("--images", args.images is not None), ("--seed", args.seed is not None),
                                          ("--out", args.out is not None)) if given]
        return f"{', '.join(named)} only go with --corruptions" if named else None
    named = [flag for flag, given in (("--tta", args.tta), ("--fit-temperature", args.fit_temperature),
                                      ("--write-predictions", args.write_predictions is not None)) if given]
    if named:
        return f"--corruptions measures accuracy under corruption only: drop {', '.join(named)}"
    if args.images is not None and args.images < 1:
        return f"--images must be a positive number of test images, got {args.images}"
    if args.out is None and args.images is not None and not args.weights:
        return ("the shipped weights' corruption report covers the whole test set; "
                "pass --out for a report on --images")
    return None


def _write_top_activations(predictor, data, weights):
    """The Inside the network tab's file beside the weights, with a progress line per chunk."""
    started = time.perf_counter()

    def progress(done, total):
        print(f"top activations: {done:,}/{total:,} test images ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)

    top = compute_top_activations(predictor, data.x_test, data.y_test, file_sha256(weights), progress)
    out = inside_path_for(weights)
    top.save(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): the top {len(next(iter(top.indices.values()))[0])} "
          f"test images of {sum(len(v) for v in top.indices.values())} channels ({', '.join(top.layers)}), "
          f"{len(top.image_indices):,} distinct images; feature map on {top.axes.shape[0]} principal axes "
          f"({top.explained[:2].sum():.0%} of the variance on the first two, {top.explained.sum():.0%} on all)")
    return 0


def _evaluate_corruptions(args, predictor, data, weights, shown_weights):
    """Accuracy under every corruption and severity, with a progress line per step;
    writes the report (beside the weights or to --out) and prints it."""
    count = len(data.x_test) if args.images is None else min(args.images, len(data.x_test))
    started = time.perf_counter()

    def progress(done, total, name, severity, accuracy):
        elapsed = time.perf_counter() - started
        print(f"corruptions: {done}/{total} {name} severity {severity}: {accuracy * 100:.2f}% "
              f"({elapsed / 60:.1f} min, about {elapsed / done * (total - done) / 60:.1f} min left)",
              file=sys.stderr, flush=True)

    report = corruption_accuracy(predictor, data.x_test[:count], data.y_test[:count], args.seed or 0, progress)
    report.update(weights=shown_weights, precision=args.precision, backend=describe(resolve_device("auto")))
    out = Path(args.out) if args.out else corruptions_path_for(weights)
    save_report(report, out)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    print(f"wrote {out} in {report['seconds'] / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
