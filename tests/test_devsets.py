"""The development sets of devsets/ (real photos shipped in PyPI wheels, generated class
drawings) and what the shipped weights and detector reach on them: a regression test, so a
later change cannot quietly lose what is reached now.

Issue 16's goals for the retrained weights are in RETRAIN_GOALS and asserted where the shipped
weights meet them on these sets; the rest hold today's figures (NOW_*) with the goal written
beside them, for a better retrain to raise. Figures: `python -m cifar_demo.ood --fit`
prints the same sets' rates (model card, "Probably none of these", drawings, nearest
training images)."""

import numpy as np
import pytest
from PIL import Image

from cifar_demo import CLASSES, Predictor, ood
from cifar_demo.drawing_style import BRUSH_SIZE, CANVAS_SIZE, PALETTE
from cifar_demo.images import to_model_input
from tests.browser_pages import ARTIFACTS
from tests.test_ood import real_test_images

photos = pytest.importorskip("devsets.photos", reason="needs scikit-image and scikit-learn (requirements-dev.txt)")
pytest.importorskip("skimage", reason="the development photos need scikit-image (requirements-dev.txt)")
pytest.importorskip("sklearn", reason="the development photos need scikit-learn (requirements-dev.txt)")
from devsets import drawings  # noqa: E402  (after the skips: it is only useful with them)

# 500 drawings, seed 1; each class's first 10 are the "class drawings" set of --fit's table. Fifty
# a class, because with ten one drawing is ten points of a class's figure: a class drawn right
# 60% of the time shows 5 of 10 or fewer with probability 0.37, 25 of 50 or fewer with 0.10.
DRAWINGS_PER_CLASS = 50
RETRAIN_GOALS = {           # issue 16, for the retrained weights
    "foreign photos flagged": 0.80, "in-class photos flagged": 0.10, "test images flagged": 0.05,
    "auroc in-class vs foreign": 0.90,
    "drawings top-1": 0.80, "drawings top-3": 0.95, "every class's drawings top-1": 0.50,
    "drawings called none of these": 0.10,
}
# What the shipped weights (five runs, the last four with drawings, the last of them three
# seeds averaged) and detector reach now (1 Dec 2026, the same computations as below), less a
# margin of a few images: a real loss fails, a change of BLAS does not. Goals met are asserted
# as such: the drawings' top-1 (91.0%) and top-3 (98.2%), every class's drawings above half
# (birds 64%, dogs 68%, the others 92-100%), and the foreign photos flagged (86.0%, 98 of 114
# crops of 19 photos, since the detector adds the energy to its score and averages it over the
# input and its mirror image). Birds pass narrowly: 50 a class of seed 7 get 40% of them
# right, of seed 1000 56% (model card).
NOW_PHOTOS_FLAGGED_CENTRE = 14      # 15 of the 19 photos' centred squares (what the app sends the model)
NOW_DRAWINGS_NONE_OF_THESE = 0.05   # at most: 0% (goal at most 10%); the rest get the drawing notice
NOW_DRAWINGS_NOTICE = 0.95          # at least: 100% given the drawing notice


@pytest.fixture(scope="module")
def shipped_detector():
    return ood.OodDetector.load(Predictor.load())


@pytest.fixture(scope="module")
def photo_sets():
    return {group: photos.build(group) for group in photos.GROUPS}


@pytest.fixture(scope="module")
def class_drawings():
    return drawings.build(DRAWINGS_PER_CLASS, seed=1)


@pytest.mark.same_on_every_backend
def test_photo_sets_are_the_listed_photos_as_the_app_sees_them(photo_sets):
    for group, found in photo_sets.items():
        listed = [photo for photo in photos.PHOTOS if photo.group == group]
        assert found.images.dtype == np.uint8 and found.images.shape == (len(listed) * len(photos.CROPS), 32, 32, 3)
        assert sorted(set(found.names())) == sorted(photo.path.split("/")[-1] for photo in listed)
    assert len(photo_sets["in-class"].images) == len(photos.CROPS)  # one cat: all the wheels hold
    cat = photos.PHOTOS[int(photo_sets["in-class"].photo[0])]
    with Image.open(photos.photo_path(cat)) as opened:  # the first crop is what the app itself sends
        np.testing.assert_array_equal(photo_sets["in-class"].images[0], to_model_input(opened.convert("RGB")))
    with pytest.raises(ValueError, match="unknown photo group 'cats'"):
        photos.build("cats")


@pytest.mark.same_on_every_backend
def test_drawings_are_seeded_and_drawn_in_the_canvas_palette_and_brush(class_drawings):
    images, labels = class_drawings
    assert images.shape == (10 * DRAWINGS_PER_CLASS, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), DRAWINGS_PER_CLASS))
    again, _ = drawings.build(2, seed=1)
    np.testing.assert_array_equal(again[:2], images[:2])
    assert not np.array_equal(drawings.build(2, seed=2)[0], again)
    canvas = drawings.draw("cat", np.random.default_rng(0))
    assert canvas.size == (CANVAS_SIZE, CANVAS_SIZE)
    colours = {"#{:02x}{:02x}{:02x}".format(*colour) for _, colour in canvas.getcolors(CANVAS_SIZE**2)}
    assert colours <= set(PALETTE)  # painted with the palette only: no antialiasing on the canvas either
    drawn = (np.asarray(canvas) != 255).any(axis=2)
    assert drawn.mean() > 0.03  # something drawn
    assert drawn.sum(axis=1).max() >= BRUSH_SIZE  # strokes at least the brush's width
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sheet = drawings.contact_sheet(per_class=4, seed=1)
    sheet.save(ARTIFACTS / "drawings_contact_sheet.png")  # to look at
    assert sheet.size == (4 * 2 * 96, 10 * 96)
    with pytest.raises(ValueError, match="unknown class 'unicorn'"):
        drawings.draw("unicorn", np.random.default_rng(0))


def test_score_command_prints_the_models_figures_on_the_drawings(shipped_detector, capsys):
    assert drawings.main(["--score", "--per-class", "2", "--seed", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    images, labels = drawings.build(2, seed=1)  # the oracle: the same drawings through the predictor directly
    top1 = shipped_detector.predictor.predict_proba(images).argmax(axis=1)
    assert printed[0].startswith(f"20 drawings, seed 1: top-1 {(top1 == labels).mean():.1%}, top-3 ")
    assert [line.split()[0] for line in printed[1:]] == list(CLASSES)
    for line, label in zip(printed[1:], range(len(CLASSES)), strict=True):
        assert line.split()[1] == f"{(top1[labels == label] == label).mean():.0%}"
        called = [CLASSES[other] for other in top1[labels == label] if other != label]
        assert all(f"{name} {called.count(name)}" in line for name in called)
    assert drawings.main(["--score", "--weights", "no/such.weights.h5"]) == 2


def test_shipped_detector_on_real_photos(shipped_detector, photo_sets):
    foreign = photo_sets["foreign"]
    _, _, flagged, called_a_drawing = shipped_detector.verdicts(foreign.images)
    assert called_a_drawing.mean() <= 0.05  # a photo gets no drawing notice
    assert flagged.mean() >= RETRAIN_GOALS["foreign photos flagged"]  # 86.0%
    centre = np.arange(len(foreign.images)) % len(photos.CROPS) == 0
    assert flagged[centre].sum() >= NOW_PHOTOS_FLAGGED_CENTRE
    in_class = photo_sets["in-class"].images
    assert shipped_detector.verdicts(in_class)[2].mean() <= RETRAIN_GOALS["in-class photos flagged"]
    auroc = ood.auroc(shipped_detector.score(in_class), shipped_detector.score(foreign.images))
    assert auroc >= RETRAIN_GOALS["auroc in-class vs foreign"]
    cat = shipped_detector.predictor.predict_proba(in_class).argmax(axis=1)
    assert (cat == CLASSES.index("cat")).mean() >= 0.5
    # the official test set: a sample here (test_ood checks the threshold on held-out images)
    assert shipped_detector.verdicts(real_test_images())[2].mean() <= 0.15  # 5% expected of ~110 images


def test_shipped_model_and_notices_on_class_drawings(shipped_detector, class_drawings):
    images, labels = class_drawings
    probabilities = shipped_detector.predictor.predict_proba(images)
    top3 = np.argsort(-probabilities, axis=1)[:, :3]
    top1_right = top3[:, 0] == labels
    assert top1_right.mean() >= RETRAIN_GOALS["drawings top-1"]  # 91.0%
    assert (top3 == labels[:, None]).any(axis=1).mean() >= RETRAIN_GOALS["drawings top-3"]  # 98.2%
    per_class = [top1_right[labels == label].mean() for label in range(len(CLASSES))]
    assert min(per_class) > RETRAIN_GOALS["every class's drawings top-1"]  # birds 64%, the lowest
    _, _, none_of_these, drawing_notice = shipped_detector.verdicts(images)
    assert none_of_these.mean() <= NOW_DRAWINGS_NONE_OF_THESE  # goal: "drawings called none of these", met
    assert drawing_notice.mean() >= NOW_DRAWINGS_NOTICE
    # photos are not called drawings: the CIFAR-10 sample here, the foreign photos above
    assert shipped_detector.verdicts(real_test_images())[3].mean() <= 0.05
