"""CIFAR-10 loading: CIFAR10_PATH first (.npz or cifar-10-batches-py), then Keras' cache/download."""

import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_VAR = "CIFAR10_PATH"
BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH_FILE = "test_batch"


@dataclass(frozen=True)
class Cifar10:
    """The dataset as uint8 NHWC RGB images and flat uint8 labels, in the official order."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_cifar10(path=None):
    """Loads CIFAR-10 from `path`, else $CIFAR10_PATH, else Keras' cache or download.

    Raises ValueError with instructions when none of those works (for example offline
    without a local copy), so that the CLI and the UI can show the message as it is.
    """
    path = path if path is not None else os.environ.get(ENV_VAR) or None
    if path is not None:
        return _load_local(Path(path))
    return _load_with_keras()


def needs_download(path=None):
    """True when load_cifar10(path) would download from the internet (no local copy)."""
    if (path if path is not None else os.environ.get(ENV_VAR)):
        return False
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return not (keras_home / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py" / "test_batch").is_file()


def _load_local(path):
    if not path.exists():
        raise ValueError(
            f"CIFAR-10 not found at {path} (from {ENV_VAR} or the path given). "
            f"Point {ENV_VAR} at a cifar10.npz or a cifar-10-batches-py folder."
        )
    if path.is_dir():
        return _load_batches_folder(path)
    return _load_npz(path)


def _load_npz(path):
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as error:
        raise ValueError(
            f"{path} lacks the array {error}; it needs x_train, y_train, x_test, y_test."
        ) from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz file: {error}") from None
    return _checked(**arrays, source=path)


def _load_batches_folder(folder):
    """Reads the official python pickles (rows of 3072 bytes, channel-major)."""
    missing = [name for name in BATCH_FILES + (TEST_BATCH_FILE,) if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"{folder} is not a cifar-10-batches-py folder: missing {', '.join(missing)}."
        )

    def read(name):
        with open(folder / name, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return images.transpose(0, 2, 3, 1), np.asarray(batch[b"labels"], dtype=np.uint8)

    train = [read(name) for name in BATCH_FILES]
    x_test, y_test = read(TEST_BATCH_FILE)
    return _checked(
        x_train=np.concatenate([images for images, _ in train]),
        y_train=np.concatenate([labels for _, labels in train]),
        x_test=x_test,
        y_test=y_test,
        source=folder,
    )


def _load_with_keras():
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # network errors come in many types (URLError, OSError, ...)
        raise ValueError(
            "CIFAR-10 is not available: it is not in Keras' cache and the download failed "
            f"({error}). Set {ENV_VAR} to a cifar10.npz (x_train, y_train, x_test, y_test) "
            "or to a cifar-10-batches-py folder, or connect to the internet."
        ) from None
    return _checked(x_train, y_train, x_test, y_test, source="Keras cache")


def _checked(x_train, y_train, x_test, y_test, source):
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    for name, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise ValueError(f"{source}: {name} images have shape {images.shape}, not (N, 32, 32, 3).")
        if len(images) != len(labels):
            raise ValueError(f"{source}: {len(images)} {name} images but {len(labels)} labels.")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{source}: {name} labels must lie in 0..9.")
    return Cifar10(
        x_train=x_train.astype(np.uint8, copy=False),
        y_train=y_train.astype(np.uint8),
        x_test=x_test.astype(np.uint8, copy=False),
        y_test=y_test.astype(np.uint8),
    )


def write_examples(data, out_dir, per_class=1):
    """Saves the first `per_class` official test images of each class as PNGs named
    `<test index>_<class>.png`: the only part of the dataset the repository ships."""
    from PIL import Image

    from cifar_demo import CLASSES

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for label, name in enumerate(CLASSES):
        for index in np.flatnonzero(data.y_test == label)[:per_class]:
            path = out_dir / f"{index:04d}_{name}.png"
            Image.fromarray(data.x_test[index]).save(path)
            written.append(path)
    return written


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cifar_demo.data", description="Check the CIFAR-10 copy and write the app's example images.")
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--write-examples", metavar="DIR", default=None, help="write one official test image per class as PNG into DIR")
    args = parser.parse_args(argv)
    try:
        data = load_cifar10(args.data)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"train {data.x_train.shape}, test {data.x_test.shape}; train mean per channel {data.x_train.reshape(-1, 3).mean(axis=0).round(4).tolist()}")
    if args.write_examples:
        for path in write_examples(data, args.write_examples):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
