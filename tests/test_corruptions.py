"""The corruption functions: the contract every one keeps, and each against a direct
Pillow or NumPy implementation of its definition (the oracle) on real images."""

import colorsys
import inspect
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cifar_demo import corruptions
from cifar_demo.corruptions import CORRUPTIONS, DISPLAY_NAMES, MAX_SEVERITY

NAMES = list(CORRUPTIONS)
RANDOM = {"gaussian_noise", "shot_noise", "motion_blur", "rotate", "translate", "occlusion"}
ALL_SEVERITIES = range(MAX_SEVERITY + 1)


@pytest.fixture(scope="module")
def few(shipped_sample):
    return shipped_sample[:6]


def test_the_registry_lists_exactly_the_public_functions_with_the_contract_signature():
    public = {name for name, member in inspect.getmembers(corruptions, inspect.isfunction)
              if member.__module__ == corruptions.__name__ and not name.startswith("_")}
    assert set(CORRUPTIONS) == public
    assert list(DISPLAY_NAMES) == NAMES and len(NAMES) == 12
    for name, function in CORRUPTIONS.items():
        assert function.__name__ == name
        parameters = list(inspect.signature(function).parameters.values())
        assert [p.name for p in parameters[:3]] == ["batch", "severity", "rng"]
        assert all(p.default is not inspect.Parameter.empty for p in parameters[3:]), name
    with pytest.raises(TypeError):
        CORRUPTIONS["identity"] = lambda batch, severity, rng: batch


@pytest.mark.parametrize("name", NAMES)
def test_severity_0_is_the_identity_and_every_severity_keeps_shape_dtype_and_range(name, shipped_sample):
    function = CORRUPTIONS[name]
    clean = function(shipped_sample, 0, 0)
    np.testing.assert_array_equal(clean, shipped_sample)
    assert not np.shares_memory(clean, shipped_sample)
    for severity in ALL_SEVERITIES:
        out = function(shipped_sample, severity, np.random.default_rng(severity))
        assert out.shape == shipped_sample.shape and out.dtype == np.uint8
        assert function(shipped_sample[:0], severity, 0).shape == (0, 32, 32, 3)
    assert function(shipped_sample, 3.0, 0).tolist() == function(shipped_sample, 3, 0).tolist()  # a slider's float


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_images_and_other_seeds_differ_only_where_drawn(name, shipped_sample):
    function = CORRUPTIONS[name]
    first = function(shipped_sample, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(function(shipped_sample, 3, np.random.default_rng(7)), first)
    np.testing.assert_array_equal(function(shipped_sample, 3, 7), first)  # an integer seed is the same Generator
    other = function(shipped_sample, 3, np.random.default_rng(8))
    assert (not np.array_equal(other, first)) == (name in RANDOM)


@pytest.mark.parametrize("name", NAMES)
def test_severity_is_monotone_in_the_mean_absolute_difference_from_the_clean_images(name, shipped_sample):
    distances = [np.abs(CORRUPTIONS[name](shipped_sample, severity, 0).astype(int) - shipped_sample).mean()
                 for severity in ALL_SEVERITIES]
    assert distances[0] == 0 < distances[1] < distances[MAX_SEVERITY], distances
    assert all(later >= earlier for earlier, later in zip(distances, distances[1:], strict=False)), distances


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [-1, 6, 2.5, True, "3", None])
def test_a_bad_severity_names_the_corruption_and_the_range(name, severity, few):
    with pytest.raises(ValueError, match=rf"^{name}: severity must be an integer from 0 to 5, got"):
        CORRUPTIONS[name](few, severity, 0)


@pytest.mark.parametrize("name", NAMES)
def test_bad_images_and_bad_rng_are_refused(name, few):
    for bad in (few.astype(np.float32), few[0], few[:, :16]):
        with pytest.raises(ValueError, match=rf"^{name}: takes uint8 images of shape \(N, 32, 32, 3\)"):
            CORRUPTIONS[name](bad, 1, 0)
    with pytest.raises(ValueError, match=rf"^{name}: rng must be a numpy Generator or an integer seed"):
        CORRUPTIONS[name](few, 1, None)


def to_levels(unit):
    """[0, 1] -> the exact level in 0..255, before rounding."""
    return np.clip(np.asarray(unit, dtype=np.float64), 0, 1) * 255.0


def assert_rounds(out, exact):
    """Each output level is the nearest to the oracle's exact value (either way at a tie:
    float32 arithmetic is allowed 0.001 of a level)."""
    assert out.dtype == np.uint8
    assert np.abs(out.astype(np.float64) - exact).max() <= 0.501


@pytest.mark.parametrize("severity", range(1, 6))
def test_gaussian_and_shot_noise_match_an_independent_draw_with_the_same_seed(severity, few):
    scale = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    noise = np.random.default_rng(11).normal(size=few.shape, scale=scale)
    expected = to_levels(np.clip(few / 255.0 + noise, 0, 1))
    assert_rounds(corruptions.gaussian_noise(few, severity, 11), expected)
    photons = [500, 250, 100, 75, 50][severity - 1]
    counts = np.random.default_rng(12).poisson(few / 255.0 * photons)
    expected = to_levels(np.clip(counts / photons, 0, 1))
    assert_rounds(corruptions.shot_noise(few, severity, 12), expected)


def filter_image(image, kernel, pad_mode):
    """Correlates each channel with `kernel` (odd square) pixel by pixel, borders padded by
    np.pad's `pad_mode`: the textbook loop."""
    reach = kernel.shape[0] // 2
    padded = np.pad(image.astype(np.float64), ((reach, reach), (reach, reach), (0, 0)), mode=pad_mode)
    out = np.zeros(image.shape)
    for row in range(image.shape[0]):
        for col in range(image.shape[1]):
            window = padded[row : row + kernel.shape[0], col : col + kernel.shape[1]]
            out[row, col] = np.tensordot(kernel, window, axes=([0, 1], [0, 1]))
    return out


@pytest.mark.parametrize("severity", range(1, 6))
def test_defocus_blur_matches_cifar10c_disk_filtered_pixel_by_pixel(severity, few):
    radius, alias_blur = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    grid = np.arange(-8, 9)
    x, y = np.meshgrid(grid, grid)
    disk = (x**2 + y**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    gauss = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias_blur**2))
    kernel = filter_image(disk[..., None], np.outer(gauss, gauss) / gauss.sum() ** 2, "reflect")[..., 0]
    expected = np.stack([to_levels(filter_image(image, kernel, "reflect") / 255.0) for image in few[:2]])
    assert_rounds(corruptions.defocus_blur(few[:2], severity, 0), expected)


@pytest.mark.parametrize("severity", range(1, 6))
def test_motion_blur_matches_a_line_kernel_filtered_pixel_by_pixel(severity, few):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    angles = np.random.default_rng(5).uniform(-45, 45, size=2)
    expected = []
    for image, angle in zip(few[:2], angles, strict=True):
        kernel = np.zeros((2 * 2 * radius + 1,) * 2)
        weights = [np.exp(-(i * i) / (2 * sigma * sigma)) for i in range(2 * radius + 1)]
        for i, weight in enumerate(weights):  # ImageMagick's offsets: ceil(i * direction - 0.5)
            down = int(np.ceil(i * np.sin(np.radians(angle)) - 0.5))
            right = int(np.ceil(i * np.cos(np.radians(angle)) - 0.5))
            kernel[2 * radius + down, 2 * radius + right] += weight / sum(weights)
        expected.append(to_levels(filter_image(image, kernel, "edge") / 255.0))
    assert_rounds(corruptions.motion_blur(few[:2], severity, 5), np.stack(expected))


def hsv_oracle(images, change):
    """Each pixel through colorsys: RGB -> HSV, `change`(h, s, v), HSV -> RGB."""
    out = np.empty(images.shape)
    for index in np.ndindex(images.shape[:3]):
        h, s, v = colorsys.rgb_to_hsv(*(images[index] / 255.0))
        out[index] = to_levels(colorsys.hsv_to_rgb(*change(h, s, v)))
    return out


@pytest.mark.parametrize("severity", range(1, 6))
def test_brightness_and_saturation_match_colorsys_pixel_by_pixel(severity, few):
    images = np.concatenate([few[:2], np.zeros((1, 32, 32, 3), np.uint8), np.full((1, 32, 32, 3), 90, np.uint8)])
    shift = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    expected = hsv_oracle(images, lambda h, s, v: (h, s, min(v + shift, 1.0)))
    assert_rounds(corruptions.brightness(images, severity, 0), expected)
    factor, offset = [(1.5, 0), (1.75, 0.05), (2, 0.1), (2.25, 0.15), (2.5, 0.2)][severity - 1]
    expected = hsv_oracle(images, lambda h, s, v: (h, min(s * factor + offset, 1.0), v))
    assert_rounds(corruptions.saturation(images, severity, 0), expected)


@pytest.mark.parametrize("severity", range(1, 6))
def test_contrast_matches_cifar10c_per_image(severity, few):
    keep = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    expected = []
    for image in few:
        unit = image / 255.0
        means = unit.mean(axis=(0, 1), keepdims=True)
        expected.append(to_levels(np.clip((unit - means) * keep + means, 0, 1)))
    assert_rounds(corruptions.contrast(few, severity, 0), np.stack(expected))


@pytest.mark.parametrize("severity", range(1, 6))
def test_jpeg_and_pixelate_match_pillow_exactly(severity, few):
    quality = [80, 65, 58, 50, 40][severity - 1]
    side = int(32 * [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1])
    saved = []
    for image in few:
        encoded = io.BytesIO()
        Image.fromarray(image).save(encoded, "JPEG", quality=quality)
        saved.append(np.asarray(Image.open(encoded)))
    np.testing.assert_array_equal(corruptions.jpeg(few, severity, 0), np.stack(saved))
    boxed = [Image.fromarray(image).resize((side, side), Image.BOX).resize((32, 32), Image.BOX) for image in few]
    np.testing.assert_array_equal(corruptions.pixelate(few, severity, 0), np.stack([np.asarray(b) for b in boxed]))


@pytest.mark.parametrize("severity", range(1, 6))
def test_rotate_and_translate_match_pillow_exactly(severity, few):
    signs = np.random.default_rng(3).choice([-1, 1], size=len(few))
    rotated = [Image.fromarray(image).rotate(float(sign * [5, 10, 15, 20, 30][severity - 1]), Image.BILINEAR)
               for image, sign in zip(few, signs, strict=True)]
    np.testing.assert_array_equal(corruptions.rotate(few, severity, 3), np.stack([np.asarray(r) for r in rotated]))
    shifts = [2, 3, 4, 5, 6][severity - 1] * np.random.default_rng(4).choice([-1, 1], size=(len(few), 2))
    moved = [Image.fromarray(image).transform((32, 32), Image.AFFINE, (1, 0, -int(right), 0, 1, -int(down)))
             for image, (down, right) in zip(few, shifts, strict=True)]
    np.testing.assert_array_equal(corruptions.translate(few, severity, 4), np.stack([np.asarray(m) for m in moved]))


def drawn_square(image, top, left, side):
    canvas = Image.fromarray(image)
    ImageDraw.Draw(canvas).rectangle([left, top, left + side - 1, top + side - 1], fill=(128, 128, 128))
    return np.asarray(canvas)


@pytest.mark.parametrize("severity", range(1, 6))
def test_occlusion_matches_a_square_drawn_by_pillow_wherever_it_is_placed(severity, few):
    side = [4, 8, 12, 16, 20][severity - 1]
    corners = np.random.default_rng(9).integers(0, 33 - side, size=(len(few), 2))
    expected = [drawn_square(image, top, left, side) for image, (top, left) in zip(few, corners, strict=True)]
    np.testing.assert_array_equal(corruptions.occlusion(few, severity, 9), np.stack(expected))
    for center in [(16, 16), (0, 31), (30.6, 2.2)]:  # a click near a corner: the square is cut off
        top, left = round(center[0]) - side // 2, round(center[1]) - side // 2
        expected = [drawn_square(image, top, left, side) for image in few]
        np.testing.assert_array_equal(corruptions.occlusion(few, severity, 0, center=center), np.stack(expected))
    per_image = np.array([[5, 5], [20, 25]])
    out = corruptions.occlusion(few[:2], severity, 0, center=per_image)
    np.testing.assert_array_equal(out[1], drawn_square(few[1], 20 - side // 2, 25 - side // 2, side))
    with pytest.raises(ValueError, match=r"occlusion: center must be \(row, column\)"):
        corruptions.occlusion(few, severity, 0, center=(1, 2, 3))
