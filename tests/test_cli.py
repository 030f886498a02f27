"""The training and evaluation command lines, end to end on a tiny generated dataset."""

import json

import numpy as np
import pytest

from cifar_demo import evaluate, train
from tests.conftest import toy_dataset


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    data = toy_dataset(train=96, test=40)
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    np.savez(path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    return path


def test_train_then_evaluate(toy_npz, tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--data", str(toy_npz), "--out", str(out), "--epochs", "1", "--train-size", "64",
             "--val-size", "32", "--width-mult", "0.125", "--batch-size", "32", "--seed", "3"]
    assert train.main(flags) == 0
    printed = capsys.readouterr().out
    assert '"seed": 3' in printed and "test accuracy" in printed  # config printed first, result last
    for name in ("model.weights.h5", "model.config.json", "history.json", "metrics.json", "checkpoint.weights.h5"):
        assert (out / name).is_file(), name
    assert json.loads((out / "model.config.json").read_text())["train_size"] == 64

    assert evaluate.main(["--weights", str(out / "model.weights.h5"), "--data", str(toy_npz), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 40
    assert report["accuracy"] == pytest.approx(json.loads((out / "metrics.json").read_text())["test_accuracy"])


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
