"""The training and evaluation command lines, end to end on a tiny generated dataset."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from cifar_demo import evaluate, train, training
from cifar_demo.model import build_model, scaled_widths
from tests.conftest import REPO


def test_train_then_evaluate(toy_npz, tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--data", str(toy_npz), "--out", str(out), "--epochs", "1", "--train-size", "64",
             "--val-size", "32", "--width-mult", "0.125", "--batch-size", "32", "--seed", "3"]
    assert train.main(flags) == 0
    printed = capsys.readouterr().out
    # settings first, result last
    assert re.search(r"^settings:\n(.*\n)*\s+seed\s+3\n", printed, re.M) and "test accuracy" in printed
    for name in ("model.weights.h5", "model.config.json", "history.json", "metrics.json",
                 "checkpoint.json", "checkpoint-epoch001.weights.h5"):
        assert (out / name).is_file(), name
    assert json.loads((out / "model.config.json").read_text())["train_size"] == 64

    assert evaluate.main(["--weights", str(out / "model.weights.h5"), "--data", str(toy_npz), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 40
    assert report["accuracy"] == pytest.approx(json.loads((out / "metrics.json").read_text())["test_accuracy"])

    bfloat16 = ["--weights", str(out / "model.weights.h5"), "--data", str(toy_npz), "--json", "--precision",
                "mixed_bfloat16"]
    assert evaluate.main(bfloat16) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 40
    for writes in (["--write-predictions", str(tmp_path / "p.npz")], ["--fit-temperature"]):
        assert evaluate.main([*bfloat16, *writes]) == 2
        assert "serves float32 answers" in capsys.readouterr().err


def test_bad_settings_and_missing_data_exit_with_a_message(toy_npz, tmp_path, capsys):
    assert train.main(["--data", str(toy_npz), "--out", str(tmp_path), "--epochs", "0"]) == 2
    assert "epochs must be an integer" in capsys.readouterr().err
    assert train.main(["--data", str(tmp_path / "none.npz"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert evaluate.main(["--weights", str(tmp_path / "none.weights.h5"), "--data", str(toy_npz)]) == 2
    assert "weights file not found" in capsys.readouterr().err


@pytest.mark.parametrize("module", [train, evaluate])
def test_help(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m cifar_demo." in capsys.readouterr().out


def test_every_training_setting_has_a_flag_that_round_trips():
    fields = dataclasses.fields(training.TrainConfig)
    parser = train.build_parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    for field in fields:
        assert "--" + field.name.replace("_", "-") in flags, field.name
    changed = training.TrainConfig(
        epochs=7, batch_size=64, train_size=1234, val_size=0, width_mult=0.5, learning_rate=0.02,
        warmup_fraction=0.3, momentum=0.8, weight_decay=1e-4, label_smoothing=0.0, augment=False,
        crop_padding=2, drawing_style=0.25, class_drawings=0.1, precision="mixed_bfloat16", seed=9,
        split_seed=3, init_weights="start.weights.h5",
    )
    assert all(getattr(changed, f.name) != f.default for f in fields)  # every flag is exercised
    argv = ["--out", "run", "--no-augment"]
    for field in fields:
        if field.name != "augment":
            argv += ["--" + field.name.replace("_", "-"), str(getattr(changed, field.name))]
    assert train.config_from_args(parser.parse_args(argv)) == changed
    assert train.config_from_args(parser.parse_args(["--out", "run"])) == training.TrainConfig()


def test_train_help_reads_right(capsys):
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--augment, --no-augment" in text and "(default: on)" in text and "True" not in text
    assert "--train-size N training images used (default: all not held out)" in text
    # once per setting, then --data and --device
    assert text.count("(default") == len(dataclasses.fields(training.TrainConfig)) + 2
    assert "(default: 128 images)" in text and "(default: 4 pixels)" in text and "None" not in text


def test_command_lines_start_without_tensorflow_log_noise():
    """TensorFlow's start-up INFO lines (see cifar_demo/quiet_logs.py) stay off the console."""
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    started = subprocess.run([sys.executable, "-c",
                              "import cifar_demo, tensorflow, sys; print('kept', file=sys.stderr)"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0 and started.stderr == "kept\n", started.stderr
    shown = subprocess.run([sys.executable, "-m", "cifar_demo.evaluate", "--help"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: python -m cifar_demo.evaluate")
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "This TensorFlow binary is optimized"):
        assert noise not in shown.stderr, shown.stderr


def test_training_with_held_out_images_calibrates_and_evaluate_reports_it(toy_npz, tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--data", str(toy_npz), "--out", str(out), "--epochs", "1", "--val-size", "32",
             "--width-mult", "0.125", "--batch-size", "32"]
    assert train.main(flags) == 0
    calibration = json.loads((out / "model.calibration.json").read_text())
    assert calibration["temperature"] > 0 and "32 training images held out" in calibration["fitted_on"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["temperature"] == pytest.approx(calibration["temperature"], rel=1e-5)
    capsys.readouterr()
    weights = str(out / "model.weights.h5")
    assert evaluate.main(["--weights", weights, "--data", str(toy_npz), "--json", "--tta", "--fit-temperature"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["temperature"] == pytest.approx(calibration["temperature"], rel=1e-3)  # same images, same fit
    assert 0 <= report["ece"] <= 1 and 0 <= report["ece_uncalibrated"] <= 1 and 0 <= report["tta_accuracy"] <= 1


def test_calibration_needs_held_out_images(toy_npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(["--data", str(toy_npz), "--out", str(out), "--epochs", "1", "--val-size", "0",
                       "--width-mult", "0.125", "--batch-size", "32"]) == 0
    assert not (out / "model.calibration.json").exists()
    weights = str(out / "model.weights.h5")
    assert evaluate.main(["--weights", weights, "--data", str(toy_npz), "--fit-temperature"]) == 2
    assert "no held-out images" in capsys.readouterr().err


def test_the_command_line_resumes_after_being_killed(toy_npz, tmp_path):
    """Killed after its first checkpoint and started again, a run ends with the same number
    of steps (and the same weights) as one that was never interrupted."""
    flags = ["-m", "cifar_demo.train", "--data", str(toy_npz), "--epochs", "30", "--val-size", "16",
             "--width-mult", "0.125", "--batch-size", "16", "--seed", "5"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, *flags, "--out", str(interrupted)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:  # the first epoch ends after its checkpoint is written
        if line.startswith("== epoch 1 done"):
            process.kill()
            break
    process.wait(60)
    state = json.loads((interrupted / "checkpoint.json").read_text())
    assert 1 <= state["epochs_completed"] < 30 and not (interrupted / "metrics.json").exists()
    resumed = subprocess.run([sys.executable, *flags, "--out", str(interrupted)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming at step" in resumed.stdout
    straight = tmp_path / "straight"
    assert train.main([*flags[2:], "--out", str(straight)]) == 0
    steps = [json.loads((run / "metrics.json").read_text())["steps"] for run in (interrupted, straight)]
    assert steps[0] == steps[1] == 30 * 5  # 80 training images / batch 16, thirty epochs
    final = [build_model(scaled_widths(0.125)) for _ in range(2)]
    for model, run in zip(final, (interrupted, straight), strict=True):
        model.load_weights(run / "model.weights.h5")
    for a, b in zip(final[0].get_weights(), final[1].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
