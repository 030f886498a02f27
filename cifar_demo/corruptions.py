"""Corruptions of CIFAR-10 images: what noise, blur, light, JPEG, rotation, shifts and
occlusion do to the model, shared by the Robustness tab and `evaluate --corruptions`.

Every public function here is a corruption `name(batch, severity, rng)`: uint8
(N, 32, 32, 3) in, a new uint8 array of the same shape out; severity 0 is the identity
and 1-5 grow worse; `rng` (a numpy Generator or an integer seed) makes the result
deterministic. Each works on the whole batch at once in NumPy (JPEG alone goes through
Pillow, image by image, because Pillow's encoder is what defines it).

Severity constants come from CIFAR-10-C (Hendrycks & Dietterich 2019, make_cifar_c.py)
for Gaussian and shot noise, defocus and motion blur, brightness, contrast, JPEG quality
and pixelate; floats are rounded to the nearest level where that script truncated.
Chosen here, where CIFAR-10-C has no corruption or no monotone scale: saturation (the
over-saturating half of CIFAR-10-C's `saturate`, (1.5, 0) to (2.5, 0.2), spread over five
steps), rotation, translation and occlusion (see each function).
"""

import io
import math
from functools import cache
from types import MappingProxyType

import numpy as np
from PIL import Image

MAX_SEVERITY = 5
SEVERITIES = tuple(range(1, MAX_SEVERITY + 1))  # what evaluation measures; 0 is the clean image
SIZE = 32
GREY = 128  # the occluding square's level


def gaussian_noise(batch, severity, rng):
    """Adds zero-mean Gaussian noise of standard deviation 0.04-0.10 of the range
    (CIFAR-10-C), drawn as rng.normal over the batch's shape."""
    images, severity, rng = _checked("gaussian_noise", batch, severity, rng)
    if severity == 0:
        return images.copy()
    scale = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    noisy = images / 255.0 + rng.normal(size=images.shape, scale=scale)
    return _to_uint8(noisy * 255.0)


def shot_noise(batch, severity, rng):
    """Photon noise: Poisson counts with 500-50 photons at full level (CIFAR-10-C), drawn as
    rng.poisson(x / 255 * photons)."""
    images, severity, rng = _checked("shot_noise", batch, severity, rng)
    if severity == 0:
        return images.copy()
    photons = (500, 250, 100, 75, 50)[severity - 1]
    counts = rng.poisson(images / 255.0 * photons)
    return _to_uint8(counts / photons * 255.0)


def defocus_blur(batch, severity, rng):
    """An out-of-focus lens: each channel filtered with CIFAR-10-C's anti-aliased disk
    (radius 0.3-1.5 px, softened by a 3x3 Gaussian of sigma 0.4-0.1), borders reflected
    as OpenCV's filter2D does. Draws nothing from rng."""
    images, severity, _ = _checked("defocus_blur", batch, severity, rng)
    if severity == 0:
        return images.copy()
    radius, alias_blur = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[severity - 1]
    kernel = _disk_kernel(radius, alias_blur)
    reach = kernel.shape[0] // 2
    padded = np.pad(images.astype(np.float32), ((0, 0), (reach, reach), (reach, reach), (0, 0)), mode="reflect")
    blurred = np.zeros(images.shape, np.float32)
    for row, col in zip(*np.nonzero(kernel), strict=True):
        blurred += kernel[row, col] * padded[:, row : row + SIZE, col : col + SIZE]
    return _to_uint8(blurred)


def motion_blur(batch, severity, rng):
    """A camera moving during the exposure, as ImageMagick's -motion-blur (CIFAR-10-C's
    radius 6-9 and sigma 1-2.5): each pixel a one-sided Gaussian-weighted mean of the
    pixels along a line at an angle drawn per image as rng.uniform(-45, 45) degrees
    (0 = towards the right, positive = downwards), edges repeated. Severities 3 and 4
    differ only in the kernel's reach (6 or 8 px at sigma 2), so they blur almost alike,
    as in CIFAR-10-C."""
    images, severity, rng = _checked("motion_blur", batch, severity, rng)
    if severity == 0:
        return images.copy()
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[severity - 1]
    radians = np.radians(rng.uniform(-45, 45, size=len(images)))
    taps = np.arange(2 * math.ceil(radius) + 1)
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    source = images.astype(np.float32)
    blurred = np.zeros(images.shape, np.float32)
    which = np.arange(len(images))[:, None, None]
    for tap, weight in zip(taps, weights, strict=True):
        down = np.ceil(tap * np.sin(radians) - 0.5).astype(int)
        right = np.ceil(tap * np.cos(radians) - 0.5).astype(int)
        rows = np.clip(np.arange(SIZE)[None] + down[:, None], 0, SIZE - 1)
        cols = np.clip(np.arange(SIZE)[None] + right[:, None], 0, SIZE - 1)
        blurred += np.float32(weight) * source[which, rows[:, :, None], cols[:, None, :]]
    return _to_uint8(blurred)


def brightness(batch, severity, rng):
    """More light: the HSV value raised by 0.05-0.3 of the range (CIFAR-10-C), hue and
    saturation kept. In RGB that scales each pixel by new value / old value (a black
    pixel becomes grey). Draws nothing from rng."""
    images, severity, _ = _checked("brightness", batch, severity, rng)
    if severity == 0:
        return images.copy()
    shift = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1] * 255.0
    pixels = images.astype(np.float32)
    value = pixels.max(axis=-1, keepdims=True)
    brighter = np.minimum(value + shift, 255.0)
    scaled = pixels * (brighter / np.maximum(value, 1.0))
    return _to_uint8(np.where(value > 0, scaled, brighter))


def contrast(batch, severity, rng):
    """Less contrast: each channel pulled towards its own mean over the image, keeping
    0.75-0.15 of the difference (CIFAR-10-C). Draws nothing from rng."""
    images, severity, _ = _checked("contrast", batch, severity, rng)
    if severity == 0:
        return images.copy()
    keep = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    pixels = images.astype(np.float32)
    means = pixels.mean(axis=(1, 2), keepdims=True)
    return _to_uint8((pixels - means) * keep + means)


def saturation(batch, severity, rng):
    """Over-saturated colour: HSV saturation s -> min(s * factor + offset, 1), hue and value
    kept, from (1.5, 0) to (2.5, 0.2): CIFAR-10-C's over-saturating settings spread over
    five steps. Grey pixels have hue 0 in HSV, so a positive offset tints them red, as in
    CIFAR-10-C. Draws nothing from rng."""
    images, severity, _ = _checked("saturation", batch, severity, rng)
    if severity == 0:
        return images.copy()
    factor, offset = ((1.5, 0.0), (1.75, 0.05), (2.0, 0.1), (2.25, 0.15), (2.5, 0.2))[severity - 1]
    pixels = images.astype(np.float32)
    value = pixels.max(axis=-1, keepdims=True)
    spread = value - pixels.min(axis=-1, keepdims=True)
    grey = spread == 0
    old = np.where(grey, 0.0, spread / np.maximum(value, 1.0))
    new = np.minimum(old * factor + offset, 1.0)
    # Each channel sits a hue-given fraction of value * saturation below the value.
    hue_share = np.where(grey, np.array([0.0, 1.0, 1.0], np.float32), (value - pixels) / np.maximum(spread, 1.0))
    return _to_uint8(value - value * new * hue_share)


def jpeg(batch, severity, rng):
    """JPEG compression at quality 80-40 (CIFAR-10-C), with Pillow's default settings,
    one image at a time. Draws nothing from rng."""
    images, severity, _ = _checked("jpeg", batch, severity, rng)
    if severity == 0:
        return images.copy()
    quality = (80, 65, 58, 50, 40)[severity - 1]
    out = np.empty_like(images)
    for index, image in enumerate(images):
        encoded = io.BytesIO()
        Image.fromarray(image).save(encoded, "JPEG", quality=quality)
        out[index] = np.asarray(Image.open(encoded).convert("RGB"))
    return out


def pixelate(batch, severity, rng):
    """Fewer pixels: shrunk to 30-20 px a side and enlarged back, both with Pillow's BOX
    filter (CIFAR-10-C's 0.95-0.65 of the side), computed as Pillow computes it: separable
    integer weights, rows first, rounded after each pass. Draws nothing from rng."""
    images, severity, _ = _checked("pixelate", batch, severity, rng)
    if severity == 0:
        return images.copy()
    side = int(SIZE * (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1])
    small = _resample_box(_resample_box(images, _box_weights(SIZE, side), axis=2), _box_weights(SIZE, side), axis=1)
    return _resample_box(_resample_box(small, _box_weights(side, SIZE), axis=2), _box_weights(side, SIZE), axis=1)


def rotate(batch, severity, rng):
    """The camera tilted: rotated about the centre by 5-30 degrees (chosen here), the
    direction drawn per image as rng.choice([-1, 1]); bilinear, corners black, as Pillow's
    Image.rotate(angle, BILINEAR) draws it."""
    images, severity, rng = _checked("rotate", batch, severity, rng)
    if severity == 0:
        return images.copy()
    degrees = (5, 10, 15, 20, 30)[severity - 1] * rng.choice([-1, 1], size=len(images))
    # Where each output pixel's centre comes from: Pillow's inverse affine map, its
    # coefficients rounded and applied in its order, so truncation agrees to the level.
    cos = np.array([round(math.cos(math.radians(d % 360.0)), 15) for d in degrees])[:, None, None]
    sin = np.array([round(math.sin(math.radians(d % 360.0)), 15) for d in degrees])[:, None, None]
    centre = SIZE / 2
    x = np.arange(SIZE)[None, None, :] + 0.5
    y = np.arange(SIZE)[None, :, None] + 0.5
    source_x = cos * x - sin * y + (cos * -centre - sin * -centre + centre)
    source_y = sin * x + cos * y + (sin * -centre + cos * -centre + centre)
    inside = (source_x >= 0) & (source_x < SIZE) & (source_y >= 0) & (source_y < SIZE)
    return _bilinear(images, source_y - 0.5, source_x - 0.5, inside)


def translate(batch, severity, rng):
    """The object off-centre: shifted 2-6 px (chosen here) along both axes, each direction
    drawn per image as rng.choice([-1, 1], size=(N, 2)) (rows, columns); the uncovered
    border black."""
    images, severity, rng = _checked("translate", batch, severity, rng)
    if severity == 0:
        return images.copy()
    shifts = (2, 3, 4, 5, 6)[severity - 1] * rng.choice([-1, 1], size=(len(images), 2))
    rows = np.arange(SIZE)[None] - shifts[:, :1]
    cols = np.arange(SIZE)[None] - shifts[:, 1:]
    inside = ((rows >= 0) & (rows < SIZE))[:, :, None] & ((cols >= 0) & (cols < SIZE))[:, None, :]
    moved = images[np.arange(len(images))[:, None, None], np.clip(rows, 0, SIZE - 1)[:, :, None],
                   np.clip(cols, 0, SIZE - 1)[:, None, :]]
    return np.where(inside[..., None], moved, np.uint8(0))


def occlusion(batch, severity, rng, center=None):
    """Something in front of the object: a mid-grey square of 4-20 px a side (chosen here;
    16 px is Cutout's square for CIFAR-10). `center`, (row, column) in pixels, one pair for
    every image or one per image, places its centre (the Robustness tab's click); the
    square is cut off at the image's border. Without it, each square lies inside its image
    at a position drawn as rng.integers(0, 33 - side, size=(N, 2)) for (top, left)."""
    images, severity, rng = _checked("occlusion", batch, severity, rng)
    if severity == 0:
        return images.copy()
    side = (4, 8, 12, 16, 20)[severity - 1]
    if center is None:
        corners = rng.integers(0, SIZE - side + 1, size=(len(images), 2))
    else:
        centres = np.asarray(center)
        if centres.shape not in ((2,), (len(images), 2)) or not np.issubdtype(centres.dtype, np.number):
            raise ValueError(f"occlusion: center must be (row, column) or one such pair per image, got {center!r}")
        corners = np.broadcast_to(np.rint(centres).astype(int) - side // 2, (len(images), 2))
    rows = np.arange(SIZE)[None] - corners[:, :1]
    cols = np.arange(SIZE)[None] - corners[:, 1:]
    covered = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
    return np.where(covered[..., None], np.uint8(GREY), images)


# name -> corruption, in the order the tab and the tables show them.
CORRUPTIONS = MappingProxyType({function.__name__: function for function in (
    gaussian_noise, shot_noise, defocus_blur, motion_blur, brightness, contrast, saturation, jpeg, pixelate,
    rotate, translate, occlusion,
)})
DISPLAY_NAMES = MappingProxyType({
    "gaussian_noise": "Gaussian noise", "shot_noise": "Shot noise", "defocus_blur": "Defocus blur",
    "motion_blur": "Motion blur", "brightness": "Brightness", "contrast": "Contrast", "saturation": "Saturation",
    "jpeg": "JPEG quality", "pixelate": "Pixelate", "rotate": "Rotation", "translate": "Translation",
    "occlusion": "Occlusion",
})


def _checked(name, batch, severity, rng):
    """The batch as a uint8 (N, 32, 32, 3) array, the severity as an int and rng as a
    Generator; ValueError naming the corruption otherwise."""
    images = np.asarray(batch)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"{name}: takes uint8 images of shape (N, 32, 32, 3), got {images.dtype} {images.shape}")
    integral = isinstance(severity, (int, np.integer)) or (isinstance(severity, (float, np.floating))
                                                           and float(severity).is_integer())
    if isinstance(severity, bool) or not integral or not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"{name}: severity must be an integer from 0 to {MAX_SEVERITY}, got {severity!r}")
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    elif not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name}: rng must be a numpy Generator or an integer seed, got {rng!r}")
    return images, int(severity), rng


def _to_uint8(pixels):
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


@cache
def _disk_kernel(radius, alias_blur):
    """CIFAR-10-C's `disk`: a normalised disk on a 17x17 grid, blurred by a 3x3 Gaussian
    (as cv2.GaussianBlur with that sigma), trimmed to its non-zero rows and columns."""
    grid = np.arange(-8, 9)
    disk = (grid[None] ** 2 + grid[:, None] ** 2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.exp(-(np.arange(-1, 2) ** 2) / (2 * alias_blur**2))
    taps /= taps.sum()
    padded = np.pad(disk, 1, mode="reflect")
    rows = sum(taps[i] * padded[i : i + 17] for i in range(3))
    kernel = sum(taps[j] * rows[:, j : j + 17] for j in range(3))
    used = np.nonzero(kernel.any(axis=0))[0]
    reach = int(max(8 - used.min(), used.max() - 8))
    return kernel[8 - reach : 9 + reach, 8 - reach : 9 + reach].astype(np.float32)


@cache
def _box_weights(size, new_size):
    """Pillow's BOX resampling weights from `size` to `new_size` pixels as (new_size, size)
    integers scaled by 2**22 (Resample.c: precompute_coeffs, normalize_coeffs_8bpc)."""
    scale = size / new_size
    support = 0.5 * max(scale, 1.0)
    weights = np.zeros((new_size, size))
    for out in range(new_size):
        centre = (out + 0.5) * scale
        first, last = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size)
        offsets = (np.arange(first, last) - centre + 0.5) / max(scale, 1.0)
        weights[out, first:last] = (offsets > -0.5) & (offsets <= 0.5)
        weights[out] /= weights[out].sum()
    return np.floor(0.5 + weights * (1 << 22))


def _resample_box(images, weights, axis):
    """One of Pillow's resampling passes along `axis` (2: rows, 1: columns) with integer
    weights, rounded and clipped to uint8 as Pillow does between passes."""
    moved = np.moveaxis(images, axis, -1).astype(np.float64)  # exact: every sum stays below 2**53
    summed = moved @ weights.T + (1 << 21)
    return np.moveaxis(np.clip(np.floor(summed / (1 << 22)), 0, 255).astype(np.uint8), -1, axis)


def _bilinear(images, rows, cols, inside):
    """Samples each image at fractional (rows, cols) (N, 32, 32) as Pillow's BILINEAR
    transform does: neighbours clamped to the image, the result truncated to an integer,
    0 where `inside` is false."""
    top = np.floor(rows).astype(int)
    left = np.floor(cols).astype(int)
    down = (rows - top)[..., None]
    across = (cols - left)[..., None]
    which = np.arange(len(images))[:, None, None]
    pixels = images.astype(np.float64)

    def at(row, col):
        return pixels[which, np.clip(row, 0, SIZE - 1), np.clip(col, 0, SIZE - 1)]

    upper = at(top, left) + (at(top, left + 1) - at(top, left)) * across
    lower_row = np.where(top + 1 < SIZE, top + 1, top)
    lower = at(lower_row, left) + (at(lower_row, left + 1) - at(lower_row, left)) * across
    sampled = upper + (lower - upper) * down
    return np.where(inside[..., None], np.clip(sampled, 0, 255).astype(np.uint8), np.uint8(0))
