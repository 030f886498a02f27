"""Seeded stroke drawings of the ten classes, as a person makes them on the app's canvas.

Each drawing is a child's-picture template of its class (a plane's fuselage and swept
wings, a car's body, cabin and two wheels, a cat's round head with pointed ears, ...),
drawn by the renderer the training option `class_drawings` uses
(cifar_demo/class_drawings.py: jittered in size, place, tilt, direction and every
vertex, on the Classify tab's white canvas with its round brush in colours of its
palette, as an outline or scribble-filled, a third over a scribbled scenery). These
templates are the development set's own: training draws from other ones
(class_drawings.TRAINING_TEMPLATES), so the figures here measure how far drawings carry
over. The canvas goes through the app's own `to_model_input`, as the drawing does in the app.

`python -m devsets.drawings` writes a contact sheet to test-artifacts/ to look at.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_demo import CLASSES, class_drawings
from cifar_demo.class_drawings import BLACK, BLUE, BROWN, GREEN, GREY, ORANGE, RED, SKY, WHITE, YELLOW, box, legs
from cifar_demo.images import to_model_input

# Each class: parts in a unit box, as cifar_demo/class_drawings.py describes templates.
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
            *[(kind, points, 2) for kind, points in legs((0.42, 0.52), 0.69, 0.88)],
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
            *legs((0.26, 0.34, 0.58, 0.66), 0.58, 0.95, 0.02),
        ],
    },
    "dog": {
        "colours": [(BROWN, GREY, BLACK, ORANGE, YELLOW), (BLACK, BROWN)],
        "background": "grass",
        "parts": [
            ("ellipse", (0.45, 0.55, 0.28, 0.14)),
            ("line", [(0.18, 0.5), (0.1, 0.38), (0.07, 0.28)]),
            *legs((0.25, 0.35, 0.57, 0.66), 0.64, 0.88),
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
            *legs((0.24, 0.33, 0.58, 0.67), 0.56, 0.96),
        ],
    },
    "ship": {
        "colours": [(RED, BLACK, GREY, BLUE, BROWN), (WHITE, YELLOW, GREY), (RED, BLACK, ORANGE)],
        "background": "water",
        "parts": [
            ("shape", [(0.52, 0.2), (0.6, 0.2), (0.6, 0.4), (0.52, 0.4)], 2),
            ("shape", box(0.3, 0.38, 0.68, 0.56), 1),
            ("shape", [(0.03, 0.54), (0.97, 0.54), (0.82, 0.76), (0.16, 0.76)]),
        ],
    },
    "truck": {
        "colours": [(RED, BLUE, ORANGE, YELLOW, GREEN, GREY), (RED, BLUE, YELLOW, WHITE), (BLACK, GREY)],
        "background": "road",
        "parts": [
            ("shape", box(0.04, 0.18, 0.66, 0.72)),
            ("shape", [(0.68, 0.36), (0.86, 0.36), (0.96, 0.52), (0.96, 0.72), (0.68, 0.72)], 1),
            ("shape", [(0.73, 0.41), (0.84, 0.41), (0.9, 0.52), (0.73, 0.52)], 2),
            ("ellipse", (0.18, 0.75, 0.08, 0.08), 2),
            ("ellipse", (0.5, 0.75, 0.08, 0.08), 2),
            ("ellipse", (0.82, 0.75, 0.08, 0.08), 2),
        ],
    },
}


def draw(class_name, rng):
    """One drawing of `class_name` on the canvas as an RGB PIL image (CANVAS_SIZE square)."""
    if class_name not in TEMPLATES:
        raise ValueError(f"unknown class {class_name!r}; the classes are: {', '.join(CLASSES)}")
    return class_drawings.draw(TEMPLATES[class_name], rng)


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


def score(predictor, per_class, seed):
    """How `predictor` does on build(per_class, seed): {"top-1", "top-3": shares; "per class":
    {class: top-1 share}; "called": {class: {class it was wrongly called: count}}}."""
    images, labels = build(per_class, seed)
    top3 = np.argsort(-predictor.predict_proba(images), axis=1)[:, :3]
    right = top3[:, 0] == labels
    called = {}
    for label, class_name in enumerate(CLASSES):
        wrong = np.bincount(top3[(labels == label) & ~right, 0], minlength=len(CLASSES))
        called[class_name] = {CLASSES[other]: int(wrong[other]) for other in np.flatnonzero(wrong)}
    return {"top-1": float(right.mean()), "top-3": float((top3 == labels[:, None]).any(axis=1).mean()),
            "per class": {name: float(right[labels == label].mean()) for label, name in enumerate(CLASSES)},
            "called": called}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m devsets.drawings",
                                     description="Write a contact sheet of the generated drawings to look at, "
                                                 "or score a model on them (--score).")
    parser.add_argument("--out", default="test-artifacts/drawings_contact_sheet.png")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", action="store_true",
                        help="print the model's top-1 and top-3 on the drawings, per class, and what the wrong ones "
                             "were called, instead of writing the contact sheet")
    parser.add_argument("--weights", default=None, help="weights to score with --score (default: the shipped ones)")
    args = parser.parse_args(argv)
    if not args.score:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(args.per_class, args.seed).save(args.out)
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    from cifar_demo.predictor import Predictor  # only here: the contact sheet needs no model

    try:
        figures = score(Predictor.load(args.weights), args.per_class, args.seed)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{10 * args.per_class} drawings, seed {args.seed}: top-1 {figures['top-1']:.1%}, "
          f"top-3 {figures['top-3']:.1%}")
    for name, share in figures["per class"].items():
        wrong = ", ".join(f"{other} {count}" for other, count in figures["called"][name].items())
        print(f"  {name:<11}{share:>7.0%}" + (f"   wrong: {wrong}" if wrong else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
