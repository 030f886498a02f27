"""Command line for the training engine: `python -m cifar_demo.train --help`.

Writes into --out: checkpoint files every epoch (the run resumes from them when
started again with the same settings), then model.weights.h5 (no optimizer state),
model.config.json, history.json, model.calibration.json (the temperature fitted on the
held-out images, when --val-size > 0) and metrics.json with the official test-set accuracy.
"""

import argparse
import dataclasses
import json
import sys
import time
import typing
from pathlib import Path

from cifar_demo import training
from cifar_demo.backend import DEVICES, device_scope
from cifar_demo.data import load_cifar10
from cifar_demo.evaluate import calibrate, evaluate_predictor
from cifar_demo.predictor import Predictor
from cifar_demo.training import TrainConfig, Trainer, describe_value, save_final_weights


def flag_type(setting_field):
    """The argparse type of a TrainConfig field: its annotation, Optional[...] unwrapped."""
    kinds = [kind for kind in typing.get_args(setting_field.type) if kind is not type(None)]
    return kinds[0] if kinds else setting_field.type


def add_setting(parser, setting_field):
    """One --flag for a TrainConfig field, its help from the field's metadata and its default
    said once, in the setting's units ("--no-augment" for a boolean that defaults to on)."""
    kind = flag_type(setting_field)
    default = setting_field.default
    text = f"{setting_field.metadata['help']} (default: {describe_value(setting_field, default)})"
    options = {"default": default, "help": text.replace("%", "%%")}
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif "choices" in setting_field.metadata:
        options["choices"] = setting_field.metadata["choices"]
    else:
        options.update(type=kind, metavar={int: "N", float: "X"}.get(kind, "PATH"))
    parser.add_argument("--" + setting_field.name.replace("_", "-"), **options)


def build_parser():
    """The command line: one flag per TrainConfig field, then where the data and outputs are."""
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.train",
        description="Train the CIFAR-10 CNN with the project's recipe (SGD Nesterov, one-cycle LR, "
        "crop+flip augmentation, label smoothing). Resumes from --out's checkpoint if one exists.",
    )
    settings = parser.add_argument_group("training settings")
    for setting_field in dataclasses.fields(TrainConfig):
        add_setting(settings, setting_field)
    parser.add_argument("--data", metavar="PATH", default=None,
                        help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder for checkpoints, weights and logs")
    where = parser.add_argument_group("where it runs (not settings of the run: a run may resume elsewhere)")
    where.add_argument("--device", choices=DEVICES, default="auto",
                       help="auto: a GPU where the Keras backend (KERAS_BACKEND) sees one, else the CPU "
                       "(default: auto)")
    where.add_argument("--distribute", action="store_true",
                       help="data-parallel over all local devices with Keras' DataParallel (needs KERAS_BACKEND=jax; "
                       "the batch is split evenly over the devices)")
    return parser


def config_from_args(args):
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


class ConsolePrinter:
    """Prints a line every `every` steps and one per epoch, with throughput and ETA."""

    def __init__(self, every=50):
        self.every = every

    def __call__(self, event):
        if isinstance(event, training.RunStarted):
            resumed = f", resuming at step {event.start_step}" if event.start_step else ""
            print(f"running on {event.device}", flush=True)
            print(f"training on {event.train_images} images, validating on {event.val_images} "
                  f"({event.val_source}); {event.steps_per_epoch} steps/epoch, {event.total_steps} steps{resumed}",
                  flush=True)
        elif isinstance(event, training.BatchEnded) and (event.step % self.every == 0):
            print(f"epoch {event.epoch} step {event.step}/{event.total_steps} loss {event.loss:.4f} "
                  f"acc {event.accuracy:.3f} lr {event.learning_rate:.4f} {event.images_per_second:.0f} img/s "
                  f"eta {event.eta_seconds / 60:.1f} min", flush=True)
        elif isinstance(event, training.EpochEnded):
            print(f"== epoch {event.epoch} done in {event.seconds:.0f} s: "
                  f"loss {event.loss:.4f} acc {event.accuracy:.4f} "
                  f"val_loss {event.val_loss:.4f} val_acc {event.val_accuracy:.4f}", flush=True)
        elif isinstance(event, training.RunEnded):
            print(f"run {'stopped' if event.stopped else 'finished'} after {event.steps} steps", flush=True)


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    print("settings:\n" + config.describe(), flush=True)
    out = Path(args.out)
    started = time.time()
    try:
        config.validate()
        trainer = Trainer(config, callbacks=[ConsolePrinter()], checkpoint_dir=out, device=args.device,
                          distribute=args.distribute)  # a missing GPU or backend is reported before the data loads
        data = load_cifar10(args.data)
        result = trainer.run(data)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    weights = save_final_weights(result, out)
    # The saved weights in float32, as the app serves them, on the device the run used.
    with device_scope(trainer.device):
        predictor = Predictor.load(weights)
        if config.val_size > 0:  # held-out images exist: fit the calibration temperature on them
            calibration = calibrate(predictor, weights, data)
            predictor = Predictor(predictor.model, calibration["temperature"])
            print(f"calibration: temperature {calibration['temperature']:.4f} fitted on {calibration['fitted_on']}",
                  flush=True)
        report = evaluate_predictor(predictor, data.x_test, data.y_test)
    metrics = {
        "test_accuracy": report["accuracy"],
        "per_class_accuracy": report["per_class_accuracy"],
        "temperature": predictor.temperature,
        "steps": result.steps,
        "wall_seconds_this_session": round(time.time() - started, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"test accuracy {report['accuracy']:.4f} on {len(data.y_test)} official test images; weights in {weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
