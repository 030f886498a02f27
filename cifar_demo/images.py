"""Any user image -> the 32x32 RGB uint8 array the model takes.

Handles what people actually upload: EXIF-rotated phone photos, palette and
grayscale PNGs, transparent images (composited on white, the way a viewer shows
them), CMYK JPEGs, 16-bit scans, animated GIFs (first frame), iPhone HEIC photos,
photos tagged with a colour profile other than sRGB (Display P3 from phones, Adobe RGB),
and refuses empty, truncated, non-image and decompression-bomb files with a message a
person can act on.
"""

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

# HEIC/HEIF, what iPhones take photos in (Pillow reads AVIF itself). pillow-heif applies
# the file's own rotation and leaves EXIF orientation 1, so exif_transpose does not turn it twice.
register_heif_opener()

MODEL_SIZE = 32
# Larger than any camera photo (a 6000x6000 PNG is 36 MP), far below what would exhaust
# memory once decoded; checked from the header before any pixel is decoded.
MAX_PIXELS = 50_000_000
# The largest file read at all: the app's upload limit too (Gradio's "20mb" is 20 MiB).
MAX_FILE_BYTES = 20 * 1024 * 1024
# Pillow itself refuses to open an image over twice this (DecompressionBombError), in this
# module and in any other code of the process (Gradio's components included): half
# MAX_PIXELS makes that hard stop MAX_PIXELS exactly, a quarter of Pillow's default
# (179 MP). Pillow only warns between the two; this module's own check is MAX_PIXELS.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2
RESAMPLE = Image.Resampling.LANCZOS
# Pillow shrinks by whole factors first while the image stays over 3x the target, then
# resamples: indistinguishable from a full Lanczos pass, and twice as fast on photos.
REDUCING_GAP = 3.0
# A JPEG is decoded at 1/2, 1/4 or 1/8 scale when that still leaves this many pixels on
# each side: a 24 MP photo decodes about ten times faster, for a 32x32 result.
JPEG_DRAFT_SIDE = 8 * MODEL_SIZE
WHITE = (255, 255, 255)
SRGB = ImageCms.createProfile("sRGB")
# Modes whose embedded ICC profile is honoured: colour photos. A grey profile only moves
# the tone curve slightly, and a palette image with a profile is vanishingly rare.
PROFILED_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}


class TooLarge(ValueError):
    """An image over the byte or pixel limits (a ValueError like every refusal here)."""


def to_model_input(source):
    """A PIL image, array or path/bytes -> uint8 (32, 32, 3): centre square crop, antialiased."""
    return np.asarray(resize_for_model(to_rgb_image(source, draft_side=JPEG_DRAFT_SIDE)), dtype=np.uint8)


def resize_for_model(image):
    """Crops the largest centred square (the model saw centred objects) and resizes to 32x32."""
    left, top, side = square_crop_box(*image.size)
    square = image.crop((left, top, left + side, top + side))
    return square.resize((MODEL_SIZE, MODEL_SIZE), RESAMPLE, reducing_gap=REDUCING_GAP)


def square_crop_box(width, height):
    """(left, top, side) of the largest centred square of a width x height image."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def check_model_input(pixels, caller):
    """`pixels` as one uint8 (32, 32, 3) model input (what to_model_input returns);
    ValueError naming `caller` otherwise."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.shape != (MODEL_SIZE, MODEL_SIZE, 3):
        raise ValueError(f"{caller} takes one uint8 image of shape (32, 32, 3), got {pixels.dtype} {pixels.shape}")
    return pixels


def to_rgb_image(source, draft_side=None):
    """Opens `source` and returns an upright 8-bit RGB PIL image, or raises ValueError.

    With `draft_side`, a JPEG file may be decoded at reduced scale, and an image with a
    colour profile shrunk by a whole factor before its conversion (a full-size pass over a
    24 MP photo takes over a second), each keeping at least that many pixels on each side.
    """
    opened_here = isinstance(source, (str, os.PathLike, bytes, bytearray))
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _array_to_image(source)
    elif opened_here:
        image = _open(source)
    else:
        raise ValueError(f"Cannot read an image from a {type(source).__name__}.")
    try:
        _check_size(image)
        if getattr(image, "is_animated", False):
            image.seek(0)  # the first frame of an animated GIF, APNG or WebP
        if draft_side and opened_here and image.format == "JPEG":
            image.draft(None, (draft_side, draft_side))
        image.load()
        return _to_rgb(ImageOps.exif_transpose(image), draft_side)
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"The image could not be decoded; the file may be truncated or corrupt ({error}).") from None
    finally:
        if opened_here:
            image.close()  # the result is a converted copy; animated files stay open otherwise


def check_bounds(source, max_pixels=MAX_PIXELS):
    """Refuses a file or bytes over MAX_FILE_BYTES, or whose header declares more than
    `max_pixels` (TooLarge), or that is no image (ValueError), without decoding a pixel:
    Image.open reads only the header."""
    with _open(source) as image:
        _check_size(image, max_pixels)


def _open(source):
    if isinstance(source, (bytes, bytearray)):
        size, stream, name = len(source), io.BytesIO(source), "the upload"
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"No image file at {path}.")
        size, stream, name = path.stat().st_size, path, path.name
    if size == 0:
        raise ValueError(f"{name} is empty (0 bytes).")
    if size > MAX_FILE_BYTES:
        raise TooLarge(f"{name} is {size / 2**20:.1f} MB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MB.")
    try:
        with warnings.catch_warnings():
            # Between MAX_IMAGE_PIXELS and twice that Pillow only warns: _check_size decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(stream)
    except UnidentifiedImageError:
        raise ValueError(
            f"{name} is not an image Pillow can read. Upload a PNG, JPEG, HEIC, WebP, GIF or BMP file."
        ) from None
    except Image.DecompressionBombError:  # over MAX_PIXELS: Pillow refuses before we see the size
        raise TooLarge(
            f"{name} declares more than {MAX_PIXELS / 1e6:.0f} MP (a decompression bomb?); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} MP. Resize it and try again."
        ) from None
    except OSError as error:
        raise ValueError(f"{name} could not be read as an image ({error}).") from None


def _check_size(image, max_pixels=MAX_PIXELS):
    width, height = image.size
    if width < 1 or height < 1:
        raise ValueError("The image has no pixels.")
    if width * height > max_pixels:
        raise TooLarge(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} MP); "
            f"the limit is {max_pixels / 1e6:.0f} MP. Resize it and try again."
        )


def _array_to_image(array):
    """uint8 (any range), uint16 (scaled) or float (0..1 or 0..255) arrays, HxW[xC]."""
    if array.size == 0:
        raise ValueError("The image is empty (an array with no pixels).")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"An image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}.")
    if array.dtype == np.uint16:
        array = _sixteen_to_eight(array)
    elif array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise ValueError("The image array holds NaN or infinite values.")
        scale = 255.0 if array.max() <= 1.0 else 1.0
        array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    mode = "L" if array.ndim == 2 else ("RGB" if array.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(array), mode=mode)


def _sixteen_to_eight(array):
    """Maps 0..65535 onto 0..255 (x / 257 rounded), the inverse of 8->16-bit expansion."""
    return np.rint(np.asarray(array, dtype=np.float64) / 257.0).astype(np.uint8)


def _in_srgb(image, draft_side=None):
    """The image's colours in sRGB, the space CIFAR-10's photos (and untagged files) are in.

    A phone photo tagged Display P3 shown without its profile looks washed out, and a CMYK
    file with one converts far better through it. A profile LittleCMS cannot read is
    ignored, the way browsers show such a file.
    """
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in PROFILED_MODES:
        return image
    factor = min(image.size) // draft_side if draft_side else 1
    if factor >= 2:
        image = image.reduce(factor)  # alpha-weighted for RGBA
    try:
        embedded = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return ImageCms.profileToProfile(image, embedded, SRGB, outputMode=PROFILED_MODES[image.mode],
                                         renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image


def _to_rgb(image, draft_side=None):
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return Image.fromarray(_sixteen_to_eight(np.clip(np.asarray(image), 0, 65535))).convert("RGB")
    if mode == "F":
        return _array_to_image(np.asarray(image, dtype=np.float32)).convert("RGB")
    if mode in ("P", "L", "RGB") and "transparency" in image.info:
        image = image.convert("RGBA")  # a palette or colour-key transparency (tRNS): a logo's background
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    image = _in_srgb(image, draft_side)
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, WHITE + (255,))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def is_blank(image, tolerance=8):
    """True when every pixel is within `tolerance` of one colour (an untouched canvas)."""
    array = np.asarray(to_rgb_image(image), dtype=np.int16)
    return bool(np.all(array.max(axis=(0, 1)) - array.min(axis=(0, 1)) <= tolerance))


def upscale_nearest(array, scale=8):
    """Enlarges a small image with nearest-neighbour so each pixel stays a crisp square."""
    array = np.asarray(array)
    return np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)


def overlay_heatmap(image, heatmap, opacity=0.5, colormap="jet"):
    """Blends a [0, 1] heatmap (H, W), coloured with a matplotlib colormap, over a uint8
    RGB image (H, W, 3): (1 - opacity) * image + opacity * colour, as uint8 RGB.

    'jet' is the usual Grad-CAM palette: its blue-to-red range reads as cold-to-hot at a
    glance, and at any opacity the red peak stays distinct from most photo colours.
    """
    from matplotlib import colormaps  # imported here: images.py serves light users too

    image = np.asarray(image)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"overlay_heatmap takes a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"the heatmap's shape {heatmap.shape} must be the image's (H, W) {image.shape[:2]}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity!r}")
    if colormap not in colormaps:
        raise ValueError(f"unknown matplotlib colormap {colormap!r}")
    colours = colormaps[colormap](np.clip(np.nan_to_num(heatmap), 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - opacity) * image.astype(np.float32) + opacity * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
