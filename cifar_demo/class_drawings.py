"""Child's-picture drawings of the ten classes, drawn the way people draw on the Classify
tab's canvas (issue 16): the renderer, and the templates the training option
`class_drawings` draws from.

A template is a class's parts in a unit box (x right, y down; the object faces right),
drawn in order: ("shape", points) is a closed shape (scribble-filled in the filled styles),
("ellipse", (cx, cy, rx, ry)) one too, ("line", points) an open stroke; a third item picks
the part's colour slot. "colours" gives each slot's choices, the palette colours a person
would pick, and "background" names the scenery. Each drawing jitters the template in size, place, tilt, direction
and every vertex, and draws it on the white CANVAS_SIZE canvas with the BRUSH_SIZE round
brush in PALETTE colours: as an outline, as scribble-filled shapes with or without an
outline, and on a third of them over a scribbled scenery (sky, grass, water or road).

TRAINING_TEMPLATES holds two or three templates per class, written apart from the development set's
(devsets/drawings.py, which scores drawings with this renderer). The first of each are other
poses and kinds than the dev set's: a plane from the side, a car from the front, a flying
bird, a walking cat, a sitting dog, a frog from the side, a sailboat, a tanker truck. The
second are the poses people draw most (a dog standing, a bird perched, a cat sitting, a
liner), some of which the dev set draws too, in other shapes. Birds have a third, standing on
the ground, and dogs one with a floppy ear. A model trained on the first alone measures how
far drawings carry over to ones it never saw (model card).
"""

import math

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
BACKGROUNDS = {  # scenery: (colour, top, bottom) bands as shares of the canvas height
    "sky": [(SKY, 0.0, 1.0)],
    "grass": [(SKY, 0.0, 0.45), (GREEN, 0.8, 1.0)],
    "water": [(BLUE, 0.72, 1.0)],
    "road": [(GREY, 0.82, 1.0), (SKY, 0.0, 0.3)],
}


def box(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def legs(xs, top, bottom, bend=0.0):
    return [("line", [(x, top), (x + bend, (top + bottom) / 2), (x, bottom)]) for x in xs]


_FIRST_TEMPLATES = {
    "airplane": {
        "colours": [(GREY, WHITE, RED, BLUE, SKY), (BLUE, BLACK, SKY)],
        "background": "sky",
        "parts": [
            ("shape", [(0.1, 0.47), (0.05, 0.2), (0.18, 0.2), (0.3, 0.47)]),
            ("ellipse", (0.5, 0.52, 0.44, 0.1)),
            ("shape", [(0.42, 0.54), (0.62, 0.54), (0.5, 0.82), (0.36, 0.82)]),
            ("line", [(0.58, 0.49), (0.84, 0.49)], 1),
        ],
    },
    "automobile": {
        "colours": [(RED, BLUE, YELLOW, ORANGE, GREEN, GREY), (SKY, WHITE), (YELLOW, WHITE), (BLACK, GREY)],
        "background": "road",
        "parts": [
            ("shape", [(0.24, 0.42), (0.32, 0.16), (0.68, 0.16), (0.76, 0.42)]),
            ("shape", box(0.08, 0.4, 0.92, 0.74)),
            ("shape", box(0.34, 0.21, 0.66, 0.38), 1),
            ("ellipse", (0.22, 0.56, 0.07, 0.06), 2),
            ("ellipse", (0.78, 0.56, 0.07, 0.06), 2),
            ("shape", box(0.12, 0.74, 0.26, 0.9), 3),
            ("shape", box(0.74, 0.74, 0.88, 0.9), 3),
        ],
    },
    "bird": {
        "colours": [(RED, BLUE, BROWN, YELLOW, BLACK, SKY), (ORANGE, YELLOW)],
        "background": "sky",
        "parts": [
            ("shape", [(0.3, 0.55), (0.08, 0.46), (0.1, 0.66)]),
            ("ellipse", (0.5, 0.56, 0.23, 0.1)),
            ("shape", [(0.4, 0.52), (0.28, 0.1), (0.58, 0.5)]),
            ("shape", [(0.52, 0.56), (0.7, 0.2), (0.66, 0.56)]),
            ("ellipse", (0.77, 0.49, 0.09, 0.08)),
            ("shape", [(0.84, 0.45), (0.97, 0.5), (0.84, 0.54)], 1),
        ],
    },
    "cat": {
        "colours": [(ORANGE, GREY, BLACK, BROWN, YELLOW, WHITE), (BLACK, GREY)],
        "background": "grass",
        "parts": [
            ("line", [(0.22, 0.56), (0.12, 0.4), (0.16, 0.2)]),
            *legs((0.28, 0.36, 0.56, 0.64), 0.64, 0.88),
            ("ellipse", (0.45, 0.58, 0.25, 0.12)),
            ("shape", [(0.68, 0.33), (0.7, 0.14), (0.77, 0.29)]),
            ("shape", [(0.79, 0.29), (0.86, 0.13), (0.87, 0.34)]),
            ("ellipse", (0.77, 0.4, 0.12, 0.11)),
            ("line", [(0.83, 0.44), (0.98, 0.41)], 1),
            ("line", [(0.83, 0.47), (0.98, 0.52)], 1),
        ],
    },
    "deer": {
        "colours": [(BROWN, ORANGE), (BROWN, BLACK), (WHITE,)],
        "background": "grass",
        "parts": [
            ("line", [(0.76, 0.2), (0.68, 0.08)], 1),
            ("line", [(0.72, 0.14), (0.62, 0.1)], 1),
            ("line", [(0.82, 0.2), (0.9, 0.06)], 1),
            ("line", [(0.86, 0.13), (0.96, 0.12)], 1),
            *legs((0.28, 0.38, 0.56, 0.64), 0.6, 0.97, 0.03),
            ("ellipse", (0.46, 0.52, 0.24, 0.11)),
            ("shape", [(0.6, 0.48), (0.7, 0.24), (0.78, 0.26), (0.72, 0.52)]),
            ("ellipse", (0.8, 0.27, 0.08, 0.06)),
            ("ellipse", (0.4, 0.5, 0.03, 0.03), 2),
            ("ellipse", (0.5, 0.54, 0.03, 0.03), 2),
            ("line", [(0.22, 0.48), (0.18, 0.44)]),
        ],
    },
    "dog": {
        "colours": [(BROWN, GREY, BLACK, ORANGE, YELLOW, WHITE), (BLACK, BROWN), (RED,)],
        "background": "grass",
        "parts": [
            ("line", [(0.3, 0.8), (0.16, 0.72), (0.1, 0.58)]),
            ("ellipse", (0.44, 0.62, 0.17, 0.22)),
            ("line", [(0.5, 0.7), (0.52, 0.94)]),
            ("line", [(0.4, 0.74), (0.4, 0.94)]),
            ("ellipse", (0.58, 0.32, 0.14, 0.12)),
            ("ellipse", (0.72, 0.37, 0.09, 0.06)),
            ("shape", [(0.5, 0.24), (0.44, 0.5), (0.55, 0.46)], 1),
            ("line", [(0.72, 0.44), (0.74, 0.52)], 2),
        ],
    },
    "frog": {
        "colours": [(GREEN,), (WHITE, YELLOW), (BLACK,)],
        "background": "water",
        "parts": [
            ("line", [(0.34, 0.66), (0.16, 0.5), (0.1, 0.8), (0.3, 0.86)]),
            ("shape", [(0.18, 0.76), (0.34, 0.42), (0.68, 0.36), (0.88, 0.56), (0.8, 0.76)]),
            ("line", [(0.7, 0.7), (0.76, 0.9), (0.86, 0.9)]),
            ("ellipse", (0.64, 0.33, 0.09, 0.09), 1),
            ("line", [(0.66, 0.33), (0.67, 0.34)], 2),
            ("line", [(0.7, 0.56), (0.88, 0.56)], 2),
        ],
    },
    "horse": {
        "colours": [(BROWN, BLACK, GREY, ORANGE, WHITE), (BLACK, BROWN, YELLOW)],
        "background": "grass",
        "parts": [
            ("line", [(0.2, 0.44), (0.1, 0.52), (0.06, 0.72)], 1),
            *legs((0.25, 0.34, 0.58, 0.67), 0.54, 0.95, 0.06),
            ("ellipse", (0.45, 0.47, 0.27, 0.12)),
            ("shape", [(0.6, 0.44), (0.7, 0.16), (0.8, 0.16), (0.76, 0.48)]),
            ("ellipse", (0.85, 0.25, 0.12, 0.07)),
            ("line", [(0.66, 0.38), (0.68, 0.22), (0.72, 0.12)], 1),
        ],
    },
    "ship": {
        "colours": [(BROWN, RED, BLACK, BLUE), (WHITE, YELLOW, RED), (BLACK, BROWN)],
        "background": "water",
        "parts": [
            ("line", [(0.5, 0.66), (0.5, 0.08)], 2),
            ("shape", [(0.53, 0.1), (0.53, 0.6), (0.86, 0.6)], 1),
            ("shape", [(0.47, 0.18), (0.47, 0.6), (0.2, 0.6)], 1),
            ("shape", [(0.06, 0.66), (0.94, 0.66), (0.78, 0.84), (0.2, 0.84)]),
        ],
    },
    "truck": {
        "colours": [(GREY, WHITE, RED, BLUE, ORANGE, YELLOW), (RED, BLUE, GREEN, YELLOW), (SKY, WHITE), (BLACK, GREY)],
        "background": "road",
        "parts": [
            ("line", [(0.04, 0.66), (0.96, 0.66)], 3),
            ("ellipse", (0.36, 0.46, 0.32, 0.16)),
            ("shape", box(0.72, 0.26, 0.96, 0.7), 1),
            ("shape", box(0.76, 0.31, 0.91, 0.46), 2),
            ("ellipse", (0.16, 0.74, 0.08, 0.08), 3),
            ("ellipse", (0.4, 0.74, 0.08, 0.08), 3),
            ("ellipse", (0.82, 0.74, 0.08, 0.08), 3),
        ],
    },
}

_SECOND_TEMPLATES = {
    "airplane": {
        "colours": [(GREY, WHITE, RED, BLUE, SKY), (BLACK, RED, BLUE)],
        "background": "sky",
        "parts": [
            ("shape", [(0.44, 0.08), (0.56, 0.08), (0.6, 0.92), (0.48, 0.92)]),
            ("shape", [(0.1, 0.34), (0.17, 0.34), (0.19, 0.66), (0.12, 0.66)]),
            ("ellipse", (0.5, 0.5, 0.44, 0.07)),
            ("line", [(0.88, 0.5), (0.9, 0.5)], 1),
        ],
    },
    "automobile": {
        "colours": [(RED, BLUE, YELLOW, ORANGE, GREEN, BLACK), (SKY, WHITE), (BLACK, GREY)],
        "background": "road",
        "parts": [
            ("shape", [(0.04, 0.58), (0.3, 0.5), (0.45, 0.36), (0.7, 0.38), (0.96, 0.56), (0.96, 0.72),
                       (0.04, 0.72)]),
            ("shape", [(0.47, 0.42), (0.68, 0.43), (0.76, 0.52), (0.42, 0.52)], 1),
            ("ellipse", (0.24, 0.74, 0.11, 0.11), 2),
            ("ellipse", (0.78, 0.74, 0.11, 0.11), 2),
        ],
    },
    "bird": {
        "colours": [(RED, BLUE, BROWN, YELLOW, BLACK, GREY), (ORANGE, YELLOW), (BROWN, BLACK)],
        "background": "sky",
        "parts": [
            ("line", [(0.05, 0.8), (0.95, 0.76)], 2),
            ("shape", [(0.36, 0.58), (0.1, 0.74), (0.2, 0.8)]),
            ("line", [(0.48, 0.66), (0.47, 0.76)], 2),
            ("line", [(0.56, 0.66), (0.57, 0.76)], 2),
            ("ellipse", (0.5, 0.52, 0.2, 0.15)),
            ("ellipse", (0.68, 0.32, 0.11, 0.1)),
            ("shape", [(0.77, 0.29), (0.92, 0.33), (0.77, 0.37)], 1),
            ("line", [(0.38, 0.48), (0.52, 0.6), (0.62, 0.5)], 2),
        ],
    },
    "cat": {
        "colours": [(ORANGE, GREY, BLACK, BROWN, WHITE), (BLACK, GREY)],
        "background": "grass",
        "parts": [
            ("line", [(0.26, 0.84), (0.1, 0.78), (0.08, 0.6)]),
            ("ellipse", (0.42, 0.64, 0.2, 0.24)),
            ("line", [(0.54, 0.7), (0.56, 0.92)]),
            ("shape", [(0.5, 0.24), (0.5, 0.06), (0.6, 0.18)]),
            ("shape", [(0.64, 0.18), (0.74, 0.06), (0.72, 0.24)]),
            ("ellipse", (0.6, 0.3, 0.14, 0.13)),
            ("line", [(0.68, 0.34), (0.86, 0.3)], 1),
            ("line", [(0.68, 0.37), (0.86, 0.42)], 1),
        ],
    },
    "deer": {
        "colours": [(BROWN, ORANGE), (BROWN, BLACK), (WHITE,)],
        "background": "grass",
        "parts": [
            ("line", [(0.8, 0.18), (0.74, 0.04)], 1),
            ("line", [(0.77, 0.1), (0.68, 0.06)], 1),
            ("line", [(0.84, 0.18), (0.94, 0.06)], 1),
            ("line", [(0.62, 0.5), (0.76, 0.66), (0.86, 0.72)]),
            ("line", [(0.58, 0.52), (0.68, 0.74)]),
            ("line", [(0.3, 0.5), (0.16, 0.66), (0.04, 0.7)]),
            ("line", [(0.34, 0.52), (0.24, 0.74)]),
            ("ellipse", (0.45, 0.46, 0.25, 0.1)),
            ("shape", [(0.62, 0.42), (0.74, 0.2), (0.8, 0.24), (0.7, 0.48)]),
            ("ellipse", (0.82, 0.22, 0.08, 0.05)),
            ("line", [(0.2, 0.42), (0.16, 0.37)], 2),
        ],
    },
    "dog": {
        "colours": [(BROWN, GREY, BLACK, ORANGE, YELLOW, WHITE), (BLACK, BROWN), (RED, BLUE)],
        "background": "grass",
        "parts": [
            ("line", [(0.2, 0.46), (0.12, 0.3), (0.2, 0.22)]),
            *legs((0.26, 0.34, 0.56, 0.64), 0.6, 0.9),
            ("ellipse", (0.45, 0.52, 0.26, 0.12)),
            ("ellipse", (0.76, 0.34, 0.11, 0.1)),
            ("shape", [(0.82, 0.3), (0.98, 0.38), (0.84, 0.44)]),
            ("shape", [(0.7, 0.28), (0.72, 0.1), (0.8, 0.26)], 1),
            ("line", [(0.66, 0.42), (0.7, 0.5)], 2),
        ],
    },
    "frog": {
        "colours": [(GREEN,), (WHITE, YELLOW, GREEN), (BLACK,)],
        "background": "water",
        "parts": [
            ("line", [(0.38, 0.66), (0.2, 0.74), (0.24, 0.92)]),
            ("line", [(0.62, 0.66), (0.8, 0.74), (0.76, 0.92)]),
            ("line", [(0.4, 0.4), (0.26, 0.34)]),
            ("line", [(0.6, 0.4), (0.74, 0.34)]),
            ("ellipse", (0.5, 0.5, 0.18, 0.24)),
            ("ellipse", (0.42, 0.27, 0.06, 0.06), 1),
            ("ellipse", (0.58, 0.27, 0.06, 0.06), 1),
            ("line", [(0.42, 0.27), (0.43, 0.28)], 2),
            ("line", [(0.58, 0.27), (0.57, 0.28)], 2),
        ],
    },
    "horse": {
        "colours": [(BROWN, BLACK, GREY, WHITE, ORANGE), (BLACK, BROWN, YELLOW)],
        "background": "grass",
        "parts": [
            ("line", [(0.2, 0.4), (0.12, 0.56), (0.12, 0.76)], 1),
            *legs((0.24, 0.33, 0.57, 0.66), 0.53, 0.95),
            ("ellipse", (0.45, 0.45, 0.27, 0.12)),
            ("shape", [(0.64, 0.4), (0.82, 0.62), (0.88, 0.56), (0.72, 0.36)]),
            ("ellipse", (0.88, 0.68, 0.06, 0.1)),
            ("line", [(0.68, 0.36), (0.8, 0.5)], 1),
        ],
    },
    "ship": {
        "colours": [(BLACK, RED, BLUE, GREY), (WHITE, YELLOW, GREY), (RED, ORANGE, BLACK)],
        "background": "water",
        "parts": [
            ("shape", box(0.34, 0.22, 0.42, 0.4), 2),
            ("shape", box(0.52, 0.22, 0.6, 0.4), 2),
            ("shape", box(0.22, 0.4, 0.74, 0.56), 1),
            ("shape", [(0.04, 0.56), (0.96, 0.56), (0.86, 0.76), (0.1, 0.76)]),
        ],
    },
    "truck": {
        "colours": [(YELLOW, ORANGE, RED, GREY, GREEN), (RED, BLUE, YELLOW, WHITE), (SKY, WHITE), (BLACK, GREY)],
        "background": "road",
        "parts": [
            ("shape", [(0.04, 0.2), (0.62, 0.36), (0.62, 0.66), (0.08, 0.66)]),
            ("shape", box(0.66, 0.3, 0.94, 0.7), 1),
            ("shape", box(0.72, 0.36, 0.88, 0.5), 2),
            ("ellipse", (0.16, 0.74, 0.08, 0.08), 3),
            ("ellipse", (0.4, 0.74, 0.08, 0.08), 3),
            ("ellipse", (0.8, 0.74, 0.08, 0.08), 3),
        ],
    },
}
# Written after the second templates' birds still came out as airplanes on the dev set, in the
# pose the dev set draws (model card): dev-set feedback, a pose and not an image.
_EXTRA_TEMPLATES = {
    "bird": [{  # standing on the ground, wing folded, tail up
        "colours": [(RED, BLUE, YELLOW, BROWN, BLACK, ORANGE), (ORANGE, YELLOW), (BROWN, BLACK, GREY, WHITE),
                    (BLACK, ORANGE)],
        "background": "grass",
        "parts": [
            ("line", [(0.44, 0.62), (0.44, 0.84), (0.4, 0.88)], 3),
            ("line", [(0.52, 0.62), (0.52, 0.84), (0.56, 0.88)], 3),
            ("shape", [(0.28, 0.48), (0.06, 0.34), (0.1, 0.56)]),
            ("ellipse", (0.46, 0.5, 0.22, 0.14)),
            ("ellipse", (0.7, 0.3, 0.1, 0.1)),
            ("shape", [(0.78, 0.27), (0.94, 0.31), (0.78, 0.35)], 1),
            ("shape", [(0.34, 0.46), (0.56, 0.44), (0.46, 0.6)], 2),
            ("line", [(0.72, 0.28), (0.73, 0.29)], 3),
        ],
    }],
    "dog": [{  # standing, floppy ear hanging down, muzzle forward, tail up
        "colours": [(BROWN, BLACK, GREY, ORANGE, YELLOW, WHITE), (BLACK, BROWN), (RED, BLUE)],
        "background": "grass",
        "parts": [
            ("line", [(0.2, 0.5), (0.1, 0.36), (0.14, 0.26)]),
            *legs((0.24, 0.33, 0.58, 0.66), 0.62, 0.92, -0.02),
            ("shape", [(0.18, 0.46), (0.42, 0.42), (0.7, 0.44), (0.72, 0.62), (0.2, 0.66)]),
            ("shape", [(0.66, 0.22), (0.82, 0.2), (0.96, 0.34), (0.94, 0.44), (0.7, 0.46)]),
            ("shape", [(0.68, 0.24), (0.6, 0.3), (0.62, 0.52), (0.7, 0.48)], 1),
            ("line", [(0.8, 0.28), (0.81, 0.29)], 1),
            ("line", [(0.66, 0.48), (0.74, 0.52)], 2),
        ],
    }],
}
TRAINING_TEMPLATES = {name: [_FIRST_TEMPLATES[name], _SECOND_TEMPLATES[name], *_EXTRA_TEMPLATES.get(name, [])]
                      for name in CLASSES}


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


def _scribble(canvas, polygon, colour, rng, band=None, gap=SCRIBBLE_GAP):
    """Fills `polygon` (or the rectangle `band`) with back-and-forth brush strokes at a
    random slant, clipped to its shape, the way a person colours a shape in."""
    mask = Image.new("L", canvas.size, 0)
    pen = ImageDraw.Draw(mask)
    points = np.asarray(polygon if band is None else box(*band), dtype=np.float64)
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


def draw(template, rng):
    """One drawing of `template` (see the module docstring) on the canvas: an RGB PIL image,
    CANVAS_SIZE square."""
    canvas = Image.new("RGB", (CANVAS_SIZE, CANVAS_SIZE), WHITE)
    pen = ImageDraw.Draw(canvas)
    scenery = BACKGROUNDS[template["background"]] if rng.random() < BACKGROUND_SHARE else []
    # A part is drawn on white or on the scenery: in one of their colours it needs a black
    # outline to be seen at all (a person would not leave a sky-blue plane unoutlined on the sky).
    unseen = {WHITE, *(colour for colour, _, _ in scenery)}
    for colour, top, bottom in scenery:
        _scribble(canvas, None, colour, rng, band=(0, top * CANVAS_SIZE, CANVAS_SIZE, bottom * CANVAS_SIZE),
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


def class_drawing_images(images, labels, rng, share):
    """A random `share` of uint8 images (N, 32, 32, 3) replaced by a fresh drawing of their
    class (`labels`, N class indices) from TRAINING_TEMPLATES, shrunk as the app shrinks its
    canvas; the rest unchanged. The training engine's option `class_drawings`."""
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share!r}")
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"one label per image: got {len(labels)} labels for {len(images)} images")
    chosen = np.flatnonzero(rng.random(len(images)) < share)
    if not len(chosen):
        return images
    out = np.array(images, copy=True)
    for index in chosen:
        templates = TRAINING_TEMPLATES[CLASSES[int(labels[index])]]
        out[index] = to_model_input(np.asarray(draw(templates[rng.integers(len(templates))], rng)))
    return out
