"""Accuracy under corruption (cifar_demo.robustness) and `evaluate --corruptions`, on a
tiny model and generated images."""

import json
import zlib

import numpy as np
import pytest

from cifar_demo import Predictor, evaluate
from cifar_demo.artifacts import corruptions_path_for
from cifar_demo.corruptions import CORRUPTIONS, DISPLAY_NAMES, SEVERITIES
from cifar_demo.model import build_model, scaled_widths
from cifar_demo.robustness import corruption_accuracy, format_table, load_report
from tests.conftest import toy_dataset

TEST_IMAGES = 40


@pytest.fixture(scope="module")
def toy():
    return toy_dataset(train=16, test=TEST_IMAGES, seed=2)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A tiny model's weights with the config that says its width, as training writes them."""
    folder = tmp_path_factory.mktemp("tiny")
    build_model(scaled_widths(0.125)).save_weights(folder / "tiny.weights.h5")
    (folder / "tiny.config.json").write_text(json.dumps({"width_mult": 0.125}))
    return folder / "tiny.weights.h5"


@pytest.fixture(scope="module")
def toy_npz(toy, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    np.savez(path, x_train=toy.x_train, y_train=toy.y_train, x_test=toy.x_test, y_test=toy.y_test)
    return path


def accuracy(predictor, images, labels):
    return float(np.mean(predictor.predict_proba(images).argmax(axis=1) == labels))


def test_the_report_holds_each_corruptions_accuracy_as_computed_directly(tiny_weights, toy):
    predictor = Predictor.load(tiny_weights)
    steps = []
    report = corruption_accuracy(predictor, toy.x_test, toy.y_test, seed=3, progress=lambda *step: steps.append(step))
    assert list(report["corruptions"]) == list(CORRUPTIONS) and report["severities"] == [1, 2, 3, 4, 5]
    assert report["images"] == TEST_IMAGES and report["seed"] == 3
    assert report["clean_accuracy"] == pytest.approx(accuracy(predictor, toy.x_test, toy.y_test), abs=1e-6)
    for name, row in report["corruptions"].items():
        assert row["display_name"] == DISPLAY_NAMES[name]
        expected = [accuracy(predictor, CORRUPTIONS[name](toy.x_test, severity, np.random.default_rng(
            [3, zlib.crc32(name.encode()), severity, 0])), toy.y_test) for severity in SEVERITIES]
        assert row["accuracy"] == pytest.approx(expected, abs=1e-6)
        assert row["mean"] == pytest.approx(np.mean(expected), abs=1e-6)
    means = [row["mean"] for row in report["corruptions"].values()]
    assert report["mean_corruption_accuracy"] == pytest.approx(np.mean(means), abs=1e-6)
    assert [step[:2] for step in steps] == [(done, 60) for done in range(1, 61)]
    assert steps[0][2:4] == ("gaussian_noise", 1) and steps[-1][2:4] == ("occlusion", 5)
    table = format_table(report)
    assert "Gaussian noise" in table and "mean corruption accuracy" in table
    with pytest.raises(ValueError, match="one label per image"):
        corruption_accuracy(predictor, toy.x_test, toy.y_test[:5])
    with pytest.raises(ValueError, match="one label per image"):  # (N, 1) labels would compare N x N
        corruption_accuracy(predictor, toy.x_test, toy.y_test[:, None])


def test_the_cli_writes_the_report_beside_the_weights_with_the_evaluate_paths_clean_accuracy(
        tiny_weights, toy_npz, tmp_path, capsys):
    assert evaluate.main(["--weights", str(tiny_weights), "--data", str(toy_npz), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluate.main(["--weights", str(tiny_weights), "--data", str(toy_npz), "--corruptions", "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    saved = load_report(corruptions_path_for(tiny_weights))
    assert saved == printed and corruptions_path_for(tiny_weights).name == "tiny.corruptions.json"
    assert saved["clean_accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-6)  # the oracle
    assert saved["images"] == TEST_IMAGES and saved["precision"] == "float32" and "Keras" in saved["backend"]
    assert all(len(row["accuracy"]) == 5 and all(0 <= a <= 1 for a in row["accuracy"])
               for row in saved["corruptions"].values())
    assert "corruptions: 60/60 occlusion severity 5" in captured.err

    out = tmp_path / "subset.json"
    flags = ["--weights", str(tiny_weights), "--data", str(toy_npz), "--corruptions", "--images", "10", "--seed", "4",
             "--precision", "mixed_bfloat16"]
    assert evaluate.main([*flags, "--out", str(out)]) == 0
    assert "mean corruption accuracy" in capsys.readouterr().out
    subset = load_report(out)
    assert subset["images"] == 10 and subset["seed"] == 4 and subset["precision"] == "mixed_bfloat16"


@pytest.mark.parametrize("flags, message", [
    (["--corruptions", "--tta"], "--corruptions measures accuracy under corruption only: drop --tta"),
    (["--corruptions", "--write-predictions", "p.npz"], "drop --write-predictions"),
    (["--images", "10"], "--images only go with --corruptions"),
    (["--seed", "1", "--out", "x.json"], "--seed, --out only go with --corruptions"),
    (["--corruptions", "--images", "0", "--out", "x.json"], "--images must be a positive number"),
    (["--corruptions", "--images", "100"], "covers the whole test set; pass --out"),
])
def test_incompatible_options_are_refused_with_a_message(flags, message, capsys):
    assert evaluate.main(flags) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_a_file_that_is_not_a_report_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot read the corruption report"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"accuracy": 0.5}')
    with pytest.raises(ValueError, match="is not a corruption report"):
        load_report(tmp_path / "other.json")
