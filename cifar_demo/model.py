"""The classifier's architecture: the blog's nine-convolution network, nothing else."""

import keras
import numpy as np

# Per-channel mean and population standard deviation of the 50,000 CIFAR-10
# training images on the 0..255 scale (../shared/data/cifar10/README.md).
CIFAR10_MEAN = (125.3069, 122.9504, 113.8654)
CIFAR10_STD = (62.9932, 62.0887, 66.7049)

DEFAULT_WIDTHS = (64, 128, 256)
CONVOLUTIONS_PER_STAGE = 3
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# Layers other modules read by name.
EARLY_LAYER = "stage1_conv3_relu"  # the first stage's output: colour and texture detectors
FEATURES_LAYER = "global_pool"     # the pooled features the final Dense layer reads
LOGITS_LAYER = "logits"            # that Dense layer: the class scores before the softmax
PROBABILITIES_LAYER = "probabilities"  # the float32 softmax over the logits
EXPLAIN_LAYER = "stage3_conv3_relu"  # the last convolution, which global pooling reads


def scaled_widths(width_mult):
    """Stage widths for a width multiplier (1.0 gives the blog's 64/128/256)."""
    if not width_mult > 0:
        raise ValueError(f"width_mult must be positive, got {width_mult!r}")
    return tuple(max(1, int(round(width * width_mult))) for width in DEFAULT_WIDTHS)


def build_model(widths=DEFAULT_WIDTHS, num_classes=10, name="cifar10_cnn", precision="float32"):
    """Builds the blog's CNN as a Functional model taking uint8-range RGB (N, 32, 32, 3).

    Three stages of three [Conv2D 3x3 'same' -> BatchNorm -> ReLU], with 2x2 average
    pooling after the first two stages, then global average pooling, a Dense layer
    giving the logits and a float32 softmax (a layer of its own, so the logits are an
    output anyone can read: calibration, explanations and OOD scores start from them).
    Weights saved before the softmax had its own layer load unchanged: it has none.
    Normalisation by the training-set statistics happens inside the
    model, so callers feed raw 0..255 pixels and cannot forget it.

    `precision` "mixed_bfloat16" (CPUs with AMX, recent GPUs) or "mixed_float16" (GPUs
    with float16 tensor cores; training scales the loss) computes in 16 bits with float32
    variables (the saved weights are the same either way); logits and softmax always run
    in float32.
    The policy is passed to each layer rather than set globally, so a bf16 training
    run in one thread never changes a model another thread builds.
    """
    widths = tuple(widths)
    if len(widths) != 3 or any(int(w) != w or w < 1 for w in widths):
        raise ValueError(f"widths must be three positive integers, got {widths!r}")
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")

    inputs = keras.Input(shape=(32, 32, 3), name="pixels")
    mean = np.asarray(CIFAR10_MEAN, dtype="float32")
    std = np.asarray(CIFAR10_STD, dtype="float32")
    x = keras.layers.Rescaling(
        scale=(1.0 / std).tolist(), offset=(-mean / std).tolist(), name="normalize", dtype=precision
    )(inputs)
    for stage, width in enumerate(widths, start=1):
        for index in range(1, CONVOLUTIONS_PER_STAGE + 1):
            prefix = f"stage{stage}_conv{index}"
            x = keras.layers.Conv2D(int(width), 3, padding="same", name=prefix, dtype=precision)(x)
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn", dtype=precision)(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu", dtype=precision)(x)
        if stage < len(widths):
            x = keras.layers.AveragePooling2D(pool_size=2, name=f"stage{stage}_pool", dtype=precision)(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool", dtype=precision)(x)
    logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER, dtype="float32")(x)
    outputs = keras.layers.Activation("softmax", name=PROBABILITIES_LAYER, dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)


def describe_layers(model):
    """One row per layer: name, type, output shape (without the batch axis) and parameter
    count, in the order data flows; what the About tab and the model card show."""
    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape)[1:]
        rows.append({
            "layer": layer.name,
            "type": type(layer).__name__,
            "output shape": " x ".join(str(size) for size in shape),
            "parameters": int(layer.count_params()),
        })
    return rows
