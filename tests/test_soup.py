"""Weight averaging (cifar_demo.soup): the mean against NumPy, the command line end to end on
generated data, and the members it refuses."""

import json

import keras
import numpy as np
import pytest

from cifar_demo import soup
from cifar_demo.model import build_model, scaled_widths
from cifar_demo.predictor import Predictor
from cifar_demo.training import TrainConfig

WIDTH = 0.125


def write_member(folder, seed, **settings):
    """A run folder whose weights are a freshly initialised model (seeded) and whose settings
    are a fine-tune's of `seed`, holding out the seed-0 split unless `settings` say otherwise."""
    folder.mkdir(parents=True)
    keras.utils.set_random_seed(seed)
    model = build_model(scaled_widths(settings.get("width_mult", WIDTH)))
    # Every weight random, BatchNorm statistics included, so the mean is checked everywhere.
    model.set_weights([np.random.default_rng(seed).normal(size=w.shape).astype(np.float32) ** 2 + 0.1
                       for w in model.get_weights()])
    model.save_weights(folder / "model.weights.h5")
    config = TrainConfig(**{"width_mult": WIDTH, "val_size": 32, "seed": seed, "split_seed": 0,
                            "init_weights": "base.weights.h5", **settings})
    (folder / "model.config.json").write_text(config.to_json())
    return folder, model.get_weights()


def test_the_soup_is_the_mean_of_its_members_and_is_calibrated_on_their_held_out_images(toy_npz, tmp_path, capsys):
    members = [write_member(tmp_path / f"run{seed}", seed) for seed in (1, 2, 3)]
    out = tmp_path / "soup"
    assert soup.main([str(folder) for folder, _ in members] + ["--out", str(out), "--data", str(toy_npz)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("member ") == 3 and "soup of 3: held-out accuracy" in printed

    averaged = build_model(scaled_widths(WIDTH))
    averaged.load_weights(out / "model.weights.h5")
    for index, weight in enumerate(averaged.get_weights()):
        oracle = np.mean([weights[index] for _, weights in members], axis=0)
        np.testing.assert_allclose(weight, oracle, rtol=1e-6)

    config = TrainConfig.from_dict(json.loads((out / "model.config.json").read_text()))
    assert (config.seed, config.held_out_seed) == (1, 0)
    listed = json.loads((out / "soup.json").read_text())["members"]
    assert [member["config"]["seed"] for member in listed] == [1, 2, 3]
    calibration = json.loads((out / "model.calibration.json").read_text())
    assert "32 training images held out" in calibration["fitted_on"] and "seed 0 split" in calibration["fitted_on"]
    assert Predictor.load(out / "model.weights.h5").temperature == pytest.approx(calibration["temperature"])


def test_a_soup_of_one_model_twice_answers_as_the_model(tmp_path):
    folder, _ = write_member(tmp_path / "run", 1)
    model, _ = soup.average_weights([folder, folder / "model.weights.h5"])
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    member = Predictor.load(folder / "model.weights.h5")
    np.testing.assert_allclose(Predictor(model).predict_logits(images), member.predict_logits(images), rtol=1e-5)


@pytest.mark.parametrize("settings, message", [
    ({"width_mult": 0.25}, "only one architecture"),
    ({"init_weights": "other.weights.h5"}, "only runs from the same weights"),
    ({"split_seed": None}, "holds out other images"),
    ({"val_size": 16}, "holds out other images"),
])
def test_members_that_cannot_be_averaged_are_refused_with_the_reason(tmp_path, capsys, settings, message):
    first, _ = write_member(tmp_path / "first", 1)
    second, _ = write_member(tmp_path / "second", 2, **settings)
    assert soup.main([str(first), str(second), "--out", str(tmp_path / "soup")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "soup").exists()


def test_missing_or_unreadable_members_are_refused(tmp_path, capsys):
    first, _ = write_member(tmp_path / "first", 1)
    assert soup.main([str(first), "--out", str(tmp_path / "soup")]) == 2
    assert "at least two members" in capsys.readouterr().err
    assert soup.main([str(first), str(tmp_path / "none"), "--out", str(tmp_path / "soup")]) == 2
    assert "weights file not found" in capsys.readouterr().err
    second, _ = write_member(tmp_path / "second", 2)
    (second / "model.config.json").write_text("{not json")
    assert soup.main([str(first), str(second), "--out", str(tmp_path / "soup")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    (second / "model.weights.h5").write_bytes(b"damaged")
    (second / "model.config.json").write_text((first / "model.config.json").read_text())
    assert soup.main([str(first), str(second), "--out", str(tmp_path / "soup")]) == 2
    assert "does not hold weights for this model" in capsys.readouterr().err
