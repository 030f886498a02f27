"""Bad input through the real app's API: each gets a clear message, and the app keeps serving.

Every case goes through `python app.py` with gradio_client, exactly as an upload from the
page does, and then a normal request must still succeed.
"""

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from cifar_demo import CLASSES
from cifar_demo.ui.classify_tab import example_paths
from tests.conftest import tiny_run


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def encode(image, fmt="PNG", **params):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def photo(size=(64, 48), seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_claiming(width, height):
    """A valid 1x1 PNG whose header claims width x height: a decompression bomb's header."""
    data = bytearray(encode(Image.new("RGB", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def truncated_jpeg():
    data = encode(photo((256, 256)), "JPEG")
    return data[: len(data) // 2]


def exif_rotated_jpeg():
    stored = np.zeros((32, 64, 3), dtype=np.uint8)
    stored[:, :32] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())


def huge_png():
    """6000x6000 (36 MP, under the 50 MP limit) that compresses to well under 20 MB."""
    rows = np.linspace(0, 255, 6000, dtype=np.uint8)
    return encode(Image.fromarray(np.broadcast_to(rows[:, None, None], (6000, 6000, 3)).copy()), compress_level=1)


def animated_gif():
    frames = [Image.new("RGB", (40, 40), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def rgba_transparent():
    pixels = np.zeros((40, 40, 4), dtype=np.uint8)
    pixels[10:30, 10:30] = (200, 30, 30, 255)  # an opaque square on a transparent background
    return encode(Image.fromarray(pixels, mode="RGBA"))


REFUSED = {
    "empty.png": (b"", "empty"),
    "notes.jpg": (b"this is a text file, not a picture", "not an image"),
    "truncated.jpg": (truncated_jpeg(), "truncated or corrupt"),
    "drawing.svg": (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="5" height="5"/></svg>',
        "not an image",
    ),
    "bomb.png": (png_claiming(100_000, 100_000), "decompression bomb"),
}

ACCEPTED = {
    "one-pixel.png": lambda: encode(Image.new("RGB", (1, 1), (10, 200, 30))),
    "huge.png": huge_png,
    "gray16.png": lambda: encode(
        Image.fromarray(np.random.default_rng(2).integers(0, 65536, (40, 40), dtype=np.uint16))
    ),
    "cmyk.jpg": lambda: encode(photo().convert("CMYK"), "JPEG", quality=95),
    "palette.png": lambda: encode(photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)),
    "transparent.png": rgba_transparent,
    "animated.gif": animated_gif,
    "rotated.jpg": exif_rotated_jpeg,
}


def still_serving(client):
    result = client.predict(handle_file(example_paths()[0]), api_name="/classify")
    assert result["label"] in CLASSES


@pytest.mark.parametrize("name", list(REFUSED))
def test_unreadable_uploads_are_refused_with_a_message(client, tmp_path, name):
    payload, message = REFUSED[name]
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(tmp_path / name)), api_name="/classify")
    still_serving(client)


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_odd_but_valid_uploads_are_classified(client, tmp_path, name):
    (tmp_path / name).write_bytes(ACCEPTED[name]())
    result = client.predict(handle_file(str(tmp_path / name)), api_name="/classify")
    confidences = {item["label"]: item["confidence"] for item in result["confidences"]}
    assert result["label"] in CLASSES and set(confidences) <= set(CLASSES)
    still_serving(client)


def test_the_tta_flag_takes_only_true_or_false(client):
    example = handle_file(example_paths()[0])
    plain = client.predict(example, False, api_name="/classify")
    assert client.predict(example, None, api_name="/classify") == plain
    assert client.predict(example, True, api_name="/classify")["label"] in CLASSES
    for not_a_flag in ("false", 1, [True]):
        with pytest.raises(Exception, match="tta must be true or false"):
            client.predict(example, not_a_flag, api_name="/classify")
    still_serving(client)


def test_uploads_over_the_size_limit_are_refused_before_reading(client, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(encode(Image.new("RGB", (8, 8))) + bytes(21 * 1024 * 1024))  # 21 MB, limit 20 MB
    with pytest.raises(Exception, match="(?i)file size|too large|maximum"):
        client.predict(handle_file(str(big)), api_name="/classify")
    still_serving(client)


def test_drawings_that_are_blank_missing_or_not_images(client, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 320), "white").save(blank)
    label, seen, hint = client.predict({"background": None, "layers": [], "composite": handle_file(str(blank))},
                                       api_name="/classify_drawing")
    assert seen is None and "Draw something" in hint
    empty_editor = {"background": None, "layers": [], "composite": None}
    label, seen, hint = client.predict(empty_editor, api_name="/classify_drawing")
    assert seen is None and "Draw something" in hint
    (tmp_path / "text.png").write_text("not a drawing")
    with pytest.raises(Exception, match="not an image"):
        client.predict({"background": None, "layers": [], "composite": handle_file(str(tmp_path / "text.png"))},
                       api_name="/classify_drawing")
    still_serving(client)


def test_links_and_inline_images_in_place_of_a_file(client, tmp_path):
    """An inline (base64 data URL) image is read by the app's own reader, as the same file
    uploaded (a 16-bit PNG would turn white in plain Pillow's hands); a link is refused
    without being fetched; no image at all, or a drawing without its composite, is named."""
    levels = np.random.default_rng(3).integers(0, 65536, (40, 40), dtype=np.uint16)
    sixteen_bit = encode(Image.fromarray(levels))
    (tmp_path / "sixteen.png").write_bytes(sixteen_bit)
    uploaded = client.predict(handle_file(str(tmp_path / "sixteen.png")), api_name="/classify")
    inline = {"url": "data:image/png;base64," + base64.b64encode(sixteen_bit).decode(), "path": None}
    assert client.predict(inline, api_name="/classify") == uploaded
    with pytest.raises(Exception, match="inline image could not be read: the data URL is not base64"):
        client.predict({"url": "data:image/png;base64,@@not base64@@", "path": None}, api_name="/classify")
    with pytest.raises(Exception, match="No image file was sent"):
        client.predict({"path": None, "url": None}, api_name="/classify")
    link = handle_file("https://example.com/cat.png")
    with pytest.raises(Exception, match="Links are not fetched"):
        client.predict(link, api_name="/classify")
    with pytest.raises(Exception, match="Links are not fetched"):
        client.predict({"background": None, "layers": [], "composite": link}, api_name="/classify_drawing")
    with pytest.raises(Exception, match="layers but no composite"):
        client.predict({"background": None, "layers": [handle_file(str(tmp_path / "sixteen.png"))],
                        "composite": None}, api_name="/classify_drawing")
    still_serving(client)


TINY_RUN = tiny_run(epochs_value=1, train_size_value=100)


@pytest.mark.parametrize("changes, message", [
    ({"epochs_value": 0}, "epochs must be between 1 and 30"),
    ({"train_size_value": 10**9}, "train size must be between"),
    ({"batch_size_value": 4}, "batch size must be between 16 and 512"),
    ({"width_value": -1}, "width mult must be between 0.125 and 1, got -1"),
    ({"smoothing_value": 0.9}, "label smoothing must be between 0 and 0.3"),
    ({"seed_value": None}, "seed must be a number"),
    ({"epochs_value": "ten"}, "epochs must be a number, got 'ten'"),
    ({"augment_value": "yes"}, "augmentation must be true or false"),
    ({"preset_value": "Huge"}, "preset must be one of Quick, Standard, Custom"),
    ({"start_value": "/etc/passwd"}, "start from must be"),
], ids=["epochs-range", "train-size", "batch-size", "width-negative", "smoothing", "seed-missing",
        "epochs-text", "augment-text", "preset", "start-from"])
def test_bad_training_values_are_refused_with_a_message(client, changes, message):
    with pytest.raises(Exception, match=message):
        client.predict(**dict(TINY_RUN, **changes), api_name="/train")
    still_serving(client)
