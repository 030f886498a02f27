"""Drawing-style versions of training photos, so the network also learns the ten classes as
people draw them on the Classify tab's canvas (issue 16): NumPy only, on 32x32 uint8.

Five styles, one picked at random per image:
- outline: the photo's edges as dark strokes on white (an outline drawing);
- palette: every pixel moved to the nearest colour of the canvas's palette;
- cartoon: flat palette colours of the smoothed photo with dark outlines on top;
- strokes: the edges on white, each stroke in the palette colour nearest the photo there;
- silhouette: the object alone on white, as people draw on a blank canvas: the pixels least
  like the photo's border (weighted towards the centre, where CIFAR-10 puts its objects)
  become flat palette colours or one colour, sometimes with a thick outline, sometimes on a
  hatched background.
Strokes are about two model pixels wide, as the canvas's 22 px brush is after the shrink
to 32x32.
"""

import numpy as np

# The Classify tab's drawing canvas, defined here (below the UI) for the training styles, the
# drawing development set and the OOD fit's generated drawings.
CANVAS_SIZE = 320           # pixels; 10 canvas pixels become one model pixel
BRUSH_SIZE = 22             # pixels on the canvas: about 2 model pixels wide after the downscale
PALETTE = ("#000000", "#7f7f7f", "#ffffff", "#8b4513", "#d62728", "#ff7f0e", "#ffd700", "#2ca02c", "#1f77b4", "#87ceeb")
STYLES = ("outline", "palette", "cartoon", "strokes", "silhouette")
EDGE_SHARE = (0.12, 0.25)   # share of a photo's pixels drawn as edges, drawn uniformly per image
OBJECT_SHARE = (0.2, 0.5)   # share of a photo's pixels kept as the object by the silhouette style
PALETTE_RGB = np.array([[int(code[i : i + 2], 16) for i in (1, 3, 5)] for code in PALETTE], dtype=np.float32)


def _grey(images):
    return images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def edge_strength(images):
    """Sobel gradient magnitude of each image's grey levels, (N, 32, 32), edges replicated."""
    padded = np.pad(_grey(images), ((0, 0), (1, 1), (1, 1)), mode="edge")

    def shifted(dy, dx):
        return padded[:, 1 + dy : padded.shape[1] - 1 + dy, 1 + dx : padded.shape[2] - 1 + dx]

    horizontal = (shifted(-1, 1) + 2 * shifted(0, 1) + shifted(1, 1)) - (shifted(-1, -1) + 2 * shifted(0, -1)
                                                                         + shifted(1, -1))
    vertical = (shifted(1, -1) + 2 * shifted(1, 0) + shifted(1, 1)) - (shifted(-1, -1) + 2 * shifted(-1, 0)
                                                                       + shifted(-1, 1))
    return np.hypot(horizontal, vertical)


def edge_mask(images, rng):
    """bool (N, 32, 32): each image's strongest edges (a random EDGE_SHARE of its pixels)."""
    strength = edge_strength(images)
    share = rng.uniform(*EDGE_SHARE, size=len(images))
    cut = np.array([np.quantile(s, 1 - q) for s, q in zip(strength, share, strict=True)])
    return strength > cut[:, None, None]


def nearest_palette(images):
    """Each pixel's nearest canvas palette colour, uint8 (N, 32, 32, 3)."""
    pixels = images.astype(np.float32)
    distances = ((pixels[..., None, :] - PALETTE_RGB) ** 2).sum(axis=-1)
    return PALETTE_RGB[distances.argmin(axis=-1)].astype(np.uint8)


def _smoothed(images):
    """A 3x3 box blur (edges replicated): flat regions before the palette."""
    padded = np.pad(images.astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    return sum(padded[:, dy : dy + 32, dx : dx + 32] for dy in range(3) for dx in range(3)) / 9


def _neighbourhood_mean(mask):
    """Mean of each pixel's 3x3 neighbourhood of a bool (N, 32, 32) mask, edges replicated."""
    padded = np.pad(mask.astype(np.float32), ((0, 0), (1, 1), (1, 1)), mode="edge")
    return sum(padded[:, dy : dy + 32, dx : dx + 32] for dy in range(3) for dx in range(3)) / 9


def object_mask(images, rng):
    """bool (N, 32, 32): a rough foreground of each photo: at most a random OBJECT_SHARE of its
    pixels, those farthest in colour from its border's median colour (weighted towards the
    centre) and at least a third as far as the farthest, then smoothed twice by a 3x3
    majority so it reads as one drawn shape."""
    pixels = images.astype(np.float32)
    ring = np.concatenate([pixels[:, :2].reshape(len(images), -1, 3), pixels[:, -2:].reshape(len(images), -1, 3),
                           pixels[:, 2:-2, :2].reshape(len(images), -1, 3),
                           pixels[:, 2:-2, -2:].reshape(len(images), -1, 3)], axis=1)
    distance = np.linalg.norm(pixels - np.median(ring, axis=1)[:, None, None], axis=-1)
    centre = np.hypot(*np.meshgrid(np.arange(32) - 15.5, np.arange(32) - 15.5, indexing="ij")) / 22.0
    weighted = distance * (1.0 - centre**2)
    share = rng.uniform(*OBJECT_SHARE, size=len(images))
    cut = np.array([np.quantile(w, 1 - q) for w, q in zip(weighted, share, strict=True)])
    mask = weighted > np.maximum(cut, weighted.max(axis=(1, 2)) / 3)[:, None, None]
    for _ in range(2):
        mask = _neighbourhood_mean(mask) > 0.5
    return mask


def _silhouettes(images, rng):
    """The silhouette style (see the module docstring) of uint8 (N, 32, 32, 3) photos."""
    count = len(images)
    shape = object_mask(images, rng)
    flat = nearest_palette(_smoothed(images))
    mean_colour = (images * shape[..., None]).sum(axis=(1, 2)) / np.maximum(shape.sum(axis=(1, 2)), 1)[:, None]
    one_colour = nearest_palette(mean_colour[:, None, None, :].astype(np.uint8))
    filled = np.where((rng.random(count) < 0.3)[:, None, None, None], one_colour, flat)
    out = np.where(shape[..., None], filled, np.uint8(255))
    neighbours = _neighbourhood_mean(shape)
    boundary = (neighbours > 0) & (neighbours < 1)
    outline = boundary & (rng.random(count) < 0.5)[:, None, None]
    ink = PALETTE_RGB[np.where(rng.random(count) < 0.7, 0, rng.integers(len(PALETTE_RGB), size=count))]
    out = np.where(outline[..., None], ink[:, None, None].astype(np.uint8), out)
    rows, columns = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    period = rng.integers(4, 8, size=count)[:, None, None]
    hatch = ((rows + columns)[None] % period) < 2
    hatched = rng.random(count) < 0.3
    hatch_colour = PALETTE_RGB[rng.integers(len(PALETTE_RGB), size=count)].astype(np.uint8)
    background = hatch & hatched[:, None, None] & ~shape & ~outline
    return np.where(background[..., None], hatch_colour[:, None, None], out)


def stylise(images, styles, rng):
    """uint8 (N, 32, 32, 3) photos -> their versions in `styles` (N names of STYLES)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"stylise takes uint8 images of shape (N, 32, 32, 3), got {images.dtype} {images.shape}")
    unknown = sorted(set(styles) - set(STYLES))
    if unknown or len(styles) != len(images):
        raise ValueError(f"one style per image from {', '.join(STYLES)}; got {len(styles)} for {len(images)} "
                         f"images{' and unknown ' + ', '.join(unknown) if unknown else ''}")
    styles = np.asarray(styles)
    edges = edge_mask(images, rng)
    white = np.full_like(images, 255)
    ink = np.zeros_like(images)
    out = images.copy()
    for style, chosen in ((name, styles == name) for name in STYLES):
        if not chosen.any():
            continue
        part, lines = images[chosen], edges[chosen][..., None]
        if style == "outline":
            out[chosen] = np.where(lines, ink[chosen], white[chosen])
        elif style == "palette":
            out[chosen] = nearest_palette(part)
        elif style == "cartoon":
            out[chosen] = np.where(lines, ink[chosen], nearest_palette(_smoothed(part)))
        elif style == "silhouette":
            out[chosen] = _silhouettes(part, rng)
        else:
            out[chosen] = np.where(lines, nearest_palette(part), white[chosen])
    return out


def drawing_style_images(images, rng, share):
    """A random `share` of uint8 images (N, 32, 32, 3) replaced by a drawing-style version
    in a random style; the rest unchanged. The training engine's option `drawing_style`."""
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share!r}")
    chosen = rng.random(len(images)) < share
    if not chosen.any():
        return images
    out = np.array(images, copy=True)
    out[chosen] = stylise(out[chosen], rng.choice(STYLES, size=int(chosen.sum())), rng)
    return out
