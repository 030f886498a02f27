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
from pathlib import Path

from cifar_demo import training
from cifar_demo.data import load_cifar10
from cifar_demo.evaluate import calibrate, evaluate_predictor
from cifar_demo.model import PRECISIONS
from cifar_demo.predictor import Predictor
from cifar_demo.training import TrainConfig, Trainer, save_final_weights


def parse_args(argv=None):
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.train",
        description="Train the CIFAR-10 CNN with the project's recipe (SGD Nesterov, one-cycle LR, "
        "crop+flip augmentation, label smoothing). Resumes from --out's checkpoint if one exists.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the training images")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per optimizer step")
    parser.add_argument("--train-size", type=int, default=None, help="training images to use (default: all not held out)")
    parser.add_argument("--val-size", type=int, default=defaults.val_size,
                        help="training images held out for validation; 0 trains on all 50,000 and monitors the official test set")
    parser.add_argument("--width-mult", type=float, default=defaults.width_mult, help="multiplier on the 64/128/256 stage widths")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="peak SGD learning rate")
    parser.add_argument("--warmup-fraction", type=float, default=defaults.warmup_fraction, help="fraction of steps warming the LR up")
    parser.add_argument("--momentum", type=float, default=defaults.momentum, help="Nesterov momentum")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="decoupled weight decay per unit LR")
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing, help="label smoothing")
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="turn off crop+flip augmentation")
    parser.add_argument("--crop-padding", type=int, default=defaults.crop_padding, help="padding (pixels) before the random crop")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                        help="float32, or mixed_bfloat16 (bf16 compute, float32 weights); see bench/train_throughput.py")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument("--init-weights", default=None, help="fine-tune from these .weights.h5 instead of starting from scratch")
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--out", required=True, help="output folder for checkpoints, weights and logs")
    return parser.parse_args(argv)


class ConsolePrinter:
    """Prints a line every `every` steps and one per epoch, with throughput and ETA."""

    def __init__(self, every=50):
        self.every = every

    def __call__(self, event):
        if isinstance(event, training.RunStarted):
            resumed = f", resuming at step {event.start_step}" if event.start_step else ""
            print(f"training on {event.train_images} images, validating on {event.val_images} "
                  f"({event.val_source}); {event.steps_per_epoch} steps/epoch, {event.total_steps} steps{resumed}", flush=True)
        elif isinstance(event, training.BatchEnded) and (event.step % self.every == 0):
            print(f"epoch {event.epoch} step {event.step}/{event.total_steps} loss {event.loss:.4f} "
                  f"acc {event.accuracy:.3f} lr {event.learning_rate:.4f} {event.images_per_second:.0f} img/s "
                  f"eta {event.eta_seconds / 60:.1f} min", flush=True)
        elif isinstance(event, training.EpochEnded):
            print(f"== epoch {event.epoch} done in {event.seconds:.0f} s: loss {event.loss:.4f} acc {event.accuracy:.4f} "
                  f"val_loss {event.val_loss:.4f} val_acc {event.val_accuracy:.4f}", flush=True)
        elif isinstance(event, training.RunEnded):
            print(f"run {'stopped' if event.stopped else 'finished'} after {event.steps} steps", flush=True)


def main(argv=None):
    args = parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**values)
    print("config:\n" + config.to_json(), flush=True)
    out = Path(args.out)
    started = time.time()
    try:
        config.validate()
        data = load_cifar10(args.data)
        result = Trainer(config, callbacks=[ConsolePrinter()], checkpoint_dir=out).run(data)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    weights = save_final_weights(result, out)
    predictor = Predictor(result.model)
    if config.val_size > 0:  # held-out images exist: fit the calibration temperature on them
        calibration = calibrate(predictor, weights, data)
        predictor = Predictor(result.model, calibration["temperature"])
        print(f"calibration: temperature {calibration['temperature']:.4f} fitted on {calibration['fitted_on']}", flush=True)
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
