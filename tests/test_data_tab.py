"""The Data tab's views on the shipped sample and on generated data (no dataset download)."""

import numpy as np
import pytest

from cifar_demo import CLASSES, data
from cifar_demo.data import DataSample, make_sample
from cifar_demo.training import TrainConfig, augment_images
from cifar_demo.ui import data_tab
from tests.conftest import toy_dataset


@pytest.fixture(scope="module")
def sample():
    return DataSample.load()


def test_preview_is_the_training_engines_augmentation_for_the_same_seed(sample):
    image = sample.images[17]
    preview = data_tab.augmentation_preview(image, seed=42)
    engine = augment_images(np.repeat(image[None], 16, axis=0), np.random.default_rng(42),
                            padding=TrainConfig().crop_padding)
    np.testing.assert_array_equal(preview, engine)
    assert not np.array_equal(preview, data_tab.augmentation_preview(image, seed=43))


def test_every_preview_version_is_a_padded_crop_of_the_image_possibly_mirrored(sample):
    """Oracle independent of the implementation: each version equals one of the
    (2 * padding + 1)^2 windows of the reflect-padded image, or its mirror."""
    image = sample.images[3]
    padding = data_tab.RECIPE.crop_padding
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)), mode="reflect")
    offsets = range(2 * padding + 1)
    windows = [padded[top : top + 32, left : left + 32] for top in offsets for left in offsets]
    candidates = windows + [window[:, ::-1] for window in windows]
    versions = data_tab.augmentation_preview(image, seed=7)
    assert all(any(np.array_equal(version, candidate) for candidate in candidates) for version in versions)
    assert len({version.tobytes() for version in versions}) > 8  # they really differ


def test_mosaic_places_each_tile_enlarged_on_white():
    tiles = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    sheet = data_tab.mosaic(tiles, columns=4, scale=2, gap=3)
    assert sheet.shape == (2 * 64 + 3, 4 * 64 + 3 * 3, 3)
    np.testing.assert_array_equal(sheet[67 : 67 + 64 : 2, 0:64:2], tiles[4])  # second row, first column
    assert (sheet[67:, 67:] == 255).all()  # the empty cells stay white


def test_class_pages_from_the_sample(sample, monkeypatch):
    monkeypatch.setattr(data_tab, "full_dataset_ready", lambda: False)
    items, line, shown, page = data_tab.class_page("cat", 3, sample, use_full=False)
    assert page == -1 and len(items) == 10  # "Next" from here opens the full set's first page
    assert "1-10 of 10" in line and "not on this machine" in line
    cat = CLASSES.index("cat")
    for (index, picture), caption in zip(shown, (caption for _, caption in items), strict=True):
        position = int(np.flatnonzero(sample.indices == index)[0])
        assert sample.labels[position] == cat and caption == f"#{index}"
        np.testing.assert_array_equal(picture, sample.images[position])


def test_a_cifar10_path_naming_nothing_leaves_the_sample_browsable(sample, tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nothing-here.npz"))
    assert not data.needs_download() and not data.on_this_machine()  # no download, and no file either
    assert not data_tab.full_dataset_ready()
    _, line, _, page = data_tab.class_page("cat", 0, sample, use_full=data_tab.full_dataset_ready())
    assert page == -1 and "not on this machine" in line
    (tmp_path / "nothing-here.npz").write_bytes(b"")
    assert data_tab.full_dataset_ready()  # named and there: the full set's pages (its errors are its own)


def test_class_pages_from_the_full_set(sample, monkeypatch):
    dataset = toy_dataset(train=2000, test=10, seed=4)
    monkeypatch.setattr(data, "load_cifar10_cached", lambda: dataset)
    frogs = np.flatnonzero(dataset.y_train == CLASSES.index("frog"))
    pages = -(-len(frogs) // data_tab.PAGE_SIZE)
    items, line, shown, page = data_tab.class_page("frog", 99, sample, use_full=True)  # past the end: the last page
    assert page == pages - 1 and f"of {len(frogs):,} training images" in line and f"page {pages} of {pages}" in line
    assert [index for index, _ in shown] == frogs[page * data_tab.PAGE_SIZE :].tolist()
    for index, picture in shown:
        np.testing.assert_array_equal(picture, dataset.x_train[index])


def test_statistics_table_shows_measured_values_beside_the_models():
    sample = make_sample(toy_dataset(train=200, test=20), per_class=2)
    table = data_tab.statistics_table(sample)
    assert table["channel"].tolist() == ["red", "green", "blue"]
    assert table["mean (0-255)"].tolist() == [f"{value:.2f}" for value in sample.mean]
    assert table["model subtracts"].tolist() == ["125.31", "122.95", "113.87"]
