"""Seeded stroke drawings of the ten classes, as a person makes them on the app's canvas.

Each drawing is a child's-picture template of its class (a plane's fuselage and swept
wings, a car's body, cabin and two wheels, a cat's round head with pointed ears, ...),
jittered in size, place, tilt, direction and every vertex, then drawn on the Classify
tab's white CANVAS_SIZE canvas with its BRUSH_SIZE round brush in colours of its
PALETTE: as an outline, as scribble-filled shapes with or without an outline, and on a
third of them over a scribbled background (sky, grass, water or road). The canvas goes
through the app's own `to_model_input`, as the drawing does in the app.

`python -m devsets.drawings` writes a contact sheet to test-artifacts/ to look at.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from cifar_demo import CLASSES
from cifar_demo.drawing_style import BRUSH_SIZE, CANVAS_SIZE, PALETTE
from cifar_demo.images import to_model_input

BLACK, GREY, WHITE, BROWN, RED, ORANGE, YELLOW, GREEN, BLUE, SKY = PALETTE
STYLES = ("outline", "filled", "scribble")  # outline only; scribble fill + outline; scribble fill only
# Canvas pixels between the turns of a scribble fill: each side's turns are twice as far
# apart, under the 22 px brush for a shape (colouring in), wider for a background.
SCRIBBLE_GAP = 10
BACKGROUND_GAP = 18
WOBBLE = 4.0             # canvas pixels: standard deviation of the hand's tremor per vertex
BACKGROUND_SHARE = 1 / 3

# Each class: parts in a unit box (x right, y down; the object faces right), drawn in
# order. ("shape", points) is a closed shape (filled in the filled styles), ("ellipse",
# (cx, cy, rx, ry)) one too, ("line", points) an open stroke. Colour choices per part
# are the PALETTE colours a person would pick; the background names a scenery.


def _box(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _legs(xs, top, bottom, bend=0.0):
    return [("line", [(x, top), (x + bend, (top + bottom) / 2), (x, bottom)]) for x in xs]


TEMPLATES = {
    "airplane": {
        "colours": [(GREY, SKY, WHITE, RED, BLUE)],
        "background": "sky",
        "parts": [
            ("shape", [(0.58, 0.46), (0.66, 0.46), (0.44, 0.08), (0.37, 0.08)]),
            ("shape", [(0.58, 0.54), (0.66, 0.54), (0.44, 0.92), (0.37, 0.92)]),
            ("shape", [(0.14, 0.47), (0.2, 0.47), (0.1, 0.28), (0.06, 0.28)]),
            ("shape", [(0.14, 0.53), (0.2, 0.53), (0.1, 0.72), (0.06, 0.72)]),
            ("ellipse", (0.5, 0.5, 0.45, 0.075)),
        ],
    },
    "automobile": {
        "colours": [(RED, BLUE, YELLOW, ORANGE, GREEN), (SKY, WHITE), (BLACK, GREY)],
        "background": "road",
        "parts": [
            ("shape", [(0.05, 0.5), (0.28, 0.48), (0.38, 0.3), (0.66, 0.3), (0.78, 0.48), (0.95, 0.52),
                       (0.95, 0.74), (0.05, 0.74)]),
            ("shape", [(0.41, 0.35), (0.64, 0.35), (0.72, 0.47), (0.34, 0.47)], 1),
            ("ellipse", (0.26, 0.75, 0.1, 0.1), 2),
            ("ellipse", (0.76, 0.75, 0.1, 0.1), 2),
        ],
    },
    "bird": {
        "colours": [(RED, BLUE, BROWN, YELLOW, SKY), (ORANGE, YELLOW), (BLACK, BROWN, ORANGE)],
        "background": "sky",
        "parts": [
            ("shape", [(0.24, 0.5), (0.04, 0.4), (0.06, 0.64)]),
            ("ellipse", (0.45, 0.55, 0.25, 0.15)),
            ("ellipse", (0.72, 0.37, 0.11, 0.11)),
            ("shape", [(0.81, 0.33), (0.96, 0.38), (0.81, 0.43)], 1),
            ("line", [(0.3, 0.5), (0.45, 0.6), (0.58, 0.5)]),
            *[(kind, points, 2) for kind, points in _legs((0.42, 0.52), 0.69, 0.88)],
        ],
    },
    "cat": {
        "colours": [(ORANGE, GREY, BLACK, BROWN, YELLOW), (BLACK, GREY)],
        "background": "grass",
        "parts": [
            ("ellipse", (0.5, 0.72, 0.22, 0.2)),
            ("line", [(0.7, 0.82), (0.9, 0.7), (0.86, 0.5)]),
            ("shape", [(0.33, 0.27), (0.3, 0.04), (0.46, 0.18)]),
            ("shape", [(0.67, 0.27), (0.7, 0.04), (0.54, 0.18)]),
            ("ellipse", (0.5, 0.34, 0.2, 0.17)),
            ("line", [(0.43, 0.3), (0.44, 0.31)], 1),
            ("line", [(0.57, 0.3), (0.56, 0.31)], 1),
            ("line", [(0.2, 0.38), (0.42, 0.4)], 1),
            ("line", [(0.8, 0.38), (0.58, 0.4)], 1),
        ],
    },
    "deer": {
        "colours": [(BROWN, ORANGE), (BROWN, BLACK)],
        "background": "grass",
        "parts": [
            ("line", [(0.74, 0.24), (0.7, 0.1), (0.64, 0.04)], 1),
            ("line", [(0.7, 0.12), (0.78, 0.04)], 1),
            ("line", [(0.8, 0.22), (0.86, 0.08), (0.94, 0.04)], 1),
            ("line", [(0.86, 0.1), (0.82, 0.02)], 1),
            ("ellipse", (0.45, 0.5, 0.26, 0.11)),
            ("shape", [(0.62, 0.45), (0.72, 0.22), (0.8, 0.24), (0.74, 0.5)]),
            ("ellipse", (0.82, 0.27, 0.09, 0.05)),
            ("line", [(0.2, 0.45), (0.14, 0.38)]),
            *_legs((0.26, 0.34, 0.58, 0.66), 0.58, 0.95, 0.02),
        ],
    },
    "dog": {
        "colours": [(BROWN, GREY, BLACK, ORANGE, YELLOW), (BLACK, BROWN)],
        "background": "grass",
        "parts": [
            ("ellipse", (0.45, 0.55, 0.28, 0.14)),
            ("line", [(0.18, 0.5), (0.1, 0.38), (0.07, 0.28)]),
            *_legs((0.25, 0.35, 0.57, 0.66), 0.64, 0.88),
            ("ellipse", (0.78, 0.36, 0.13, 0.12)),
            ("ellipse", (0.9, 0.42, 0.08, 0.05)),
            ("shape", [(0.72, 0.27), (0.64, 0.52), (0.76, 0.5)], 1),
            ("line", [(0.8, 0.31), (0.81, 0.32)], 1),
        ],
    },
    "frog": {
        "colours": [(GREEN,), (BLACK,)],
        "background": "water",
        "parts": [
            ("line", [(0.26, 0.62), (0.08, 0.74), (0.24, 0.9), (0.1, 0.94)]),
            ("line", [(0.74, 0.62), (0.92, 0.74), (0.76, 0.9), (0.9, 0.94)]),
            ("ellipse", (0.5, 0.62, 0.32, 0.22)),
            ("ellipse", (0.34, 0.38, 0.09, 0.09)),
            ("ellipse", (0.66, 0.38, 0.09, 0.09)),
            ("line", [(0.34, 0.37), (0.35, 0.38)], 1),
            ("line", [(0.66, 0.37), (0.65, 0.38)], 1),
            ("line", [(0.36, 0.62), (0.5, 0.7), (0.64, 0.62)], 1),
        ],
    },
    "horse": {
        "colours": [(BROWN, BLACK, GREY, ORANGE), (BLACK, BROWN)],
        "background": "grass",
        "parts": [
            ("line", [(0.18, 0.45), (0.1, 0.6), (0.08, 0.75)], 1),
            ("ellipse", (0.45, 0.48, 0.28, 0.13)),
            ("shape", [(0.62, 0.42), (0.7, 0.16), (0.8, 0.18), (0.76, 0.48)]),
            ("ellipse", (0.84, 0.22, 0.12, 0.06)),
            ("line", [(0.66, 0.2), (0.62, 0.36)], 1),
            *_legs((0.24, 0.33, 0.58, 0.67), 0.56, 0.96),
        ],
    },
    "ship": {
        "colours": [(RED, BLACK, GREY, BLUE, BROWN), (WHITE, YELLOW, GREY), (RED, BLACK, ORANGE)],
        "background": "water",
        "parts": [
            ("shape", [(0.52, 0.2), (0.6, 0.2), (0.6, 0.4), (0.52, 0.4)], 2),
            ("shape", _box(0.3, 0.38, 0.68, 0.56), 1),
            ("shape", [(0.03, 0.54), (0.97, 0.54), (0.82, 0.76), (0.16, 0.76)]),
        ],
    },
    "truck": {
        "colours": [(RED, BLUE, ORANGE, YELLOW, GREEN, GREY), (RED, BLUE, YELLOW, WHITE), (BLACK, GREY)],
        "background": "road",
        "parts": [
            ("shape", _box(0.04, 0.18, 0.66, 0.72)),
            ("shape", [(0.68, 0.36), (0.86, 0.36), (0.96, 0.52), (0.96, 0.72), (0.68, 0.72)], 1),
            ("shape", [(0.73, 0.41), (0.84, 0.41), (0.9, 0.52), (0.73, 0.52)], 2),
            ("ellipse", (0.18, 0.75, 0.08, 0.08), 2),
            ("ellipse", (0.5, 0.75, 0.08, 0.08), 2),
            ("ellipse", (0.82, 0.75, 0.08, 0.08), 2),
        ],
    },
}
BACKGROUNDS = {  # scenery: (colour, top, bottom) bands as shares of the canvas height
    "sky": [(SKY, 0.0, 1.0)],
    "grass": [(SKY, 0.0, 0.45), (GREEN, 0.8, 1.0)],
    "water": [(BLUE, 0.72, 1.0)],
    "road": [(GREY, 0.82, 1.0), (SKY, 0.0, 0.3)],
}


def _part(entry):
    """(kind, geometry, colour slot) of a template entry (slot 0 when not given)."""
    return (*entry, 0) if len(entry) == 2 else entry


def _ellipse_points(cx, cy, rx, ry, count=28):
    angles = np.linspace(0, 2 * math.pi, count, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def _stroke(pen, points, colour, closed=False):
    """One brush stroke through `points`: BRUSH_SIZE wide with round caps and joins, as
    the canvas's brush leaves it."""
    points = [tuple(point) for point in np.asarray(points, dtype=np.float64).tolist()]
    if closed:
        points = [*points, points[0]]
    radius = BRUSH_SIZE / 2
    if len(points) > 1:
        pen.line(points, fill=colour, width=BRUSH_SIZE, joint="curve")
    for x, y in points:
        pen.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)


def _scribble(canvas, polygon, colour, rng, box=None, gap=SCRIBBLE_GAP):
    """Fills `polygon` (or the band `box`) with back-and-forth brush strokes at a random
    slant, clipped to its shape, the way a person colours a shape in."""
    mask = Image.new("L", canvas.size, 0)
    pen = ImageDraw.Draw(mask)
    points = np.asarray(polygon if box is None else _box(*box), dtype=np.float64)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    slant = rng.uniform(-0.5, 0.5)
    gap = gap * rng.uniform(0.8, 1.2)
    ys = np.arange(y0 - gap, y1 + 2 * gap, gap)
    zigzag = [(x0 - gap if i % 2 == 0 else x1 + gap, y + slant * (x1 - x0) * (i % 2) + rng.normal(0, 2))
              for i, y in enumerate(ys)]
    _stroke(pen, zigzag, 255)
    clip = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(clip).polygon([tuple(p) for p in points.tolist()], fill=255)
    canvas.paste(colour, mask=ImageChops.multiply(mask, clip))


def draw(class_name, rng):
    """One drawing of `class_name` on the canvas as an RGB PIL image (CANVAS_SIZE square)."""
    if class_name not in TEMPLATES:
        raise ValueError(f"unknown class {class_name!r}; the classes are: {', '.join(CLASSES)}")
    template = TEMPLATES[class_name]
    canvas = Image.new("RGB", (CANVAS_SIZE, CANVAS_SIZE), WHITE)
    pen = ImageDraw.Draw(canvas)
    scenery = BACKGROUNDS[template["background"]] if rng.random() < BACKGROUND_SHARE else []
    # A part is drawn on white or on the scenery: in one of their colours it needs a black
    # outline to be seen at all (a person would not leave a sky-blue plane unoutlined on the sky).
    unseen = {WHITE, *(colour for colour, _, _ in scenery)}
    for colour, top, bottom in scenery:
        _scribble(canvas, None, colour, rng, box=(0, top * CANVAS_SIZE, CANVAS_SIZE, bottom * CANVAS_SIZE),
                  gap=BACKGROUND_GAP)
    style = STYLES[rng.integers(len(STYLES))]
    colours = [choices[rng.integers(len(choices))] for choices in template["colours"]]
    outline = BLACK if rng.random() < 0.6 else None  # else each part outlined in its own colour
    side = CANVAS_SIZE * rng.uniform(0.62, 0.9)
    centre = CANVAS_SIZE / 2 + rng.uniform(-0.08, 0.08, size=2) * CANVAS_SIZE
    angle = rng.uniform(-0.15, 0.15)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    mirror = rng.random() < 0.5

    def place(points):
        points = np.asarray(points, dtype=np.float64) - 0.5
        if mirror:
            points[:, 0] = -points[:, 0]
        placed = points @ rotation.T * side + centre
        return placed + rng.normal(0, WOBBLE, size=placed.shape)

    for entry in template["parts"]:
        kind, geometry, slot = _part(entry)
        colour = colours[min(slot, len(colours) - 1)]
        points = place(_ellipse_points(*geometry) if kind == "ellipse" else geometry)
        if kind == "line":
            _stroke(pen, points, colour)
            continue
        if style != "outline":
            _scribble(canvas, points, colour, rng)
        if style != "scribble" or colour in unseen:
            _stroke(pen, points, outline or (BLACK if colour in unseen else colour), closed=True)
    return canvas


def build(per_class, seed=0):
    """(images uint8 (10 * per_class, 32, 32, 3), labels (10 * per_class,)): `per_class`
    drawings of each class, through the app's to_model_input; the same for the same seed."""
    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    images, labels = [], []
    for label, class_name in enumerate(CLASSES):
        rng = np.random.default_rng([seed, label])
        for _ in range(int(per_class)):
            images.append(to_model_input(np.asarray(draw(class_name, rng))))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def contact_sheet(per_class=10, seed=0, scale=3):
    """A PIL image: each class's first `per_class` drawings in one row, canvas size beside
    the 32x32 the model sees (enlarged `scale` times)."""
    thumb = 32 * scale
    sheet = Image.new("RGB", (per_class * 2 * thumb, len(CLASSES) * thumb), "white")
    for label, class_name in enumerate(CLASSES):
        rng = np.random.default_rng([seed, label])
        for column in range(per_class):
            canvas = draw(class_name, rng)
            small = Image.fromarray(to_model_input(np.asarray(canvas)))
            sheet.paste(canvas.resize((thumb, thumb)), (2 * column * thumb, label * thumb))
            enlarged = small.resize((thumb, thumb), Image.Resampling.NEAREST)
            sheet.paste(enlarged, ((2 * column + 1) * thumb, label * thumb))
    return sheet


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m devsets.drawings",
                                     description="Write a contact sheet of the generated drawings to look at.")
    parser.add_argument("--out", default="test-artifacts/drawings_contact_sheet.png")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(args.per_class, args.seed).save(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
