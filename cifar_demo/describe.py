"""Words for the images the app generates, for people who cannot see them: the alt texts of
the 32x32 inputs and Grad-CAM maps ("32x32 input, mostly green", "Grad-CAM for dog:
strongest at the upper middle"). NumPy only, so every tab (and anything else) can use it."""

import numpy as np

# A pixel's colour name: greys by lightness when it is hardly saturated, else by hue.
HUES = [(15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (200, "cyan"), (260, "blue"),
        (290, "purple"), (335, "pink"), (360, "red")]
GREY_SATURATION = 0.2       # below this a pixel is black, grey or white
DARK, LIGHT = 0.2, 0.85     # value (max channel) below DARK is black; greys above LIGHT are white
MOSTLY = 0.5                # one colour over this share of the pixels is "mostly" it alone
ROWS, COLUMNS = ("upper", "middle", "lower"), ("left", "middle", "right")
EVEN = 1.25                 # a map whose strongest third is under this times its mean is "spread evenly"


def _check_image(pixels):
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {pixels.dtype} {pixels.shape}")
    return pixels


def colour_names(pixels):
    """Each pixel's colour name, as an (H, W) array of strings."""
    rgb = _check_image(pixels).astype(np.float32) / 255
    value, low = rgb.max(axis=2), rgb.min(axis=2)
    chroma = value - low
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.select([value == red, value == green],
                    [((green - blue) / safe) % 6, (blue - red) / safe + 2], (red - green) / safe + 4) * 60
    names = np.empty(hue.shape, dtype=object)
    for bound, name in reversed(HUES):
        names[hue < bound] = name
    grey = np.where(value < DARK, "black", np.where(value > LIGHT, "white", "grey"))
    return np.where((saturation < GREY_SATURATION) | (value < DARK), grey, names)


def main_colours(pixels):
    """"green" when one colour covers over half the image, else its two commonest, "green and white"."""
    names, counts = np.unique(colour_names(pixels), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    if counts[order[0]] > MOSTLY * counts.sum() or len(order) == 1:
        return str(names[order[0]])
    return f"{names[order[0]]} and {names[order[1]]}"


def model_input(pixels):
    """Alt text of a 32x32 model input (or any RGB image): its size and main colours."""
    pixels = _check_image(pixels)
    return f"{pixels.shape[1]}x{pixels.shape[0]} input, mostly {main_colours(pixels)}"


def strongest_region(heatmap):
    """Where a map (H, W) is strongest, as one of nine regions ("upper middle", "centre",
    "lower left", ...), or "spread evenly" when no third of it stands out."""
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2 or min(heatmap.shape) < 3:
        raise ValueError(f"expected a 2-D map at least 3x3, got shape {heatmap.shape}")
    rows = np.array_split(np.arange(heatmap.shape[0]), 3)
    columns = np.array_split(np.arange(heatmap.shape[1]), 3)
    means = np.array([[heatmap[np.ix_(r, c)].mean() for c in columns] for r in rows])
    if means.max() <= 0 or means.max() < EVEN * means.mean():
        return "spread evenly"
    row, column = np.unravel_index(int(np.argmax(means)), means.shape)
    if (row, column) == (1, 1):
        return "centre"
    if row == 1:
        return f"middle {COLUMNS[column]}"
    return f"{ROWS[row]} {COLUMNS[column]}"


def where_strongest(heatmap):
    """"strongest at the upper middle", or "spread evenly"."""
    region = strongest_region(heatmap)
    return region if region == "spread evenly" else f"strongest at the {region}"
