"""engine.video.preview: the small JPEG and animation shown in progress messages."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from support.clips import FPS, moving_square_frames

from engine.video.preview import preview_animation, preview_jpeg


def test_preview_jpeg_is_a_small_jpeg():
    frame = np.zeros((128, 96, 3), np.uint8)
    image = Image.open(io.BytesIO(preview_jpeg(frame, max_side=64)))
    assert image.format == "JPEG"
    assert image.size == (48, 64)


def test_preview_animation_has_every_frame():
    frames = moving_square_frames(6, 128)
    image = Image.open(io.BytesIO(preview_animation(frames, fps=FPS, max_side=64)))
    assert image.format in ("WEBP", "GIF")
    assert image.n_frames == 6
    assert max(image.size) <= 64


def test_preview_animation_falls_back_to_gif_without_webp(monkeypatch):
    monkeypatch.delitem(Image.SAVE_ALL, "WEBP", raising=False)
    image = Image.open(io.BytesIO(preview_animation(moving_square_frames(4), fps=FPS)))
    assert image.format == "GIF"
    assert image.n_frames == 4
