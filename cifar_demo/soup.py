"""Weight averaging, a "model soup" (Wortsman et al., ICML 2022): runs fine-tuned from the same
weights with different seeds stay in one basin of the loss, and the mean of their weights is
usually more accurate than any one of them, at no cost when serving. The shipped weights are
such a mean (model card).

    python -m cifar_demo.soup RUN_DIR RUN_DIR [...] --out DIR

Each RUN_DIR is a training run's output folder (its model.weights.h5 and model.config.json) or a
weights file with its config beside it. The members must share the architecture, the weights
they were fine-tuned from and the held-out split, so the soup's held-out images stay unseen:
--out gets model.weights.h5, model.config.json (the first member's settings), soup.json (every
member's settings) and model.calibration.json (the temperature fitted on those held-out images).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from cifar_demo.artifacts import config_path_for
from cifar_demo.data import load_cifar10
from cifar_demo.evaluate import calibrate, evaluate_logits
from cifar_demo.model import build_model, scaled_widths
from cifar_demo.predictor import Predictor
from cifar_demo.training import CONFIG_FILE, FINAL_WEIGHTS, TrainConfig

SOUP_FILE = "soup.json"


def weights_path_of(member):
    """A run folder or a weights file -> the weights file."""
    member = Path(member)
    return member / FINAL_WEIGHTS if member.is_dir() else member


def member_config(weights_path):
    """The TrainConfig saved beside a member's weights; ValueError when it is missing or unreadable."""
    config_path = config_path_for(weights_path)
    try:
        return TrainConfig.from_dict(json.loads(config_path.read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{config_path}: the settings beside {weights_path} cannot be read ({error})") from None


def check_members(configs, paths):
    """Raises ValueError unless the members can be averaged: at least two, one architecture, one
    starting point, one held-out split."""
    if len(configs) < 2:
        raise ValueError(f"a soup needs at least two members, got {len(configs)}")
    first = configs[0]
    for config, path in zip(configs[1:], paths[1:], strict=True):
        if config.width_mult != first.width_mult:
            raise ValueError(f"{path} has width_mult {config.width_mult}, the first member {first.width_mult}: "
                             "only one architecture can be averaged")
        if config.init_weights != first.init_weights:
            raise ValueError(f"{path} was fine-tuned from {config.init_weights}, the first member from "
                             f"{first.init_weights}: only runs from the same weights share a basin")
        split = (config.val_size, config.train_size, config.held_out_seed)
        if split != (first.val_size, first.train_size, first.held_out_seed):
            raise ValueError(f"{path} holds out other images than the first member (val_size, train_size, split "
                             f"seed {split}, not {(first.val_size, first.train_size, first.held_out_seed)}): "
                             "train the members with one --split-seed")


def average_weights(paths):
    """(model, configs): a float32 model holding the mean of every member's weights, BatchNorm
    statistics included, and each member's TrainConfig."""
    paths = [weights_path_of(member) for member in paths]
    for path in paths:
        if not path.is_file():
            raise ValueError(f"weights file not found: {path}")
    configs = [member_config(path) for path in paths]
    check_members(configs, paths)
    model = build_model(scaled_widths(configs[0].width_mult))
    total = None
    for path in paths:
        try:
            model.load_weights(path)
        except Exception as error:
            raise ValueError(f"{path} does not hold weights for this model: {error}") from None
        weights = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights, strict=True)]
    model.set_weights([(t / len(paths)).astype(np.float32) for t in total])
    return model, configs


def held_out_report(predictor, data, config):
    """evaluate_logits() at the predictor's temperature on the run's held-out training images."""
    _, val_indices = config.held_out_split(len(data.x_train))
    logits = predictor.predict_logits(data.x_train[val_indices])
    return evaluate_logits(logits, data.y_train[val_indices], predictor.temperature)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cifar_demo.soup", description=__doc__.split("\n\n")[0])
    parser.add_argument("members", nargs="+", help="run folders (or .weights.h5 files with their config beside)")
    parser.add_argument("--out", required=True, help="folder for the averaged weights and their companions")
    parser.add_argument("--data", default=None,
                        help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    args = parser.parse_args(argv)
    try:
        model, configs = average_weights(args.members)
        if configs[0].val_size == 0:
            raise ValueError("the members held no images out: nothing to calibrate the soup on")
        data = load_cifar10(args.data)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / FINAL_WEIGHTS
    model.save_weights(weights)
    (out / CONFIG_FILE).write_text(configs[0].to_json())
    members = [{"weights": str(weights_path_of(member)), "config": json.loads(config.to_json())}
               for member, config in zip(args.members, configs, strict=True)]
    (out / SOUP_FILE).write_text(json.dumps({"members": members}, indent=2) + "\n")
    for member in members:
        report = held_out_report(Predictor.load(member["weights"]), data, configs[0])
        print(f"member {member['weights']}: held-out accuracy {report['accuracy']:.4f}, NLL {report['nll']:.4f}")
    predictor = Predictor.load(weights)
    calibration = calibrate(predictor, weights, data)
    report = held_out_report(Predictor(predictor.model, calibration["temperature"]), data, configs[0])
    print(f"soup of {len(members)}: held-out accuracy {report['accuracy']:.4f}, NLL {report['nll']:.4f} "
          f"(temperature {calibration['temperature']:.4f}); weights in {weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
