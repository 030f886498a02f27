"""What preparing a training batch costs beside the training step itself: the random crop and
flip, the drawing styles (--drawing-style) and the generated class drawings (--class-drawings),
each at the shipped recipe's share, on batches of training images, against train_on_batch of
the recipe's model. All of them run on the training thread, so their time adds to each step's.

    CIFAR10_PATH=.../cifar10.npz python -m bench.batch_preparation [--batches 20] [--batch-size 128]
        [--precision P] [--width-mult 1.0]

Without CIFAR10_PATH (or the data in Keras' cache) it prepares random pixels, which cost the
same to crop and to draw over.
"""

import argparse
import time

import numpy as np

from bench.results import record
from cifar_demo.class_drawings import class_drawing_images
from cifar_demo.data import load_cifar10, on_this_machine
from cifar_demo.drawing_style import drawing_style_images
from cifar_demo.model import PRECISIONS
from cifar_demo.training import NUM_CLASSES, TrainConfig, augment_images, build_training_model, fastest_precision

DRAWING_STYLE_SHARE = 0.3  # the shipped weights' fine-tunes and finishes (model card)
CLASS_DRAWINGS_SHARE = 0.1  # their last finish


def training_batches(count, batch_size, rng):
    """`count` (images, labels) batches: CIFAR-10 training images where they are on this
    machine, else random pixels and labels."""
    if on_this_machine():
        data = load_cifar10()
        images, labels = data.x_train, data.y_train
    else:
        images = rng.integers(0, 256, size=(count * batch_size, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, NUM_CLASSES, size=count * batch_size)
    order = rng.permutation(len(images))[: count * batch_size].reshape(count, batch_size)
    return [(images[indices], labels[indices]) for indices in order]


def seconds_per_batch(prepare, batches):
    start = time.perf_counter()
    for images, labels in batches:
        prepare(images, labels)
    return (time.perf_counter() - start) / len(batches)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="batches timed per arm (default 20)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per batch (default 128)")
    parser.add_argument("--precision", choices=PRECISIONS, default=fastest_precision(),
                        help="of the training step (default: the fastest here)")
    parser.add_argument("--width-mult", type=float, default=1.0, help="model width of the training step")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.batch_size < 1:
        parser.error("--batches and --batch-size must be at least 1")

    rng = np.random.default_rng(0)
    batches = training_batches(args.batches, args.batch_size, rng)
    arms = {
        "crop + flip": lambda images, labels: augment_images(images, rng),
        f"drawing styles, {DRAWING_STYLE_SHARE:.0%} of images": lambda images, labels: drawing_style_images(
            images, rng, DRAWING_STYLE_SHARE),
        f"class drawings, {CLASS_DRAWINGS_SHARE:.0%} of images": lambda images, labels: class_drawing_images(
            images, labels, rng, CLASS_DRAWINGS_SHARE),
        "class drawings, every image": lambda images, labels: class_drawing_images(images, labels, rng, 1.0),
    }
    costs = {name: seconds_per_batch(prepare, batches) for name, prepare in arms.items()}

    config = TrainConfig(width_mult=args.width_mult, precision=args.precision)
    model = build_training_model(config, total_steps=args.batches + 2)
    targets = np.eye(NUM_CLASSES, dtype="float32")
    for images, labels in batches[:2]:  # compile and warm up
        model.train_on_batch(images.astype("float32"), targets[labels])
    step = seconds_per_batch(lambda images, labels: model.train_on_batch(images.astype("float32"), targets[labels]),
                             batches)

    print(f"{args.batches} batches of {args.batch_size} images; training step: width {args.width_mult}, "
          f"{args.precision}")
    print(f"  {'arm':<34}{'ms/batch':>10}{'of a step':>11}")
    figures = {}
    for name, seconds in costs.items():
        print(f"  {name:<34}{seconds * 1000:>10.1f}{seconds / step:>10.1%}")
        figures[f"{name}: per batch"] = (seconds * 1000, "ms")
        figures[f"{name}: against a training step"] = (seconds / step * 100, "%")
    print(f"  {'training step (train_on_batch)':<34}{step * 1000:>10.1f}")
    per_drawing = costs["class drawings, every image"] / args.batch_size
    print(f"one class drawing: {per_drawing * 1000:.1f} ms")
    figures["training step"] = (step * 1000, "ms")
    figures["one class drawing"] = (per_drawing * 1000, "ms")
    record("batch_preparation", figures)


if __name__ == "__main__":
    main()
