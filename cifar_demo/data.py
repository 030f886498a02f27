"""CIFAR-10 loading: CIFAR10_PATH first (.npz or cifar-10-batches-py), then Keras' cache/download."""

import argparse
import os
import pickle
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_demo import CLASSES
from cifar_demo.artifacts import SHIPPED_SAMPLE, UNREADABLE_NPZ
from cifar_demo.keras_internals import (
    CIFAR10_ARCHIVE_BYTES,
    keras_cifar10_downloaded_bytes,
    keras_has_cifar10,
    keras_load_cifar10,
)

ENV_VAR = "CIFAR10_PATH"
SAMPLE_PER_CLASS = 10       # images per class in a sample: the blog's 10x10 grid
NUM_CLASSES = len(CLASSES)
BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH_FILE = "test_batch"

_cache_lock = threading.Lock()
_cache = {}


@dataclass(frozen=True)
class Cifar10:
    """The dataset as uint8 NHWC RGB images and flat uint8 labels, in the official order."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def split_training_set(num_images, val_size, train_size=None, seed=0):
    """Deterministic (train indices, validation indices), each sorted, of a training set of
    `num_images`: `val_size` held out at random (by `seed`), then the first `train_size`
    of the rest in the same random order (all of them when None)."""
    if val_size >= num_images:
        raise ValueError(f"val_size {val_size} leaves no training images out of {num_images}")
    order = np.random.default_rng([seed, 0]).permutation(num_images)
    val_indices = np.sort(order[:val_size])
    rest = order[val_size:]
    if train_size is not None:
        if train_size > len(rest):
            raise ValueError(
                f"train_size {train_size} exceeds the {len(rest)} training images "
                f"left after holding out {val_size} for validation"
            )
        rest = rest[:train_size]
    return np.sort(rest), val_indices


def load_cifar10(path=None):
    """Loads CIFAR-10 from `path`, else $CIFAR10_PATH, else Keras' cache or download.

    Raises ValueError with instructions when none of those works (for example offline
    without a local copy), so that the CLI and the UI can show the message as it is.
    """
    path = path if path is not None else os.environ.get(ENV_VAR) or None
    if path is not None:
        return _load_local(Path(path))
    return _load_with_keras()


def load_cifar10_cached(path=None):
    """load_cifar10(path), read once per process and source (a server's tabs share one
    copy of the 180 MB arrays); callers in other threads wait for the first read rather
    than start their own. ValueError as load_cifar10, and the next call tries again."""
    source = path if path is not None else os.environ.get(ENV_VAR) or None
    key = None if source is None else str(Path(source).resolve())
    with _cache_lock:
        if key not in _cache:
            _cache[key] = load_cifar10(source)
        return _cache[key]


def needs_download(path=None):
    """True when load_cifar10(path) would download from the internet (no local copy)."""
    if (path if path is not None else os.environ.get(ENV_VAR)):
        return False
    return not keras_has_cifar10()


def on_this_machine(path=None):
    """True when the full CIFAR-10 can be read here without a download: the file or folder
    `path` (or $CIFAR10_PATH) names exists, or Keras' cache holds it. A CIFAR10_PATH naming
    nothing is False, where needs_download is False too: reading would fail either way."""
    source = path if path is not None else os.environ.get(ENV_VAR)
    if source:
        return Path(source).exists()
    return keras_has_cifar10()


def download_progress():
    """(bytes downloaded so far, bytes in all) of the CIFAR-10 archive while
    load_cifar10 downloads it."""
    return keras_cifar10_downloaded_bytes(), CIFAR10_ARCHIVE_BYTES


def load_cifar10_showing(show, poll_seconds=1.0):
    """load_cifar10_cached() for a page to watch: a generator that, while the archive
    downloads, yields show(bytes downloaded, bytes in all) every `poll_seconds`, and returns
    the dataset (`dataset = yield from ...`); ValueError as load_cifar10."""
    if not needs_download():
        return load_cifar10_cached()
    outcome = {}

    def load():
        try:
            outcome["dataset"] = load_cifar10_cached()
        except Exception as error:  # raised again in the caller's thread, as it is
            outcome["error"] = error

    loader = threading.Thread(target=load, name="cifar10-download", daemon=True)
    loader.start()
    while loader.is_alive():
        yield show(*download_progress())
        loader.join(poll_seconds)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["dataset"]


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
    except UNREADABLE_NPZ as error:
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
    try:
        (x_train, y_train), (x_test, y_test) = keras_load_cifar10()
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


@dataclass(frozen=True)
class DataSample:
    """A few real training images and what describes the whole dataset, small enough to
    ship: the Data tab opens with it before (or without) any download."""

    images: np.ndarray        # uint8 (N, 32, 32, 3), grouped by class in class order
    labels: np.ndarray        # uint8 (N,)
    indices: np.ndarray       # int64 (N,): positions in the official training set
    train_counts: np.ndarray  # int64 (10,): training images per class, all 50,000
    test_counts: np.ndarray   # int64 (10,): test images per class, all 10,000
    mean: np.ndarray          # float64 (3,): per-channel mean of the training pixels, 0..255
    std: np.ndarray           # float64 (3,): per-channel population std of the same, 0..255

    def save(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **{name: getattr(self, name) for name in self.__dataclass_fields__})

    @classmethod
    def load(cls, path=SHIPPED_SAMPLE):
        """Reads a sample written by `save`; ValueError naming the file when it is not one."""
        try:
            with np.load(path) as archive:
                return cls(**{name: archive[name] for name in cls.__dataclass_fields__})
        except UNREADABLE_NPZ as error:
            raise ValueError(f"{path} is not a CIFAR-10 sample written by "
                             f"`python -m cifar_demo.data --write-sample` ({error})") from None


def sample_indices(labels, rng, per_class=SAMPLE_PER_CLASS):
    """`per_class` random positions of each class without repeats, grouped in class order."""
    labels = np.asarray(labels).reshape(-1)
    chosen = []
    for label in range(NUM_CLASSES):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise ValueError(f"class {label} has {len(members)} images, fewer than the {per_class} asked for")
        chosen.append(np.sort(rng.choice(members, size=per_class, replace=False)))
    return np.concatenate(chosen).astype(np.int64)


def class_counts(labels):
    """Images per class, for all ten classes (zeros included)."""
    return np.bincount(np.asarray(labels).reshape(-1), minlength=NUM_CLASSES).astype(np.int64)


def channel_statistics(images, chunk=5000):
    """Per-channel mean and population standard deviation of uint8 images on the 0..255
    scale, accumulated in float64 chunks so 50,000 images never become a 1.2 GB array."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or not len(images):
        raise ValueError(f"images must be a non-empty (N, H, W, 3) array, got shape {images.shape}")
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, len(images), chunk):
        pixels = images[start : start + chunk].reshape(-1, 3).astype(np.float64)
        total += pixels.sum(axis=0)
        squares += np.square(pixels).sum(axis=0)
    count = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / count
    return mean, np.sqrt(np.maximum(0.0, squares / count - np.square(mean)))


def make_sample(data, seed=0, per_class=SAMPLE_PER_CLASS):
    """A DataSample of `data`: `per_class` random training images of each class and the
    whole dataset's class counts and channel statistics."""
    indices = sample_indices(data.y_train, np.random.default_rng(seed), per_class)
    mean, std = channel_statistics(data.x_train)
    return DataSample(
        images=data.x_train[indices], labels=data.y_train[indices], indices=indices,
        train_counts=class_counts(data.y_train), test_counts=class_counts(data.y_test), mean=mean, std=std,
    )


def write_examples(data, out_dir, per_class=1):
    """Saves the first `per_class` official test images of each class as PNGs named
    `<test index>_<class>.png`: the only part of the dataset the repository ships."""
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
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.data",
        description="Check the CIFAR-10 copy and write the app's example images and training sample.",
    )
    parser.add_argument("--data", default=None,
                        help="CIFAR-10 .npz or cifar-10-batches-py folder (default: $CIFAR10_PATH, then Keras)")
    parser.add_argument("--write-examples", metavar="DIR", default=None,
                        help="write one official test image per class as PNG into DIR")
    parser.add_argument("--write-sample", metavar="NPZ", default=None,
                        help=f"write {SAMPLE_PER_CLASS} random training images per class, the class counts and the "
                        f"channel statistics (the Data tab's {SHIPPED_SAMPLE.name})")
    parser.add_argument("--seed", type=int, default=0, help="which random sample --write-sample draws (default: 0)")
    args = parser.parse_args(argv)
    try:
        data = load_cifar10(args.data)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"train {data.x_train.shape}, test {data.x_test.shape}; "
          f"train mean per channel {data.x_train.reshape(-1, 3).mean(axis=0).round(4).tolist()}")
    if args.write_examples:
        for path in write_examples(data, args.write_examples):
            print(f"wrote {path}")
    if args.write_sample:
        sample = make_sample(data, seed=args.seed)
        sample.save(args.write_sample)
        print(f"wrote {args.write_sample}: {len(sample.images)} training images "
              f"(indices {sample.indices[:3].tolist()}...), "
              f"mean {sample.mean.round(4).tolist()}, std {sample.std.round(4).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
