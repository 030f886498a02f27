"""cifar_demo.images against PIL as the oracle, one test per input kind people upload."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cifar_demo import images

LANCZOS = Image.Resampling.LANCZOS


def random_rgb(size=(48, 48), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def encode(image, fmt="PNG", **params):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def pil_oracle(rgb_image):
    """What the model input must be for an upright square RGB image: PIL's own Lanczos resize."""
    return np.asarray(rgb_image.resize((32, 32), LANCZOS))


def test_rgb_png_matches_pil():
    image = Image.fromarray(random_rgb())
    result = images.to_model_input(encode(image))
    assert result.dtype == np.uint8 and result.shape == (32, 32, 3)
    np.testing.assert_array_equal(result, pil_oracle(image))


def test_non_square_is_centre_cropped():
    image = Image.fromarray(random_rgb(size=(96, 48)))
    expected = np.asarray(image.crop((24, 0, 72, 48)).resize((32, 32), LANCZOS))
    np.testing.assert_array_equal(images.to_model_input(image), expected)


def test_grayscale_matches_pil():
    image = Image.fromarray(random_rgb()[:, :, 0], mode="L")
    np.testing.assert_array_equal(images.to_model_input(encode(image)), pil_oracle(image.convert("RGB")))


def test_palette_matches_pil():
    image = Image.fromarray(random_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    np.testing.assert_array_equal(images.to_model_input(encode(image)), pil_oracle(image.convert("RGB")))


def test_cmyk_jpeg_matches_pil():
    data = encode(Image.fromarray(random_rgb()).convert("CMYK"), "JPEG", quality=95)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "CMYK"
    np.testing.assert_array_equal(images.to_model_input(data), pil_oracle(decoded.convert("RGB")))


def test_rgba_is_composited_on_white():
    rgb = random_rgb()
    alpha = np.random.default_rng(1).integers(0, 256, size=rgb.shape[:2], dtype=np.uint8)
    alpha[:10] = 0  # a fully transparent band must come out white
    image = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")
    a = alpha[:, :, None] / 255.0
    on_white = np.rint(rgb * a + 255 * (1 - a)).astype(np.uint8)
    result = images.to_model_input(encode(image))
    expected = pil_oracle(Image.fromarray(on_white))
    assert np.abs(result.astype(int) - expected.astype(int)).max() <= 1


def test_transparent_palette_and_la_use_white_background():
    transparent = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    for image in (transparent.convert("P"), transparent.convert("LA")):
        image.info.setdefault("transparency", 0)
        result = images.to_model_input(encode(image))
        assert result.min() >= 250, image.mode


def test_colour_key_transparency_uses_white_background():
    """An RGB or grey PNG whose transparency is one colour (tRNS, what PNG optimisers make
    of a logo's RGBA): that colour is the background, white; the rest is kept."""
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[10:30, 10:30] = (200, 30, 30)
    for image, key in ((Image.fromarray(pixels), (0, 0, 0)), (Image.fromarray(pixels).convert("L"), 0)):
        data = encode(image, transparency=key)
        assert Image.open(io.BytesIO(data)).mode in ("RGB", "L") and "transparency" in Image.open(io.BytesIO(data)).info
        opaque = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()
        opaque[np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[:, :, 3] == 0] = 255
        np.testing.assert_array_equal(images.to_model_input(data), pil_oracle(Image.fromarray(opaque)))


def smooth_rgb(width=64, height=48):
    """A smooth colour ramp: what a lossy codec keeps almost exactly."""
    across, down = np.meshgrid(np.linspace(0, 255, width), np.linspace(255, 0, height))
    return np.stack([across, down, np.full_like(across, 90)], axis=-1).round().astype(np.uint8)


# sRGB's primaries adapted to the ICC's D50 white (IEC 61966-2-1 via Bradford): rows are
# the red, green and blue colorants' XYZ.
SRGB_COLORANTS_D50 = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def matrix_profile(colorants, gamma):
    """An ICC v2 RGB display profile (matrix and one gamma per channel), built byte by byte:
    no non-sRGB profile is on these machines, and this one's effect is known exactly."""
    def s15(value):
        return struct.pack(">i", round(value * 65536))

    def xyz(values):
        return b"XYZ " + bytes(4) + b"".join(s15(value) for value in values)

    text = b"test profile\0"
    description = (b"desc" + bytes(4) + struct.pack(">I", len(text)) + text
                   + bytes(8) + bytes(3) + bytes(67))  # no Unicode or ScriptCode description
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    tags = [(b"desc", description), (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
            (b"rXYZ", xyz(colorants[0])), (b"gXYZ", xyz(colorants[1])), (b"bXYZ", xyz(colorants[2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve), (b"cprt", b"text" + bytes(4) + b"none\0")]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + bytes(4) + bytes((2, 0x10, 0, 0)) + b"mntrRGB XYZ " + bytes(12)
              + b"acsp" + bytes(24) + struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def srgb_encode(linear):
    """The sRGB transfer function (IEC 61966-2-1): linear light 0..1 -> 0..255."""
    linear = np.asarray(linear, dtype=np.float64)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return encoded * 255


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_colour_profile_is_converted_to_srgb(fmt):
    # Linear light (gamma 1) with sRGB's primaries: each value v must come out as sRGB's
    # encoding of v/255, the oracle; left unconverted, v would stay v (64 instead of 137).
    levels = np.array([0, 16, 64, 128, 192, 255], dtype=np.uint8)
    flat = np.broadcast_to(levels[:, None, None], (6, 48, 3))
    image = Image.fromarray(np.repeat(flat, 8, axis=0).reshape(48, 48, 3))
    quality = {"quality": 100} if fmt == "JPEG" else {}
    data = encode(image, fmt, icc_profile=matrix_profile(SRGB_COLORANTS_D50, 1.0), **quality)
    rows = np.asarray(images.to_rgb_image(data), dtype=np.float64)[4::8, 24]  # the middle of each band
    np.testing.assert_allclose(rows, np.repeat(srgb_encode(levels / 255)[:, None], 3, axis=1), atol=2)


def test_a_profile_with_other_primaries_moves_colours_where_it_says():
    # A profile whose red is sRGB's blue and whose blue is sRGB's red (and gamma 2.2): a pixel
    # stored red-heavy is, in sRGB, blue-heavy. Alpha is kept, composited on white.
    swapped = matrix_profile(SRGB_COLORANTS_D50[::-1], 2.2)
    stored = Image.new("RGBA", (32, 32), (200, 30, 40, 255))
    stored.putpixel((0, 0), (200, 30, 40, 0))
    result = images.to_rgb_image(encode(stored, icc_profile=swapped))
    expected = srgb_encode((np.array([40, 30, 200]) / 255) ** 2.2)
    np.testing.assert_allclose(result.getpixel((16, 16)), expected, atol=1.5)
    assert result.getpixel((0, 0)) == (255, 255, 255)


def test_a_large_profiled_photo_is_shrunk_before_its_conversion_to_the_same_model_input():
    swapped = matrix_profile(SRGB_COLORANTS_D50[::-1], 2.2)
    image = Image.fromarray(smooth_rgb(1200, 900))
    data = encode(image, icc_profile=swapped)
    converted_whole = images.to_rgb_image(data)  # no draft side: the whole image converted
    assert converted_whole.size == (1200, 900)
    expected = images.resize_for_model(converted_whole)
    difference = images.to_model_input(data).astype(int) - np.asarray(expected, dtype=int)
    assert np.abs(difference).max() <= 2


def test_an_unreadable_profile_is_ignored_like_a_browser_does():
    image = Image.fromarray(random_rgb())
    data = encode(image, icc_profile=b"not an ICC profile" * 8)
    assert Image.open(io.BytesIO(data)).info["icc_profile"]  # the file does carry it
    np.testing.assert_array_equal(images.to_model_input(data), pil_oracle(image))


@pytest.mark.parametrize("fmt, params", [("HEIF", {"quality": -1, "chroma": 444}),  # lossless but for YCbCr
                                         ("AVIF", {"quality": 100, "subsampling": "4:4:4"})])
def test_iphone_heic_and_avif_photos_read_like_their_png(fmt, params):
    image = Image.fromarray(smooth_rgb())
    data = encode(image, fmt, **params)
    assert Image.open(io.BytesIO(data)).format == fmt
    difference = images.to_model_input(data).astype(int) - images.to_model_input(encode(image))
    assert np.abs(difference).max() <= 2


def test_a_heic_photo_is_turned_upright_once():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: to be turned 90 degrees clockwise to view
    sideways = Image.fromarray(smooth_rgb(64, 32))
    upright = images.to_rgb_image(encode(sideways, "HEIF", quality=-1, chroma=444, exif=exif.tobytes()))
    assert upright.size == (32, 64)
    expected = np.asarray(sideways.transpose(Image.Transpose.ROTATE_270), dtype=int)
    assert np.abs(np.asarray(upright, dtype=int) - expected).max() <= 2


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits():
    values = np.random.default_rng(2).integers(0, 65536, size=(40, 40), dtype=np.uint16)
    image = Image.fromarray(values)  # mode I;16
    assert image.mode.startswith("I")
    data = encode(image)
    expected_gray = Image.fromarray(np.rint(values / 257.0).astype(np.uint8), mode="L").convert("RGB")
    np.testing.assert_array_equal(images.to_model_input(data), pil_oracle(expected_gray))


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (40, 40), colour) for colour in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    result = images.to_model_input(data)
    assert result[..., 0].min() > 200 and result[..., 2].max() < 50


def test_exif_orientation_is_applied():
    # Stored 64 wide x 32 tall, red left half, blue right half; orientation 6 says
    # "rotate 90 degrees clockwise to display", so upright it is red on top, blue below.
    stored = np.zeros((32, 64, 3), dtype=np.uint8)
    stored[:, :32] = (255, 0, 0)
    stored[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    result = images.to_model_input(data).astype(int)
    top, bottom = result[:12].mean(axis=(0, 1)), result[-12:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_arrays_of_common_dtypes():
    rgb = random_rgb()
    expected = pil_oracle(Image.fromarray(rgb))
    np.testing.assert_array_equal(images.to_model_input(rgb), expected)
    np.testing.assert_array_equal(images.to_model_input(rgb.astype(np.float32) / 255.0), expected)
    np.testing.assert_array_equal(images.to_model_input(rgb.astype(np.uint16) * 257), expected)
    gray = rgb[:, :, :1]
    expected_gray = pil_oracle(Image.fromarray(gray[:, :, 0]).convert("RGB"))
    np.testing.assert_array_equal(images.to_model_input(gray), expected_gray)


def test_large_jpeg_shortcuts_match_a_full_decode():
    """Reduced-scale JPEG decoding and the reducing gap barely change the 32x32 result."""
    smooth = np.asarray(Image.fromarray(random_rgb(size=(60, 40))).resize((3000, 2000), Image.Resampling.BICUBIC))
    data = encode(Image.fromarray(smooth), "JPEG", quality=95)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    expected = np.asarray(full.crop((500, 0, 2500, 2000)).resize((32, 32), LANCZOS)).astype(int)
    result = images.to_model_input(data).astype(int)
    assert np.abs(result - expected).mean() < 2.0


def test_tiny_image_is_upscaled():
    result = images.to_model_input(Image.new("RGB", (1, 1), (10, 200, 30)))
    assert result.shape == (32, 32, 3)
    assert (result == (10, 200, 30)).all()


def test_file_path_input(tmp_path):
    path = tmp_path / "photo.png"
    image = Image.fromarray(random_rgb())
    image.save(path)
    np.testing.assert_array_equal(images.to_model_input(str(path)), pil_oracle(image))


def png_with_size(width, height):
    """A valid 1x1 PNG whose header claims width x height (with a correct CRC)."""
    data = bytearray(encode(Image.new("RGB", (1, 1))))
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "empty"),
        (b"this is plain text, not a picture", "not an image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "not an image"),
        (png_with_size(100_000, 100_000), "decompression bomb"),
        (png_with_size(10_000, 6_000), "limit is 50 MP"),
    ],
    ids=["empty", "text", "svg", "bomb", "too-large"],
)
def test_bad_bytes_raise_value_error(payload, message):
    with pytest.raises(ValueError, match=message):
        images.to_model_input(payload)


def test_truncated_jpeg_raises_value_error():
    data = encode(Image.fromarray(random_rgb(size=(256, 256))), "JPEG")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        images.to_model_input(data[: len(data) // 2])


def test_bad_files_raise_value_error(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(ValueError, match="empty"):
        images.to_model_input(empty)
    with pytest.raises(ValueError, match="not an image"):
        images.to_model_input(text)
    with pytest.raises(ValueError, match="No image file"):
        images.to_model_input(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="Cannot read"):
        images.to_model_input(12345)
    with pytest.raises(ValueError, match="empty"):
        images.to_model_input(np.zeros((0, 5, 3), dtype=np.uint8))


def test_blank_detection():
    assert images.is_blank(np.full((50, 50, 3), 255, dtype=np.uint8))
    drawn = np.full((50, 50, 3), 255, dtype=np.uint8)
    drawn[20:30, 20:30] = 0
    assert not images.is_blank(drawn)


def test_upscale_nearest_keeps_pixels_square():
    small = random_rgb(size=(4, 4))
    big = images.upscale_nearest(small, 8)
    assert big.shape == (32, 32, 3)
    np.testing.assert_array_equal(big[::8, ::8], small)
    np.testing.assert_array_equal(big[7::8, 7::8], small)
