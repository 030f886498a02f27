"""describe.py's words against images whose content is known by construction."""

import numpy as np
import pytest

from cifar_demo import describe

pytestmark = pytest.mark.same_on_every_backend


def solid(rgb, size=32):
    return np.full((size, size, 3), rgb, dtype=np.uint8)


@pytest.mark.parametrize(("rgb", "name"), [
    ((30, 160, 40), "green"), ((200, 30, 30), "red"), ((40, 60, 200), "blue"), ((230, 220, 40), "yellow"),
    ((240, 140, 20), "orange"), ((0, 0, 0), "black"), ((250, 250, 250), "white"), ((128, 128, 128), "grey"),
    ((120, 40, 160), "purple"), ((30, 200, 210), "cyan"), ((230, 80, 170), "pink"),
])
def test_a_solid_image_is_named_by_its_colour(rgb, name):
    assert describe.model_input(solid(rgb)) == f"32x32 input, mostly {name}"


def test_a_mixed_image_names_its_two_commonest_colours():
    image = solid((30, 160, 40))                # green...
    image[:14] = (250, 250, 250)                # ...with white over 14 of 32 rows, blue over 4
    image[14:18] = (40, 60, 200)
    assert describe.main_colours(image) == "green and white"
    image[:10] = (30, 160, 40)                  # green now over half
    assert describe.main_colours(image) == "green"


@pytest.mark.parametrize(("row", "column", "region"), [
    (2, 16, "upper middle"), (16, 16, "centre"), (29, 2, "lower left"), (16, 30, "middle right"),
    (1, 30, "upper right"),
])
def test_the_heatmap_region_is_where_its_peak_is(row, column, region):
    ys, xs = np.mgrid[:32, :32]
    blob = np.exp(-((ys - row) ** 2 + (xs - column) ** 2) / 20.0).astype(np.float32)
    assert describe.strongest_region(blob) == region
    assert describe.where_strongest(blob) == f"strongest at the {region}"


def test_a_flat_heatmap_is_spread_evenly():
    assert describe.where_strongest(np.full((8, 8), 0.5)) == "spread evenly"
    assert describe.strongest_region(np.zeros((8, 8))) == "spread evenly"


@pytest.mark.parametrize("bad", [np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.float32)])
def test_bad_images_are_refused_with_the_shape(bad):
    with pytest.raises(ValueError, match="uint8 RGB"):
        describe.model_input(bad)


def test_bad_heatmaps_are_refused_with_the_shape():
    with pytest.raises(ValueError, match="2-D map"):
        describe.strongest_region(np.zeros((2, 8)))
