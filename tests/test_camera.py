"""The Camera source without a browser: the live handler on frames good and bad, the
frames/s figure, the frame decoding, and a snapshot through the real app's API."""

import base64

import gradio as gr
import pytest
from gradio.data_classes import ImageData

from cifar_demo import CLASSES
from cifar_demo.ui import camera
from cifar_demo.ui.internals import CameraFrame
from tests.browser_pages import shipped_example

pytestmark = pytest.mark.same_on_every_backend


class FirstClass:
    """A stand-in predictor: always the first class, and it counts its calls."""

    calls = 0

    def label(self, pixels):
        assert pixels.shape == (32, 32, 3)
        self.calls += 1
        return {name: float(index == 0) for index, name in enumerate(CLASSES)}


@pytest.fixture(scope="module")
def live_handler():
    """The function behind /classify_camera_stream, built in a Blocks of its own, and its predictor."""
    predictor = FirstClass()
    with gr.Blocks() as demo, gr.Tabs():
        camera.build(predictor)
    (fn,) = [block.fn for block in demo.fns.values() if block.api_name == "classify_camera_stream"]
    return fn, predictor


def test_live_frames_are_classified_and_bad_frames_skipped(live_handler):
    handle, predictor = live_handler
    frame = shipped_example("truck").read_bytes()
    label, view, line, answered = handle(frame, None)
    assert max(label, key=label.get) == CLASSES[0] and predictor.calls == 1
    assert view["value"].shape == (128, 128, 3) and view["alt_text"].startswith("32x32 input, mostly ")
    assert line.startswith("Live: frame 1,") and answered[0] == 1
    for bad in (b"not a jpeg", b""):  # skipped: the answer shown stays, the count too, and the line says so
        assert handle(bad, answered) == (gr.skip(), gr.skip(), "Live: a frame could not be read and was skipped; "
                                         "1 answered so far", answered)
    assert handle(None, answered) == (gr.skip(), gr.skip(), gr.skip(), answered)  # no frame yet
    assert predictor.calls == 1
    _, _, line, answered = handle(frame, answered)
    assert line.startswith("Live: frame 2,") and answered[0] == 2


def test_frame_rate_counts_the_recent_window():
    assert camera.frame_rate([], 10.0) == 0.0
    assert camera.frame_rate([10.0], 10.0) == 0.0
    assert camera.frame_rate([8.0, 8.5, 9.0, 9.5, 10.0], 10.0) == pytest.approx(2.0)
    assert camera.frame_rate([1.0, 2.0, 9.0, 10.0], 10.0) == pytest.approx(1.0)  # 1.0 and 2.0 fell out of the window


def test_camera_frame_hands_over_the_bytes_of_a_data_url():
    frame = CameraFrame(sources=["webcam"], streaming=True, render=False)
    jpeg = shipped_example("truck").read_bytes()
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    assert frame.preprocess(ImageData(url=url)) == jpeg
    assert frame.preprocess(ImageData(url="data:image/jpeg;base64,@@not base64@@")) is None
    assert frame.preprocess(None) is None
    assert frame.preprocess(ImageData(path="/some/upload.png")) == "/some/upload.png"


def test_a_snapshot_is_classified_like_an_upload(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    truck = handle_file(str(shipped_example("truck")))
    snapshot = client.predict(truck, False, api_name="/classify_snapshot")
    upload = client.predict(truck, False, api_name="/classify")
    assert snapshot["label"] == "truck" and snapshot == upload
