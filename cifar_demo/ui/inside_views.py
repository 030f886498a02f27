"""What the Inside the network tab draws, as NumPy images and HTML, no Gradio: channel maps as
one mosaic per layer (drawing 256 small images with matplotlib would take seconds), the
click position -> channel, kernels, the feature map and bar charts."""

import html
from functools import cache

import numpy as np
from PIL import Image

from cifar_demo import CLASSES

COLUMNS = 16                # channels per mosaic row: 16 x 34 px = 544 px, within a laptop column
CELL = 32                   # pixels per channel map (32x32 maps 1:1, 16x16 x2, 8x8 x4)
FEATURE_CELL = 20           # pixels per pooled feature
GAP = 2
BACKGROUND = 255
PALETTE_LEVELS = 255        # colour levels of a palette image; the last palette entry is the background
BACKGROUND_INDEX = PALETTE_LEVELS
LABEL_BAND = 36             # white rows above a picture that Gradio's label badge covers
PAGE = 128                  # channels per page of a 256-channel layer
MAP_SIDE = 360              # the feature map's canvas
CLASS_COLOURS = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                          [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]], np.uint8)
SCALE_NOTE = ("Colour scale: black is 0 (the ReLU cut everything below it), bright yellow the largest value in "
              "that layer for this input, so the channels of one layer compare with each other.")


@cache
def _lut(name):
    from matplotlib import colormaps  # only for its lookup table

    return np.rint(colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def coloured(values, peak, colormap="magma"):
    """Values in [0, peak] -> uint8 RGB through the colormap (0 black, peak bright)."""
    scaled = np.clip(np.asarray(values, np.float32) / peak, 0, 1) if peak > 0 else np.zeros(np.shape(values))
    return _lut(colormap)[np.rint(scaled * 255).astype(np.int32)]


def page_channels(shape, page):
    """The channel range shown on `page` (0-based) of an activation of `shape`: maps of
    more than PAGE channels a page at a time, pooled features (C,) all at once."""
    count = shape[-1]
    if count <= PAGE or len(shape) == 1:
        return range(count)
    pages = -(-count // PAGE)
    page = min(max(0, int(page)), pages - 1)
    return range(page * PAGE, min(count, (page + 1) * PAGE))


def paletted(levels, colormap):
    """uint8 colour levels (0..PALETTE_LEVELS - 1, BACKGROUND_INDEX for the gaps) -> a
    palette PNG-ready PIL image: one byte a pixel, so PNG encodes it about three times
    faster than RGB (the encoding is most of a redraw's time, bench/inside_render.py)."""
    image = Image.fromarray(np.asarray(levels, np.uint8), mode="P")
    lut = np.asarray(Image.fromarray(_lut(colormap)[None]).resize((PALETTE_LEVELS, 1), Image.NEAREST))[0]
    image.putpalette([*lut.ravel().tolist(), *[BACKGROUND] * 3])
    return image


def mosaic(activation, channels, peak=None):
    """A layer's maps (H, W, C), or pooled features (C,), as one palette image: the chosen
    channels in rows of COLUMNS, each map enlarged to CELL pixels (a feature: one
    FEATURE_CELL square), coloured on the layer's own scale (its largest value = `peak`,
    the maximum over all its channels when None)."""
    activation = np.asarray(activation, np.float32)
    if activation.ndim == 1:
        activation = activation[None, None, :]
        cell = FEATURE_CELL
    else:
        cell = CELL
    channels = list(channels)
    peak = float(activation.max()) if peak is None else peak
    height, width = activation.shape[:2]
    scale = max(1, cell // max(height, width))
    rows = -(-len(channels) // COLUMNS)
    columns = min(COLUMNS, len(channels))
    pitch = cell + GAP
    canvas = np.full((rows * pitch - GAP, columns * pitch - GAP), BACKGROUND_INDEX, np.uint8)
    levels = _levels(activation[:, :, channels], peak)  # (H, W, n)
    for slot in range(len(channels)):
        row, col = divmod(slot, COLUMNS)
        tile = levels[:, :, slot].repeat(scale, 0).repeat(scale, 1)
        canvas[row * pitch : row * pitch + tile.shape[0], col * pitch : col * pitch + tile.shape[1]] = tile
    return paletted(canvas, "magma")


def _levels(values, peak):
    """Values in [0, peak] -> palette levels 0..PALETTE_LEVELS - 1."""
    scaled = np.clip(np.asarray(values, np.float32) / peak, 0, 1) if peak > 0 else np.zeros(np.shape(values))
    return np.rint(scaled * (PALETTE_LEVELS - 1)).astype(np.uint8)


def channel_at(x, y, channels, features=False):
    """The channel drawn at pixel (x, y) of a mosaic of `channels`; None on a gap or outside."""
    pitch = (FEATURE_CELL if features else CELL) + GAP
    if x is None or y is None or x < 0 or y < 0 or x % pitch >= pitch - GAP or y % pitch >= pitch - GAP:
        return None
    col, row = int(x) // pitch, int(y) // pitch
    slot = row * COLUMNS + col
    channels = list(channels)
    return channels[slot] if col < COLUMNS and slot < len(channels) else None


def enlarged_map(channel_map, pixels, side=256, opacity=0.6):
    """One channel's map over the input: the 32x32 input enlarged with crisp pixels, the map
    bilinearly to the same size on the colour scale of its own maximum, blended."""
    base = np.asarray(Image.fromarray(pixels).resize((side, side), Image.NEAREST), np.float32)
    smooth = np.asarray(Image.fromarray(np.asarray(channel_map, np.float32)).resize((side, side), Image.BILINEAR))
    colours = coloured(smooth, float(np.max(channel_map))).astype(np.float32)
    return np.clip(np.rint((1 - opacity) * base + opacity * colours), 0, 255).astype(np.uint8)


def kernel_image(kernel, patch=24):
    """One output channel's 3x3 kernels (3, 3, inputs): three inputs (the first layer, RGB)
    as one colour patch, grey at 0; more as a grid of patches, blue negative, red positive,
    all on one symmetric scale."""
    kernel = np.asarray(kernel, np.float32)
    limit = float(np.abs(kernel).max()) or 1.0
    if kernel.shape[-1] == 3:
        rgb = np.rint((0.5 + kernel / (2 * limit)) * 255).astype(np.uint8)
        return rgb.repeat(patch * 3, 0).repeat(patch * 3, 1)
    pitch = 3 * 6 + GAP
    count = kernel.shape[-1]
    rows, columns = -(-count // COLUMNS), min(COLUMNS, count)
    canvas = np.full((rows * pitch - GAP, columns * pitch - GAP), BACKGROUND_INDEX, np.uint8)
    levels = np.rint((0.5 + kernel / (2 * limit)) * (PALETTE_LEVELS - 1)).astype(np.uint8)
    for index in range(count):
        row, col = divmod(index, COLUMNS)
        canvas[row * pitch : row * pitch + 18, col * pitch : col * pitch + 18] = levels[:, :, index].repeat(
            6, 0).repeat(6, 1)
    return paletted(canvas, "coolwarm")


def bars_html(values, names, highlight=None, title=""):
    """A horizontal bar chart in HTML (no figure to draw): positive bars right of the axis,
    negative left, each with its value; `highlight` (a name) in bold."""
    values = np.asarray(values, np.float32)
    limit = float(np.abs(values).max()) or 1.0
    rows = []
    for name, value in zip(names, values, strict=True):
        width = 50 * abs(float(value)) / limit
        left = 50 if value >= 0 else 50 - width
        colour = "#2ca02c" if value >= 0 else "#d62728"
        weight = "font-weight:700;" if name == highlight else ""
        rows.append(
            f'<div class="bar-row" style="display:flex;align-items:center;gap:6px;{weight}">'
            f'<span style="flex:0 0 9.5em;overflow:hidden">{html.escape(str(name))}</span>'
            f'<span style="flex:1;position:relative;height:14px;background:var(--neutral-100)">'
            f'<span style="position:absolute;left:{left:.1f}%;width:{width:.1f}%;height:100%;background:{colour}">'
            f'</span><span style="position:absolute;left:50%;width:1px;height:100%;background:#555"></span></span>'
            f'<span style="flex:0 0 4.5em;text-align:right">{float(value):+.2f}</span></div>')
    heading = f"<div style='margin-bottom:4px'>{html.escape(title)}</div>" if title else ""
    return f'<div class="inside-bars">{heading}{"".join(rows)}</div>'


MAP_WHITE, MAP_BLACK = len(CLASS_COLOURS), len(CLASS_COLOURS) + 1  # palette entries after the classes'


def map_background(points, labels):
    """The feature map's canvas as palette indices: each test image a small dot in its
    class colour on white; returns (indices (MAP_SIDE, MAP_SIDE), (low, high) corners of
    the plotted area in PCA coordinates)."""
    points = np.asarray(points, np.float32)
    low, high = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    margin = (high - low) * 0.08
    low, high = low - margin, high + margin
    canvas = np.full((MAP_SIDE, MAP_SIDE), MAP_WHITE, np.uint8)
    pixels = map_pixels(points, (low, high))
    inside = (pixels >= 0).all(axis=1) & (pixels < MAP_SIDE - 1).all(axis=1)
    for dy in (0, 1):
        for dx in (0, 1):
            canvas[pixels[inside, 1] + dy, pixels[inside, 0] + dx] = np.asarray(labels)[inside]
    return canvas, (low, high)


def map_pixels(points, bounds):
    """PCA coordinates (N, 2) -> canvas pixels (x right, y up the page)."""
    low, high = bounds
    relative = (np.asarray(points, np.float32).reshape(-1, 2) - low) / (high - low)
    return np.stack([relative[:, 0] * (MAP_SIDE - 1), (1 - relative[:, 1]) * (MAP_SIDE - 1)], axis=1).astype(int)


def map_with_marker(background, bounds, point):
    """The feature map with the input as a black ring (clamped to the edge when outside),
    as a palette image."""
    canvas = background.copy()
    x, y = np.clip(map_pixels(point, bounds)[0], 0, MAP_SIDE - 1)
    rows, cols = np.ogrid[:MAP_SIDE, :MAP_SIDE]
    distance = np.sqrt((rows - y) ** 2 + (cols - x) ** 2)
    canvas[(distance >= 6) & (distance <= 9)] = MAP_BLACK
    canvas[(distance > 9) & (distance <= 10.5)] = MAP_WHITE
    image = Image.fromarray(canvas, mode="P")
    image.putpalette([*CLASS_COLOURS.ravel().tolist(), 255, 255, 255, 0, 0, 0])
    return image


def legend_html():
    """The feature map's class colours."""
    swatches = "".join(
        f'<span style="display:inline-flex;align-items:center;gap:4px;margin-right:10px">'
        f'<span style="width:12px;height:12px;background:rgb{tuple(int(c) for c in colour)}"></span>{name}</span>'
        for name, colour in zip(CLASSES, CLASS_COLOURS, strict=True))
    return f'<div class="inside-legend" style="line-height:1.8">{swatches} <b>◯</b> this input</div>'


def learning_snapshot(first_kernels, maps, watched_image):
    """The Train tab's "watch it learn" picture for one epoch, as one RGB image: the watched
    input, the first layer's filters as RGB patches (each on its own symmetric scale, grey
    at 0) and that input's maps at the last convolution (on their common scale)."""
    kernels = np.asarray(first_kernels, np.float32)
    count = kernels.shape[-1]
    limits = np.abs(kernels).reshape(-1, count).max(axis=0)
    patches = np.rint((0.5 + kernels / (2 * np.where(limits > 0, limits, 1.0))) * 255).astype(np.uint8)
    side, columns = 24, 8
    pitch = side + GAP
    rows = -(-count // columns)
    filters = np.full((rows * pitch - GAP, min(columns, count) * pitch - GAP, 3), BACKGROUND, np.uint8)
    for index in range(count):
        row, col = divmod(index, columns)
        filters[row * pitch : row * pitch + side, col * pitch : col * pitch + side] = (
            patches[:, :, :, index].repeat(side // 3, 0).repeat(side // 3, 1))
    maps = np.asarray(maps, np.float32)
    peak = float(maps.max())
    levels = _levels(maps, peak)
    map_pitch = 2 * maps.shape[0] + GAP
    map_rows = -(-maps.shape[-1] // COLUMNS)
    mosaic_image = np.full((map_rows * map_pitch - GAP, min(COLUMNS, maps.shape[-1]) * map_pitch - GAP, 3),
                           BACKGROUND, np.uint8)
    colours = _lut("magma")[np.rint(levels.astype(np.float32) * 255 / (PALETTE_LEVELS - 1)).astype(np.int32)]
    for index in range(maps.shape[-1]):
        row, col = divmod(index, COLUMNS)
        mosaic_image[row * map_pitch : row * map_pitch + 2 * maps.shape[0],
                     col * map_pitch : col * map_pitch + 2 * maps.shape[1]] = colours[:, :, index].repeat(
            2, 0).repeat(2, 1)
    watched = np.asarray(watched_image, np.uint8).repeat(3, 0).repeat(3, 1)
    parts = [watched, filters, mosaic_image]
    height = max(part.shape[0] for part in parts)
    spacer = np.full((height, 12, 3), BACKGROUND, np.uint8)
    padded = [np.pad(part, ((0, height - part.shape[0]), (0, 0), (0, 0)), constant_values=BACKGROUND)
              for part in parts]
    picture = np.concatenate([padded[0], spacer, padded[1], spacer, padded[2]], axis=1)
    return np.pad(picture, ((LABEL_BAND, 0), (0, 0), (0, 0)), constant_values=BACKGROUND)  # room for the label
