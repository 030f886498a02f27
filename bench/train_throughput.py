"""Training throughput of the full model, float32 against mixed_bfloat16, in one run.

    python -m bench.train_throughput [--steps 30] [--rounds 3] [--batch-size 128] [--width-mult 1.0]

Both precisions train the recipe's compiled model (training.build_training_model) with
train_on_batch on the same batches; rounds alternate float32 / bf16 so that any drift
in the machine's speed hits both alike. Prints images/second per round and the median,
and the achieved GFLOP/s counting 3x the forward multiply-adds of the convolutions and
the dense layer (forward + two backward products), as is customary.
"""

import argparse
import statistics
import time

import keras
import numpy as np

from cifar_demo.model import PRECISIONS
from cifar_demo.training import NUM_CLASSES, TrainConfig, augment_images, build_training_model


def forward_flops_per_image(model):
    """2 x multiply-adds of every Conv2D and Dense layer for one image."""
    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_h, kernel_w, channels_in, channels_out = layer.kernel.shape
            _, height, width, _ = layer.output.shape
            flops += 2 * height * width * kernel_h * kernel_w * channels_in * channels_out
        elif isinstance(layer, keras.layers.Dense):
            inputs, outputs = layer.kernel.shape
            flops += 2 * inputs * outputs
    return flops


def time_steps(model, batches, steps):
    start = time.perf_counter()
    for index in range(steps):
        images, targets = batches[index % len(batches)]
        model.train_on_batch(images, targets)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per round and precision")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps after building (tracing, oneDNN caches)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating float32/bf16 rounds")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width-mult", type=float, default=1.0, help="1.0 is the shipped architecture")
    args = parser.parse_args()
    if min(args.steps, args.rounds, args.batch_size) < 1 or args.warmup_steps < 0:
        parser.error("--steps, --rounds and --batch-size must be positive, --warmup-steps non-negative")

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(8 * args.batch_size, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, size=len(pixels))
    batches = []
    for start in range(0, len(pixels), args.batch_size):
        images = augment_images(pixels[start : start + args.batch_size], rng).astype("float32")
        batches.append((images, np.eye(NUM_CLASSES, dtype="float32")[labels[start : start + args.batch_size]]))

    total_steps = args.warmup_steps + args.rounds * args.steps
    models = {}
    for precision in PRECISIONS:
        config = TrainConfig(batch_size=args.batch_size, width_mult=args.width_mult, precision=precision)
        models[precision] = build_training_model(config, total_steps)
        time_steps(models[precision], batches, args.warmup_steps)
    flops = forward_flops_per_image(models["float32"])
    print(f"model: {models['float32'].count_params():,} parameters, {flops / 1e6:.0f} MFLOP forward per image, "
          f"{3 * flops / 1e9:.2f} GFLOP per trained image; batch {args.batch_size}, {args.steps} steps per round")

    rates = {precision: [] for precision in PRECISIONS}
    for round_index in range(1, args.rounds + 1):
        for precision in PRECISIONS:
            seconds = time_steps(models[precision], batches, args.steps)
            rate = args.steps * args.batch_size / seconds
            rates[precision].append(rate)
            print(f"round {round_index} {precision:>15}: {rate:6.1f} images/s")
    print()
    for precision in PRECISIONS:
        median = statistics.median(rates[precision])
        print(f"{precision:>15}: median {median:6.1f} images/s = {median * 3 * flops / 1e9:6.1f} GFLOP/s, "
              f"{50000 / median / 60:.1f} min per 50,000-image epoch")
    ratio = statistics.median(rates["mixed_bfloat16"]) / statistics.median(rates["float32"])
    print(f"mixed_bfloat16 / float32 speed: {ratio:.2f}x")


if __name__ == "__main__":
    main()
