import pickle

import keras
import numpy as np
import pytest

from PIL import Image

from cifar_demo import CLASSES
from cifar_demo.data import load_cifar10, write_examples
from tests.conftest import cifar10_path, requires_cifar10, toy_dataset


def save_npz(path, data):
    np.savez(path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)


def test_loads_npz_from_environment(tmp_path, monkeypatch):
    data = toy_dataset(train=20, test=10)
    save_npz(tmp_path / "c.npz", data)
    monkeypatch.setenv("CIFAR10_PATH", str(tmp_path / "c.npz"))
    loaded = load_cifar10()
    np.testing.assert_array_equal(loaded.x_train, data.x_train)
    np.testing.assert_array_equal(loaded.y_test, data.y_test)
    assert loaded.y_train.ndim == 1 and loaded.x_test.dtype == np.uint8


def test_loads_batches_folder(tmp_path):
    """The official python format: 5 train pickles + test_batch, rows of 3072 channel-major bytes."""
    data = toy_dataset(train=50, test=10)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    def dump(name, images, labels):
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": rows, b"labels": [int(v) for v in labels]}, handle)

    for i in range(5):
        dump(f"data_batch_{i + 1}", data.x_train[i * 10 : (i + 1) * 10], data.y_train[i * 10 : (i + 1) * 10])
    dump("test_batch", data.x_test, data.y_test)
    loaded = load_cifar10(folder)
    np.testing.assert_array_equal(loaded.x_train, data.x_train)
    np.testing.assert_array_equal(loaded.y_train, data.y_train)
    np.testing.assert_array_equal(loaded.x_test, data.x_test)


def test_bad_local_paths_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_cifar10(tmp_path / "nope.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="missing data_batch_1"):
        load_cifar10(tmp_path / "empty")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="y_train"):
        load_cifar10(tmp_path / "partial.npz")
    np.savez(tmp_path / "shape.npz", x_train=np.zeros((1, 28, 28), np.uint8), y_train=[0], x_test=np.zeros((1, 28, 28), np.uint8), y_test=[0])
    with pytest.raises(ValueError, match="shape"):
        load_cifar10(tmp_path / "shape.npz")


def test_offline_without_a_copy_says_how_to_fix_it(monkeypatch):
    monkeypatch.delenv("CIFAR10_PATH", raising=False)

    def offline():
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(ValueError, match="CIFAR10_PATH"):
        load_cifar10()


def test_write_examples_one_per_class(tmp_path):
    data = toy_dataset(train=10, test=200)
    paths = write_examples(data, tmp_path)
    assert len(paths) == 10
    assert [path.stem.split("_")[1] for path in paths] == list(CLASSES)
    for path in paths:
        index = int(path.stem.split("_")[0])
        assert CLASSES[data.y_test[index]] == path.stem.split("_")[1]
        np.testing.assert_array_equal(np.asarray(Image.open(path)), data.x_test[index])


@requires_cifar10
def test_real_dataset_matches_its_published_facts():
    data = load_cifar10(cifar10_path())
    assert data.x_train.shape == (50000, 32, 32, 3) and data.x_test.shape == (10000, 32, 32, 3)
    assert data.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert data.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.bincount(data.y_test).tolist() == [1000] * 10
