"""The Robustness tab: its views on a tiny model (robustness_views, no Gradio), the shipped
report it and the About tab show, and its /corrupt endpoint on the real app."""

import json

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from cifar_demo import CLASSES, images
from cifar_demo.adversarial import smallest_flipping_epsilon
from cifar_demo.artifacts import SHIPPED_WEIGHTS, corruptions_path_for, shipped_files
from cifar_demo.corruptions import CORRUPTIONS, DISPLAY_NAMES, GREY
from cifar_demo.model import build_model
from cifar_demo.plots import corruption_curves
from cifar_demo.predictor import Predictor
from cifar_demo.robustness import corruption_accuracy
from cifar_demo.ui import about_tab
from cifar_demo.ui import robustness_views as views
from cifar_demo.ui.current_input import CurrentInput, example_inputs
from tests.conftest import REPO, shown_value, toy_dataset

SHIPPED_REPORT = corruptions_path_for(SHIPPED_WEIGHTS)


class StubDetector:
    """Says every input is in distribution, with a fixed score."""

    def assess(self, pixels):
        return {"score": 1.25, "threshold": 2.5, "out_of_distribution": False}


@pytest.fixture(scope="module")
def tiny():
    return Predictor(build_model((4, 8, 16)))


@pytest.fixture(scope="module")
def examples():
    return example_inputs()


def test_the_input_is_the_sessions_or_an_example_and_anything_else_is_named(examples):
    current = CurrentInput(np.zeros((32, 32, 3), np.uint8), "your drawing from the Classify tab")
    assert views.chosen_input(views.CURRENT, current, examples) is current
    assert views.chosen_input(views.CURRENT, None, examples) is None  # the tab then shows the hint
    assert views.chosen_input("ship (test image #1)", current, examples) is examples["ship (test image #1)"]
    with pytest.raises(ValueError, match="unknown input 'a unicorn'"):
        views.chosen_input("a unicorn", current, examples)


def test_corruptions_go_by_name_or_display_name_and_severity_is_a_whole_number_from_0_to_5():
    assert views.corruption_name("jpeg") == "jpeg" and views.corruption_name("JPEG quality") == "jpeg"
    assert [views.corruption_name(DISPLAY_NAMES[name]) for name in CORRUPTIONS] == list(CORRUPTIONS)
    for bad in ("fog", ["jpeg"], {"name": "jpeg"}, None):  # JSON an API client may send
        with pytest.raises(ValueError, match="unknown corruption"):
            views.corruption_name(bad)
    for bad in (["ship (test image #1)"], {"a": 1}, 3):
        with pytest.raises(ValueError, match="unknown input"):
            views.chosen_input(bad, None, {"ship (test image #1)": None})
    assert [views.severity_level(value) for value in (0, 3.0, 5)] == [0, 3, 5]
    for bad in (-1, 6, 2.5, True, "3", None, float("nan"), float("inf"), 10**400):
        with pytest.raises(ValueError, match="severity must be a whole number from 0 to 5"):
            views.severity_level(bad)


def test_the_live_view_is_the_modules_corruption_and_a_click_places_the_square(shipped_sample):
    pixels = shipped_sample[7]
    for name, function in CORRUPTIONS.items():
        placed = {"center": (16, 16)} if name == "occlusion" else {}  # not drawn at random: the centre, or a click
        np.testing.assert_array_equal(views.corrupt(pixels, name, 3),
                                      function(pixels[None], 3, views.SEED, **placed)[0])
    assert views.clicked_pixel(0, 0) == (0, 0) and views.clicked_pixel(255, 100) == (12, 31)
    assert views.clicked_pixel(300, -4) == (0, 31)  # a click on the border stays on the image
    row, col = views.clicked_pixel(x=40, y=200)  # left, low
    covered = views.corrupt(pixels, "occlusion", 2, center=(row, col))  # an 8x8 square
    square = np.zeros((32, 32), bool)
    square[row - 4 : row + 4, col - 4 : col + 4] = True
    assert np.all(covered[square] == GREY)
    np.testing.assert_array_equal(covered[~square], pixels[~square])
    assert np.all(views.corrupt(pixels, "occlusion", 1)[14:18, 14:18] == GREY)  # no click: the centre


def test_the_answer_views_are_the_models_answer_and_map_on_the_changed_input(tiny, shipped_sample):
    pixels = shipped_sample[3]
    enlarged, label, overlay, caption, notice = views.answer_views(tiny, StubDetector(), pixels)
    probabilities = tiny.predict_proba(pixels[None])[0]
    assert list(label) == list(CLASSES) and list(label.values()) == pytest.approx(probabilities.tolist(), abs=1e-6)
    np.testing.assert_array_equal(enlarged, images.upscale_nearest(pixels, views.SCALE))
    top = int(probabilities.argmax())
    assert overlay.shape == (256, 256, 3) and caption.startswith(f"Why {CLASSES[top]} ({probabilities[top]:.0%})?")
    assert "Looks like a CIFAR-10 photo" in notice and "score 1.25" in notice
    line = views.corruption_line(CurrentInput(pixels, "your upload"), "motion_blur", 4)
    assert line == "Showing your upload, with **motion blur** at severity **4** of 5."
    assert "unchanged" in views.corruption_line(CurrentInput(pixels, "your upload"), "jpeg", 0)


def test_the_attack_view_flips_where_the_modules_search_says_and_shows_the_perturbation(tiny, shipped_sample):
    for pixels in shipped_sample[:4]:
        result = views.attack(tiny, pixels, "pgd")
        assert result.flips_at == smallest_flipping_epsilon(tiny, pixels, "pgd")  # the oracle
        assert views.attack(tiny, pixels, "pgd", previous=result) is result  # epsilon moves reuse it
        assert views.attack(tiny, pixels, "fgsm", previous=result) is not result
        answers = result.probabilities.argmax(axis=1)
        if result.flips_at is not None:
            assert answers[result.flips_at - 1] != result.label
            assert np.all(answers[: result.flips_at - 1] == result.label)
            line = views.attack_line(CurrentInput(pixels, "your upload"), result, "pgd", result.flips_at)
            assert "the answer flips" in line and f"The smallest ε that flips it: **{result.flips_at}**" in line
        for epsilon in (1, 8):
            change, caption = views.perturbation_view(pixels, result.attacked[epsilon - 1], epsilon)
            gain = 127 // epsilon
            delta = result.attacked[epsilon - 1].astype(int) - pixels.astype(int)
            assert np.abs(delta).max() <= epsilon
            np.testing.assert_array_equal(change[:: views.SCALE, :: views.SCALE], 128 + delta * gain)
            assert f"amplified x{gain}" in caption


def test_a_missing_or_broken_report_is_a_message_and_the_shipped_one_is_shown_as_measured(tmp_path):
    report, problem = views.read_report(tmp_path / "missing.json")
    assert report is None and "not available: cannot read the corruption report" in problem
    assert problem.count("missing.json") == 1 and "No such file" in problem
    problem = views.read_report(SHIPPED_REPORT.with_name("missing.corruptions.json"))[1]
    assert "weights/missing.corruptions.json" in problem and str(REPO) not in problem  # no server path
    (tmp_path / "broken.json").write_text("{not json")
    assert views.read_report(tmp_path / "broken.json")[0] is None
    summary, table = about_tab.corruption_views(tmp_path / "broken.json")
    assert "not available" in summary and table is None

    shipped = json.loads(SHIPPED_REPORT.read_text())
    assert SHIPPED_REPORT in shipped_files()  # a Space gets it
    summary, table = about_tab.corruption_views(SHIPPED_REPORT)
    mean = f"{shipped['mean_corruption_accuracy']:.2%}"
    assert f"**{mean}**" in summary
    assert f"**{mean}**" in (REPO / "README.md").read_text()  # README and the model card say the same
    assert f"**Mean corruption accuracy {mean}**" in (REPO / "weights" / "README.md").read_text()
    assert list(table["corruption"]) == [DISPLAY_NAMES[name] for name in CORRUPTIONS]
    noise = shipped["corruptions"]["gaussian_noise"]
    assert list(table.iloc[0, 1:]) == [f"{a:.1%}" for a in noise["accuracy"]] + [f"{noise['mean']:.1%}"]
    figure = corruption_curves([("Shipped model", shipped)])
    lines = figure.axes[0].lines
    assert len(lines) == len(CORRUPTIONS) + 1  # and the clean line
    assert list(lines[0].get_ydata()) == pytest.approx([shipped["clean_accuracy"] * 100]
                                                       + [a * 100 for a in noise["accuracy"]])
    assert f"mean {mean}" in figure.axes[0].get_title()


def test_one_computation_at_a_time_and_the_same_page_is_told_its_own_is_running():
    slot = views.OneAtATime()
    slot.start("page-a")
    with pytest.raises(views.Busy, match="already being computed"):
        slot.start("page-a")
    with pytest.raises(views.Busy, match="Another visitor's curves"):
        slot.start("page-b")
    slot.finish("page-b")  # not theirs to free
    with pytest.raises(views.Busy):
        slot.start("page-b")
    slot.finish("page-a")
    slot.start("page-b")


def test_a_sessions_curves_are_its_models_report_beside_the_shipped_ones_on_the_same_subset(tiny):
    data = toy_dataset(train=8, test=24, seed=3)
    other = Predictor(build_model((4, 4, 8)))
    shipped_reports = views.SubsetReports()
    steps = []
    yours, theirs = views.subset_curves(other, tiny, data, shipped_reports, subset=16,
                                        progress=lambda fraction, text: steps.append((fraction, text)))
    expected = corruption_accuracy(other, data.x_test[:16], data.y_test[:16])
    assert yours["images"] == theirs["images"] == 16
    assert yours["corruptions"] == expected["corruptions"] and yours["clean_accuracy"] == expected["clean_accuracy"]
    assert theirs["corruptions"] == corruption_accuracy(tiny, data.x_test[:16], data.y_test[:16])["corruptions"]
    fractions = [fraction for fraction, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1 and len(steps) == 120
    assert steps[0][1].startswith("your model: Gaussian noise, severity 1")
    steps.clear()
    again = views.subset_curves(other, tiny, data, shipped_reports, subset=16,
                                progress=lambda fraction, text: steps.append((fraction, text)))[1]
    assert again is theirs and len(steps) == 60 and steps[-1][0] == 1  # the shipped model's, computed once
    assert "your model** keeps" in views.subset_summary(yours, theirs)


@pytest.mark.same_on_every_backend
def test_corrupt_endpoint_answers_and_names_a_bad_severity_or_corruption(app_url):
    client = Client(app_url, verbose=False)
    line, seen, label, heatmap, notice = client.predict("ship (test image #1)", "jpeg", 2, api_name="/corrupt")
    assert "the example ship" in line and "**jpeg quality** at severity **2**" in line
    assert label["label"] in CLASSES and seen and heatmap and "CIFAR-10 photo" in notice
    for arguments, title, message in [(("ship (test image #1)", "jpeg", 9), "Severity out of range",
                                       "severity must be a whole number from 0 to 5, got 9"),
                                      (("ship (test image #1)", "fog", 1), "Unknown corruption",
                                       "unknown corruption 'fog'")]:
        with pytest.raises(AppError, match=message) as refused:
            client.predict(*arguments, api_name="/corrupt")
        assert refused.value.title == title
    # Nothing was lost: the app answers again, and a new session with no input gets the hint.
    hint = client.predict(views.CURRENT, "jpeg", 2, api_name="/corrupt")
    assert hint[0] == views.NO_INPUT and shown_value(hint[1]) is None and not hint[2]  # no image, no answer
    assert client.predict("cat (test image #0)", "Brightness", 0, api_name="/corrupt")[2]["label"] in CLASSES
