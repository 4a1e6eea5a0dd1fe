"""Editing finished videos: put a member's soundtrack under a video, fit a video under a byte limit.

Both write through :func:`engine.files.atomic_output`: ``out`` is a whole file or untouched, and
both keep the video's recipe (its global metadata, ``-map_metadata 0``; GIF/WebP re-write it).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from engine.errors import UserError
from engine.files import atomic_output
from engine.video.encode import PRESET
from engine.video.formats import ClipFormat, clip_format
from engine.video.read import (
    USER_INPUT_OPTIONS,
    MediaInfo,
    check_audio,
    decode_frames,
    probe,
    read_recipe,
    sniff_format,
)
from engine.video.runner import ffmpeg_command, ffmpeg_failure, ffmpeg_path, run_ffmpeg

log = logging.getLogger(__name__)

MUX_AUDIO_BITRATE = "128k"
FIT_AUDIO_KBPS = 96
FIT_MIN_SIDE = 128
FIT_TRIES_PER_SIZE = 3
MiB = 1 << 20


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def mux_command(video: Path, audio: Path, tmp: Path, seconds: float) -> list[str]:
    """The ffmpeg command line: copy ``video``, lay ``audio`` under it cut/padded to ``seconds``."""
    length = f"{seconds:.6f}"
    picture = ffmpeg.input(ffmpeg_path(video))["V:0"]
    sound = ffmpeg.input(ffmpeg_path(audio), **USER_INPUT_OPTIONS)["a:0"]
    stream = ffmpeg.output(
        picture,
        sound,
        ffmpeg_path(tmp),
        format="mp4",
        af=f"asetpts=PTS-STARTPTS,atrim=end={length},apad=whole_dur={length}",
        movflags="+faststart",
        map_metadata="0",
        **{"c:v": "copy", "c:a": "aac", "b:a": MUX_AUDIO_BITRATE},
    )
    return ffmpeg_command(stream, overwrite=True)


def fit_sizes(width: int, height: int, min_side: int = FIT_MIN_SIDE) -> list[tuple[int, int]]:
    """Sizes to try when fitting: the original, then halved while the short side ≥ min_side."""
    sizes = [(width, height)]
    while min(width, height) // 2 >= min_side:
        width, height = 2 * round(width / 4), 2 * round(height / 4)  # half, kept even for yuv420p
        sizes.append((width, height))
    return sizes


def container_overhead(frames: int, seconds: float, has_audio: bool) -> int:
    """A generous guess of the MP4 bytes that are not audio or video data (moov, sample tables)."""
    audio_packets = math.ceil(seconds * 48_000 / 1024) if has_audio else 0
    return 4096 + 24 * frames + 12 * audio_packets


def fit_video_bps(max_bytes: int, info: MediaInfo) -> int:
    """The video bits/s that fill ``max_bytes`` next to 96 kb/s audio; ≤ 0 if none can."""
    budget = max_bytes - container_overhead(info.frames, info.duration, info.has_audio)
    audio_bits = FIT_AUDIO_KBPS * 1000 * info.duration if info.has_audio else 0
    return int((budget * 8 - audio_bits) / info.duration)


def fit_command(src: Path, tmp: Path, size: tuple[int, int], video_bps: int, has_audio: bool) -> list[str]:
    """The ffmpeg command line that re-encodes ``src`` at ``size`` and about ``video_bps``."""
    width, height = size
    source = ffmpeg.input(ffmpeg_path(src))
    streams = [source["V:0"]]
    audio_options = {}
    if has_audio:
        streams.append(source["a:0"])
        audio_options = {"c:a": "aac", "b:a": f"{FIT_AUDIO_KBPS}k"}
    stream = ffmpeg.output(
        *streams,
        ffmpeg_path(tmp),
        format="mp4",
        vf=f"scale={width}:{height}:flags=area",
        preset=PRESET,
        pix_fmt="yuv420p",
        maxrate=str(video_bps),
        bufsize=str(2 * video_bps),
        movflags="+faststart",
        map_metadata="0",
        # One encoder thread: x264's rate control with frame threads depends on their timing, so the
        # same input at the same bitrate came out up to 8% larger or smaller from run to run and a
        # fit could miss its budget by chance. One thread gives the same bytes every time.
        threads="1",
        **{"c:v": "libx264", "b:v": str(video_bps)},
        **audio_options,
    )
    return ffmpeg_command(stream, overwrite=True)


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / MiB:.3g}"


def _too_big(max_bytes: int) -> UserError:
    return UserError(f"The video cannot fit under {_mib(max_bytes)} MiB; ask for fewer frames or a smaller size.")


def resize_frames(frames: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """``frames`` scaled to ``size`` (width, height) by area averaging; the same list at their own size."""
    width, height = size
    if frames[0].shape[:2] == (height, width):
        return frames
    return [cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in frames]


# ---------------------------------------------------------------------------------------------
# Soundtracks and sizes


def mux_audio(video: str | os.PathLike, audio: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Put a user's soundtrack on a video; the result is exactly as long as the video.

    The video stream is copied bit for bit. The audio's first stream is re-encoded to AAC
    (128 kb/s): audio longer than the video is cut at the video's end, shorter audio is padded
    with silence to it. An ``audio`` that is not decodable audio raises ``UserError`` and
    ``out`` is not written.
    """
    # 1. check inputs: the user's file first, since that is what usually goes wrong
    video, audio, out = Path(video), Path(audio), Path(out)
    audio_seconds = check_audio(audio)
    info = probe(video)
    if not info.has_video:
        raise ValueError(f"{video} has no video stream to put audio under")
    # 2. encode into a temp file next to ``out``; rename when complete
    log.info("muxing %.2fs of audio under %.2fs of video: %s", audio_seconds, info.duration, out)
    with atomic_output(out) as tmp:
        result = run_ffmpeg(mux_command(video, audio, tmp, info.duration))
        if result.returncode != 0:
            raise ffmpeg_failure(f"mux {audio.name} under {video.name}", result)
    return out


def fit_to_size(src: str | os.PathLike, out: str | os.PathLike, max_bytes: int) -> Path:
    """Write ``src`` to ``out`` in at most ``max_bytes`` (for upload limits).

    A file that already fits is copied. Otherwise it is re-encoded in one pass (H.264 yuv420p,
    every frame kept; audio, if any, as 96 kb/s AAC) at the video bitrate that fills the budget.
    When the result is still too big the bitrate is lowered by the overshoot and, after a few
    tries at one size, the picture is halved (while its short side stays ≥ 128 px). When nothing
    fits, ``UserError`` says so and ``out`` is not written.

    A GIF or an animated WebP stays one: it is decoded and written again with fewer colours (GIF)
    or a lower quality (WebP), stepping through the format's ``fit_levels``, then at the next
    smaller size; every frame is kept and so is the recipe.
    """
    # 1. check inputs
    src, out = Path(src), Path(out)
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    if src.stat().st_size <= max_bytes:
        if src.resolve() != out.resolve():
            with atomic_output(out) as tmp:
                shutil.copyfile(src, tmp)
        return out
    info = probe(src)
    if not info.has_video or info.duration <= 0:
        raise ValueError(f"{src} has no video to fit into {max_bytes} bytes")
    kind = sniff_format(src)
    if kind is not None:
        return _fit_animation(src, out, max_bytes, info, clip_format(kind))
    too_big = _too_big(max_bytes)
    # 2. plan: the bitrate that fills the budget, and the sizes we may shrink to
    video_bps = fit_video_bps(max_bytes, info)
    if video_bps <= 0:
        raise too_big
    # 3. encode, lowering the bitrate and then the size until the file fits
    with atomic_output(out) as tmp:
        for size in fit_sizes(info.width, info.height):
            for _ in range(FIT_TRIES_PER_SIZE):
                result = run_ffmpeg(fit_command(src, tmp, size, video_bps, info.has_audio))
                if result.returncode != 0:
                    raise ffmpeg_failure(f"re-encode {src.name}", result)
                written = tmp.stat().st_size
                log.info(
                    "fit %s at %dx%d, %d b/s: %d bytes (budget %d)", src.name, *size, video_bps, written, max_bytes
                )
                if written <= max_bytes:
                    return out  # the with-block renames tmp onto out
                excess_bps = (written - max_bytes) * 8 / info.duration
                video_bps = int(max(video_bps - 1.2 * excess_bps, video_bps / 4))
        raise too_big


def _fit_animation(src: Path, out: Path, max_bytes: int, info: MediaInfo, fmt: ClipFormat) -> Path:
    """:func:`fit_to_size` for a GIF or WebP: fewer colours / lower quality first, then a smaller picture."""
    frames, recipe = decode_frames(src), read_recipe(src)
    with atomic_output(out) as tmp:
        for size in fit_sizes(info.width, info.height):
            resized = resize_frames(frames, size)
            for level in fmt.fit_levels:
                fmt.write(resized, tmp, info.fps, recipe, level)
                written = tmp.stat().st_size
                log.info("fit %s at %dx%d, level %d: %d bytes (budget %d)", src.name, *size, level, written, max_bytes)
                if written <= max_bytes:
                    return out
        raise _too_big(max_bytes)
