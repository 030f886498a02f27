"""Real photographs that PyPI packages ship inside their wheels, as 32x32 model inputs.

Nothing is downloaded: scikit-image's bundled `skimage/data` files (not the ones its
pooch registry fetches), scikit-learn's two sample images, matplotlib's sample data and
Gradio's media assets. Each photo gives CROPS model inputs (the centred square the app
itself takes, and five smaller squares), made with the app's own `to_model_input`, so a
figure can be reported per image and per source photo. The list and licences are in
devsets/README.md; no photo is tuned on: a score is fitted on CIFAR-10 alone.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_demo.images import square_crop_box, to_model_input


@dataclass(frozen=True)
class Photo:
    """One bundled photo: the package and path inside it, what it shows, and its group:
    "foreign" (none of the ten classes), "near" (outside them but close to one: big cats,
    a motorcycle, a rocket) or "in-class" (one of the ten, named in `label`)."""

    package: str
    path: str
    shows: str
    group: str
    label: str = ""


PHOTOS = (
    Photo("skimage", "data/astronaut.png", "an astronaut (person) in a space suit", "foreign"),
    Photo("skimage", "data/brick.png", "a brick wall (grey)", "foreign"),
    Photo("skimage", "data/camera.png", "a man with a camera on a tripod (grey)", "foreign"),
    Photo("skimage", "data/cell.png", "a cell under a microscope (grey)", "foreign"),
    Photo("skimage", "data/clock_motion.png", "a clock blurred by motion (grey)", "foreign"),
    Photo("skimage", "data/coffee.png", "a cup of coffee on a saucer", "foreign"),
    Photo("skimage", "data/coins.png", "old coins on a table (grey)", "foreign"),
    Photo("skimage", "data/grass.png", "grass (grey)", "foreign"),
    Photo("skimage", "data/gravel.png", "gravel (grey)", "foreign"),
    Photo("skimage", "data/hubble_deep_field.jpg", "galaxies (Hubble deep field)", "foreign"),
    Photo("skimage", "data/ihc.png", "stained tissue under a microscope", "foreign"),
    Photo("skimage", "data/moon.png", "the moon's surface (grey)", "foreign"),
    Photo("skimage", "data/page.png", "a printed page (grey)", "foreign"),
    Photo("skimage", "data/retina.jpg", "a human retina", "foreign"),
    Photo("skimage", "data/text.png", "handwritten text on paper (grey)", "foreign"),
    Photo("sklearn", "datasets/images/china.jpg", "a Chinese temple among trees", "foreign"),
    Photo("sklearn", "datasets/images/flower.jpg", "a dahlia flower", "foreign"),
    Photo("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "a portrait of Grace Hopper", "foreign"),
    Photo("gradio", "media_assets/images/tower.jpg", "the Eiffel tower at dusk", "foreign"),
    Photo("skimage", "data/rocket.jpg", "a rocket on its launch pad at night", "near"),
    Photo("skimage", "data/motorcycle_left.png", "a motorcycle in a garage", "near"),
    Photo("gradio", "media_assets/images/cheetah.jpg", "a running cheetah", "near"),
    Photo("gradio", "media_assets/images/cheetah1.jpg", "a cheetah's head", "near"),
    Photo("gradio", "media_assets/images/lion.jpg", "a lion lying on a rock", "near"),
    Photo("skimage", "data/chelsea.png", "Chelsea, a tabby cat", "in-class", "cat"),
)
GROUPS = ("foreign", "near", "in-class")
# (centre x, centre y, side) of each crop as shares of the photo's centred square: the
# whole square (what the app sends the model), then its centre and four corners at 60%.
CROPS = ((0.5, 0.5, 1.0), (0.5, 0.5, 0.6), (0.3, 0.3, 0.6), (0.7, 0.3, 0.6), (0.3, 0.7, 0.6), (0.7, 0.7, 0.6))


@dataclass
class PhotoSet:
    """Model inputs (N, 32, 32, 3) uint8 with the index into PHOTOS each came from."""

    images: np.ndarray
    photo: np.ndarray

    def names(self):
        """Each image's source file name."""
        return [Path(PHOTOS[index].path).name for index in self.photo]


def photo_path(photo):
    """Where `photo` lies in its installed package; ValueError saying what to install."""
    spec = importlib.util.find_spec(photo.package)
    if spec is None or spec.origin is None:
        raise ValueError(f"the development photos need the {photo.package} package "
                         "(pip install -r requirements-dev.txt)")
    path = Path(spec.origin).parent / photo.path
    if not path.is_file():
        raise ValueError(f"{path} is missing: this {photo.package} version does not ship {photo.path}")
    return path


def crops_of(image):
    """The CROPS of a PIL image as (len(CROPS), 32, 32, 3) uint8 model inputs."""
    left, top, side = square_crop_box(*image.size)
    out = []
    for centre_x, centre_y, share in CROPS:
        size = share * side
        x0, y0 = left + centre_x * side - size / 2, top + centre_y * side - size / 2
        out.append(to_model_input(image.crop(tuple(round(v) for v in (x0, y0, x0 + size, y0 + size)))))
    return np.stack(out)


def build(group):
    """The PhotoSet of one of GROUPS: every crop of every photo in it."""
    if group not in GROUPS:
        raise ValueError(f"unknown photo group {group!r}; the groups are: {', '.join(GROUPS)}")
    chosen = [index for index, photo in enumerate(PHOTOS) if photo.group == group]
    images = []
    for index in chosen:
        with Image.open(photo_path(PHOTOS[index])) as opened:
            images.append(crops_of(opened.convert("RGB")))
    return PhotoSet(np.concatenate(images), np.repeat(chosen, len(CROPS)))
