import pickle
import time

import keras
import numpy as np
import pytest
from PIL import Image

from cifar_demo import CLASSES
from cifar_demo import data as data_module
from cifar_demo.artifacts import SHIPPED_SAMPLE
from cifar_demo.data import (
    DataSample,
    channel_statistics,
    class_counts,
    load_cifar10,
    make_sample,
    sample_indices,
    split_training_set,
    write_examples,
)
from cifar_demo.model import CIFAR10_MEAN, CIFAR10_STD
from tests.conftest import cifar10_path, damage_largest_member, requires_cifar10, toy_dataset


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


def test_the_cached_loader_reads_each_source_once_even_from_many_threads(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    save_npz(first, toy_dataset(train=20, test=10, seed=1))
    save_npz(second, toy_dataset(train=30, test=10, seed=2))
    reads = []
    real_load = data_module.load_cifar10
    monkeypatch.setattr(data_module, "load_cifar10", lambda path=None: reads.append(path) or real_load(path))
    monkeypatch.setattr(data_module, "_cache", {})
    monkeypatch.setenv("CIFAR10_PATH", str(first))
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: data_module.load_cifar10_cached(), range(8)))
    assert len(reads) == 1 and all(copy is loaded[0] for copy in loaded)
    assert len(data_module.load_cifar10_cached(second).x_train) == 30 and len(reads) == 2
    with pytest.raises(ValueError, match="not found"):
        data_module.load_cifar10_cached(tmp_path / "missing.npz")  # errors are not cached
    assert data_module.load_cifar10_cached(str(first)) is loaded[0]


def test_a_watched_load_shows_the_download_and_returns_the_dataset(monkeypatch):
    toy = toy_dataset(train=64, test=8)
    downloaded = iter(range(0, 10**9, 40_000_000))

    def slow_load():
        time.sleep(0.3)
        return toy

    def watch(loading):
        """What a page gets from load_cifar10_showing: its lines and the dataset returned."""
        lines = []
        try:
            while True:
                lines.append(next(loading))
        except StopIteration as finished:
            return lines, finished.value

    monkeypatch.setattr(data_module, "needs_download", lambda: True)
    monkeypatch.setattr(data_module, "load_cifar10_cached", slow_load)
    monkeypatch.setattr(data_module, "download_progress", lambda: (next(downloaded), 170_498_071))
    lines, dataset = watch(data_module.load_cifar10_showing(lambda done, total: f"{done} of {total}", 0.05))
    assert dataset is toy and lines[:2] == ["0 of 170498071", "40000000 of 170498071"]

    monkeypatch.setattr(data_module, "needs_download", lambda: False)  # on this machine: no line at all
    assert watch(data_module.load_cifar10_showing(str)) == ([], toy)

    def offline():
        raise ValueError("Could not download CIFAR-10: no internet.")

    monkeypatch.setattr(data_module, "load_cifar10_cached", offline)
    for where in (False, True):
        monkeypatch.setattr(data_module, "needs_download", lambda where=where: where)
        with pytest.raises(ValueError, match="no internet"):
            watch(data_module.load_cifar10_showing(str, 0.05))


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
    small = np.zeros((1, 28, 28), np.uint8)
    np.savez(tmp_path / "shape.npz", x_train=small, y_train=[0], x_test=small, y_test=[0])
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


def test_sample_indices_draw_each_class_evenly_without_repeats():
    labels = np.random.default_rng(0).integers(0, 10, 400)
    indices = sample_indices(labels, np.random.default_rng(1), per_class=7)
    assert len(indices) == 70 and len(set(indices.tolist())) == 70
    np.testing.assert_array_equal(labels[indices], np.repeat(np.arange(10), 7))  # grouped in class order
    np.testing.assert_array_equal(indices, sample_indices(labels, np.random.default_rng(1), per_class=7))
    assert not np.array_equal(indices, sample_indices(labels, np.random.default_rng(2), per_class=7))


def test_sample_indices_refuse_a_class_with_too_few_images():
    labels = np.repeat(np.arange(10), 5)
    with pytest.raises(ValueError, match="class 0 has 5 images"):
        sample_indices(labels, np.random.default_rng(0), per_class=6)


def test_class_counts_and_channel_statistics_match_numpy():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (23, 8, 6, 3), dtype=np.uint8)
    labels = rng.integers(0, 9, 23)  # class 9 absent: still counted, as 0
    np.testing.assert_array_equal(class_counts(labels), [np.sum(labels == k) for k in range(10)])
    mean, std = channel_statistics(images, chunk=5)  # chunks that do not divide 23
    pixels = images.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-9)
    with pytest.raises(ValueError, match="non-empty"):
        channel_statistics(np.zeros((0, 32, 32, 3), np.uint8))


def test_a_sample_round_trips_through_its_file(tmp_path):
    data = toy_dataset(train=300, test=40)
    sample = make_sample(data, seed=5, per_class=3)
    np.testing.assert_array_equal(sample.images, data.x_train[sample.indices])
    np.testing.assert_array_equal(sample.train_counts, class_counts(data.y_train))
    sample.save(tmp_path / "s.npz")
    loaded = DataSample.load(tmp_path / "s.npz")
    for name in DataSample.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(sample, name))
    (tmp_path / "bad.npz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="--write-sample"):
        DataSample.load(tmp_path / "bad.npz")
    damage_largest_member(tmp_path / "s.npz")
    with pytest.raises(ValueError, match="--write-sample"):
        DataSample.load(tmp_path / "s.npz")


def test_shipped_sample_holds_ten_training_images_per_class_and_the_whole_set_statistics():
    sample = DataSample.load(SHIPPED_SAMPLE)
    assert sample.images.shape == (100, 32, 32, 3) and sample.images.dtype == np.uint8
    np.testing.assert_array_equal(sample.labels, np.repeat(np.arange(10), 10))
    assert len(set(sample.indices.tolist())) == 100 and sample.indices.max() < 50_000
    np.testing.assert_array_equal(sample.train_counts, [5000] * 10)
    np.testing.assert_array_equal(sample.test_counts, [1000] * 10)
    # The statistics measured on the data agree with the constants the model normalises with.
    np.testing.assert_allclose(sample.mean, CIFAR10_MEAN, atol=1e-3)
    np.testing.assert_allclose(sample.std, CIFAR10_STD, atol=1e-3)


@requires_cifar10
def test_shipped_sample_is_real_training_images():
    data = load_cifar10(cifar10_path())
    sample = DataSample.load(SHIPPED_SAMPLE)
    np.testing.assert_array_equal(sample.images, data.x_train[sample.indices])
    np.testing.assert_array_equal(sample.labels, data.y_train[sample.indices])


def test_split_is_deterministic_disjoint_and_seeded():
    train, val = split_training_set(1000, val_size=100, train_size=300, seed=3)
    again_train, again_val = split_training_set(1000, val_size=100, train_size=300, seed=3)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(val, again_val)
    assert len(train) == 300 and len(val) == 100 and not set(train) & set(val)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    _, other_val = split_training_set(1000, val_size=100, train_size=300, seed=4)
    assert not np.array_equal(val, other_val)
    everything, _ = split_training_set(1000, val_size=100, seed=3)
    assert set(everything) == set(range(1000)) - set(val)
    with pytest.raises(ValueError, match="exceeds"):
        split_training_set(350, val_size=100, train_size=300, seed=3)
    with pytest.raises(ValueError, match="leaves no training images"):
        split_training_set(100, val_size=100)

