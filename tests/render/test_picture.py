"""Fitting a member's picture (engine.request.picture, Pillow only) and refusing bad ones."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from engine.errors import UserError
from engine.request.picture import (
    ANIMATED_NOTE,
    MAX_PICTURE_BYTES,
    decode_png,
    picture_key,
    prepare_picture,
    size_for,
)


def _encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _halves(width=80, height=40) -> Image.Image:
    """Left half red, right half blue: where each colour ends up shows how the picture was turned."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(pixels)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A huge PNG's header and the start of its pixel data: what a decompression bomb sends (a few
    hundred bytes that would decode to gigabytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(4096)))


# -- fitting ---------------------------------------------------------------------------------------
def test_cover_and_centre_crop_keep_the_middle_of_a_wide_picture():
    wide = np.zeros((40, 120, 3), dtype=np.uint8)
    wide[:, 40:80] = 200  # the middle third is grey, the sides black
    fitted = prepare_picture(_encode(Image.fromarray(wide)), (64, 64))
    assert fitted.pixels.shape == (64, 64, 3)
    # Scaled to 64 high, the grey middle third covers the whole 64-wide crop.
    assert fitted.pixels[:, 4:60].min() >= 150


def test_exif_orientation_is_applied():
    picture = _halves()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    fitted = prepare_picture(_encode(picture, "JPEG", exif=exif, quality=95), (64, 64))
    # Upright, the red left half is on top.
    top, bottom = fitted.pixels[:16].mean(axis=(0, 1)), fitted.pixels[-16:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    assert fitted.source_size == (40, 80)


def test_rgba_is_composited_on_a_contrasting_background():
    dark = np.zeros((64, 64, 4), dtype=np.uint8)
    dark[16:48, 16:48] = (10, 10, 10, 255)  # a dark square, the rest transparent
    fitted = prepare_picture(_encode(Image.fromarray(dark, "RGBA")), (64, 64)).pixels
    assert fitted[0, 0].tolist() == [255, 255, 255] and fitted[32, 32].tolist() == [10, 10, 10]
    light = dark.copy()
    light[16:48, 16:48] = (240, 240, 240, 255)
    assert prepare_picture(_encode(Image.fromarray(light, "RGBA")), (64, 64)).pixels[0, 0].tolist() == [0, 0, 0]


def test_palette_and_cmyk_become_rgb():
    palette = _halves().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    fitted = prepare_picture(_encode(palette), (64, 64)).pixels
    assert fitted[32, 2].tolist() == [255, 0, 0] and fitted[32, 61].tolist() == [0, 0, 255]
    cmyk = _halves().convert("CMYK")
    fitted = prepare_picture(_encode(cmyk, "JPEG", quality=95), (64, 64)).pixels
    assert fitted[32, 2, 0] > 200 and fitted[32, 2, 2] < 60 and fitted[32, 61, 2] > 200


def test_a_transparent_palette_gif_is_composited():
    frame = Image.new("P", (32, 32), 0)
    frame.putpalette([0, 0, 0, 20, 20, 20] + [0] * 762)
    frame.paste(1, (8, 8, 24, 24))
    data = _encode(frame, "GIF", transparency=0)
    fitted = prepare_picture(data, (64, 64)).pixels
    assert fitted[0, 0].tolist() == [255, 255, 255]  # the dark square gets a white background
    assert fitted[32, 32].tolist() == [20, 20, 20]


def test_without_a_size_the_closest_aspect_is_chosen():
    assert size_for(1920, 1080) == (768, 512)
    assert size_for(1080, 1920) == (512, 768)
    assert size_for(1000, 1100) == (512, 512)
    assert prepare_picture(_encode(_halves(300, 200))).pixels.shape == (512, 768, 3)


def test_the_key_is_the_sha256_of_the_fitted_png_and_decodes_back_exactly():
    fitted = prepare_picture(_encode(_halves()), (64, 64))
    assert fitted.key == picture_key(fitted.png) and len(fitted.key) == 64
    np.testing.assert_array_equal(decode_png(fitted.png), fitted.pixels)
    assert prepare_picture(_encode(_halves()), (64, 64)).key == fitted.key  # same picture, same key


def test_an_animated_gif_uses_its_first_frame_and_says_so():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((250, 0, 0), (0, 250, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    fitted = prepare_picture(buffer.getvalue(), (64, 64))
    assert fitted.animated and fitted.note == ANIMATED_NOTE
    assert fitted.pixels[32, 32, 0] > 200 and fitted.pixels[32, 32, 1] < 30
    assert prepare_picture(_encode(_halves()), (64, 64)).note is None


# -- refusing ---------------------------------------------------------------------------------------
def test_a_text_file_is_not_a_picture():
    with pytest.raises(UserError, match=r"^That file is not a picture; use a PNG, JPEG, WebP or GIF image\.$"):
        prepare_picture(b"hello, this is a text file\n" * 10)


def test_a_truncated_png_cannot_be_decoded():
    data = _encode(Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(UserError, match=r"could not be decoded \(the file is damaged or cut short\)"):
        prepare_picture(data[: len(data) // 2])


def test_a_huge_png_header_is_refused_before_decoding():
    with pytest.raises(UserError, match=r"^That picture has far more than 40 megapixels; scale it down"):
        prepare_picture(png_header_only(20_000, 20_000))
    with pytest.raises(
        UserError, match=r"^That picture is 8000×6000 pixels \(48 megapixels\); pictures can be at most 40"
    ):
        prepare_picture(png_header_only(8000, 6000))


def test_a_file_over_10_mib_is_refused():
    with pytest.raises(UserError, match=r"^That picture is 10\.0 MiB; pictures can be at most 10 MiB"):
        prepare_picture(b"\x89PNG" + bytes(MAX_PICTURE_BYTES))
