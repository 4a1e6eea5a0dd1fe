"""Animated WebP: a container writer that keeps every frame, and a Pillow reader.

libwebp's animation encoder (behind both Pillow's and ffmpeg's animated WebP) merges a frame that
matches the previous one, and in lossy mode one that nearly matches it, into a longer frame, so a
decoder would count fewer frames than were rendered. :func:`encode_webp` therefore encodes each
frame as a still lossy WebP with Pillow and assembles the animation itself, following the WebP
container specification (RIFF ``VP8X`` + ``ANIM`` + one ``ANMF`` per frame + ``XMP``): every frame
is a full key frame with its own duration. Files are larger than libwebp's, never shorter.

ffmpeg's ``webp`` decoder reads still images only (older builds have no animated WebP decoder at
all), so :func:`read_webp` decodes with Pillow.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from engine.files import atomic_output
from engine.video.encode import as_rgb_frame

WEBP_QUALITY = 80
WEBP_METHOD = 4  # libwebp's speed/size trade-off, 0 (fast) … 6 (small)

_VP8X_ANIMATION = 0x02
_VP8X_XMP = 0x04
_ANMF_NO_BLEND = 0x02


def is_webp(head: bytes) -> bool:
    """Whether a file starting with ``head`` (at least 12 bytes) is a WebP."""
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def riff_chunks(data: bytes, start: int = 12) -> Iterator[tuple[bytes, bytes]]:
    """``(fourcc, payload)`` for each chunk of a RIFF body from ``start`` (payloads are padded to even)."""
    pos = start
    while pos + 8 <= len(data):
        fourcc, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        yield fourcc, data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)


def chunk(fourcc: bytes, payload: bytes) -> bytes:
    """One RIFF chunk: fourcc, little-endian size, payload, a pad byte when the size is odd."""
    return fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def _uint24(value: int) -> bytes:
    return value.to_bytes(3, "little")


def frame_durations_ms(frames: int, fps: float) -> list[int]:
    """Whole-millisecond durations whose running sum stays on the ``1000 / fps`` grid (62, 63, 62, …)."""
    stamps = [round(i * 1000 / fps) for i in range(frames + 1)]
    return [b - a for a, b in zip(stamps, stamps[1:])]


def still_bitstream(frame: np.ndarray, quality: int) -> bytes:
    """The ``VP8 `` (and any ``ALPH``) chunks of one frame encoded as a still lossy WebP."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="WEBP", quality=quality, method=WEBP_METHOD)
    data = buffer.getvalue()
    parts = [chunk(fourcc, payload) for fourcc, payload in riff_chunks(data) if fourcc in (b"ALPH", b"VP8 ", b"VP8L")]
    if not parts:
        raise RuntimeError("Pillow wrote a WebP without an image bitstream")
    return b"".join(parts)


def animated_webp(
    frames: Sequence[np.ndarray], durations_ms: Sequence[int], *, quality: int = WEBP_QUALITY, xmp: bytes | None = None
) -> bytes:
    """An animated, endlessly looping WebP of ``frames``, one ``ANMF`` each, shown for ``durations_ms``."""
    if len(frames) == 0 or len(frames) != len(durations_ms):
        raise ValueError(f"need one duration per frame, got {len(frames)} frames and {len(durations_ms)} durations")
    height, width = frames[0].shape[:2]
    flags = _VP8X_ANIMATION | (_VP8X_XMP if xmp else 0)
    body = [
        chunk(b"VP8X", bytes([flags, 0, 0, 0]) + _uint24(width - 1) + _uint24(height - 1)),
        chunk(b"ANIM", struct.pack("<IH", 0xFF000000, 0)),  # opaque black background, loop forever
    ]
    for frame, duration in zip(frames, durations_ms):
        frame = as_rgb_frame(frame, width, height)
        header = _uint24(0) + _uint24(0) + _uint24(width - 1) + _uint24(height - 1) + _uint24(duration)
        body.append(chunk(b"ANMF", header + bytes([_ANMF_NO_BLEND]) + still_bitstream(frame, quality)))
    if xmp:
        body.append(chunk(b"XMP ", xmp))
    payload = b"WEBP" + b"".join(body)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def encode_webp(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike,
    fps: float,
    *,
    quality: int = WEBP_QUALITY,
    xmp: bytes | None = None,
    durations_ms: Sequence[int] | None = None,
) -> Path:
    """Write :func:`animated_webp` to ``path`` atomically: at ``fps``, or with ``durations_ms`` when given."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if durations_ms is None:
        durations_ms = frame_durations_ms(len(frames), fps)
    data = animated_webp(frames, durations_ms, quality=quality, xmp=xmp)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def read_webp(path: str | os.PathLike) -> tuple[list[np.ndarray], list[int]]:
    """Every frame of a (still or animated) WebP as HxWx3 uint8 RGB, and each frame's duration in ms."""
    frames, durations = [], []
    with Image.open(path) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(int(image.info.get("duration", 0)))
    return frames, durations


def webp_xmp(data: bytes) -> bytes | None:
    """The ``XMP `` chunk of a WebP file's bytes, if it has one."""
    return next((payload for fourcc, payload in riff_chunks(data) if fourcc == b"XMP "), None)
