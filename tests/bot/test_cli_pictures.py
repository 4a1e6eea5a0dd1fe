"""``animabot render --image FILE --image-strength F --control NAME``, run as a user runs it."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from test_cli import animabot

from engine.request.picture import prepare_picture
from engine.video.read import decode_frames, probe


def _write_png(path, width, height):
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (230, 40, 40)
    pixels[:, width // 2 :] = (40, 40, 230)
    Image.fromarray(pixels).save(path)
    return path.read_bytes()


def test_render_from_a_picture_keeps_it_as_frame_0_with_the_size_from_its_aspect(tmp_path):
    data = _write_png(tmp_path / "wide.png", 150, 100)
    out = tmp_path / "wide.mp4"
    done = animabot(
        "render", "a red and blue flag", "--model", "test-tiny", "--frames", 3, "--steps", 2, "--seed", 9,
        "--image", tmp_path / "wide.png", "--control", "depth", "-o", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "depth control, from a picture" in done.stderr
    info = probe(out)
    assert (info.frames, info.width, info.height) == (3, 768, 512)
    first = decode_frames(out)[0]
    fitted = prepare_picture(data, (768, 512)).pixels
    assert np.abs(first.astype(int) - fitted).mean() < 6  # H.264 of the exact picture


def test_render_from_a_picture_redrawn_with_image_strength(tmp_path):
    _write_png(tmp_path / "square.png", 80, 80)
    outs = []
    for strength in ("0", "0.7"):
        out = tmp_path / f"s{strength}.mp4"
        done = animabot(
            "render", "a watercolour", "--model", "test-tiny", "--frames", 1, "--steps", 3, "--seed", 9,
            "--size", "64x64", "--image", tmp_path / "square.png", "--image-strength", strength, "-o", out,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        outs.append(decode_frames(out)[0].astype(int))
    assert np.abs(outs[0] - outs[1]).mean() > 5


def _bomb_header() -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(4096)))


def _truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()[:200]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", b"hello\n", "That file is not a picture; use a PNG, JPEG, WebP or GIF image."),
        ("cut.png", _truncated_png(), "That picture could not be decoded (the file is damaged or cut short)"),
        ("bomb.png", _bomb_header(), "That picture has far more than 40 megapixels; scale it down"),
        ("missing.png", None, "Picture file"),
    ],
    ids=["text", "truncated", "20000x20000", "missing"],
)
def test_a_bad_picture_gets_one_line_and_exit_code_2(tmp_path, name, data, message):
    if data is not None:
        (tmp_path / name).write_bytes(data)
    done = animabot("render", "a cat", "--model", "test-tiny", "--image", tmp_path / name)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.startswith(f"animabot: {message}") and done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--control", "edges"], "unknown control 'edges'; choose one of: canny, depth, pose."),
        (["--image-strength", "0.5"], "image strength only applies when starting from a picture"),
    ],
)
def test_bad_control_and_strength_get_one_line(args, message):
    done = animabot("render", "a cat", "--model", "test-tiny", *args)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.startswith(f"animabot: {message}") and done.stderr.count("\n") == 1
