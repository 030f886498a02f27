"""Training throughput of the full model: float32 against mixed_bfloat16, and the training
engine's own loop against plain train_on_batch, all in one run.

    python -m bench.train_throughput [--steps 30] [--rounds 3] [--batch-size 128] [--width-mult 1.0]

Both precisions train the recipe's compiled model (training.build_training_model) with
train_on_batch on the same pre-augmented batches. The "engine" arm runs
training.Trainer (the loop behind the CLI and the Train tab: augmentation on the
training thread, target encoding, events) for --steps batches of the same size, in
--engine-precision, and counts its images/s from its BatchEnded events, after its own
warm-up batches. Rounds alternate the three arms so that any drift in the machine's
speed hits all alike; the engine / train_on_batch ratio is its overhead, measured side
by side. Prints images/second per round and the median, and the achieved GFLOP/s
counting 3x the forward multiply-adds of the convolutions and the dense layer (forward
+ two backward products), as is customary.
"""

import argparse
import statistics
import time

import keras
import numpy as np

from bench.results import record
from cifar_demo.data import Cifar10
from cifar_demo.model import PRECISIONS
from cifar_demo.training import (
    NUM_CLASSES,
    BatchEnded,
    TrainConfig,
    Trainer,
    augment_images,
    build_training_model,
    fastest_precision,
)


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


def engine_rate(pixels, labels, args):
    """Images/s of one Trainer run over --steps batches after --warmup-steps, from its events.

    Each run builds and traces a fresh model, so the warm-up batches are left out: the rate
    is from the end of the last warm-up batch to the end of the last batch, as the events'
    elapsed_seconds (wall time since the run started) report it."""
    batches = args.warmup_steps + args.steps
    data = Cifar10(pixels[: batches * args.batch_size], labels[: batches * args.batch_size], pixels[:10], labels[:10])
    config = TrainConfig(
        epochs=1, val_size=0, batch_size=args.batch_size, width_mult=args.width_mult, precision=args.engine_precision
    )  # val_size=0 validates on the 10 "test" images above, after the timed batches
    ended = []
    Trainer(config, callbacks=[lambda event: isinstance(event, BatchEnded) and ended.append(event)]).run(data)
    start = ended[args.warmup_steps - 1].elapsed_seconds if args.warmup_steps else 0.0
    return args.steps * args.batch_size / (ended[-1].elapsed_seconds - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per round and arm")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps after building (tracing, caches)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating float32 / bf16 / engine rounds")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width-mult", type=float, default=1.0, help="1.0 is the shipped architecture")
    parser.add_argument("--engine-precision", default=fastest_precision(), choices=PRECISIONS,
                        help="precision of the engine arm (default: what the presets use on this CPU)")
    args = parser.parse_args()
    if min(args.steps, args.rounds, args.batch_size) < 1 or args.warmup_steps < 0:
        parser.error("--steps, --rounds and --batch-size must be positive, --warmup-steps non-negative")

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=((args.warmup_steps + args.steps) * args.batch_size, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, size=len(pixels)).astype(np.uint8)
    batches = []
    for start in range(0, min(len(pixels), 8 * args.batch_size), args.batch_size):
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

    engine = f"engine ({args.engine_precision})"
    rates = {name: [] for name in (*PRECISIONS, engine)}
    for round_index in range(1, args.rounds + 1):
        for precision in PRECISIONS:
            seconds = time_steps(models[precision], batches, args.steps)
            rates[precision].append(args.steps * args.batch_size / seconds)
            print(f"round {round_index} {precision:>24}: {rates[precision][-1]:6.1f} images/s", flush=True)
        rates[engine].append(engine_rate(pixels, labels, args))
        print(f"round {round_index} {engine:>24}: {rates[engine][-1]:6.1f} images/s", flush=True)
    print()
    figures = {}
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:>24}: median {median:6.1f} images/s = {median * 3 * flops / 1e9:6.1f} GFLOP/s, "
              f"{50000 / median / 60:.1f} min per 50,000-image epoch")
        arm = name if name == engine else f"train_on_batch, {name}"
        figures[f"{arm}, median"] = (median, "images/s")
        figures[f"{arm}, achieved"] = (median * 3 * flops / 1e9, "GFLOP/s")
    bf16_ratio = statistics.median(rates["mixed_bfloat16"]) / statistics.median(rates["float32"])
    engine_ratio = statistics.median(rates[engine]) / statistics.median(rates[args.engine_precision])
    print(f"mixed_bfloat16 / float32 speed: {bf16_ratio:.2f}x")
    print(f"engine / train_on_batch in {args.engine_precision}: {engine_ratio:.2f}x")
    figures["mixed_bfloat16 / float32 (train_on_batch)"] = (bf16_ratio, "x")
    figures[f"engine / train_on_batch, both {args.engine_precision}"] = (engine_ratio, "x")
    record("train_throughput", figures, notes=(
        f"{flops / 1e6:.0f} MFLOP forward per image (GFLOP/s count 3x that); batch {args.batch_size}, "
        f"width {args.width_mult:g}, {args.steps} timed steps x {args.rounds} rounds per arm"
    ))

if __name__ == "__main__":
    main()
