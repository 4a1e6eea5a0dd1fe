"""Writing video: frames → H.264 MP4, a soundtrack onto a video, a video under a size, previews.

Everything here is synchronous and runs ffmpeg as a subprocess (see :func:`ffmpeg_exe`). Every file
is written to a hidden temp file next to its target and renamed onto it only when complete, so a
target path holds either a whole, playable file or nothing new.

The read side (``probe``, ``decode_frames``, ``check_audio``) lives in :mod:`engine.video.read` and is
re-exported here, so callers need only this module.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import ffmpeg
import numpy as np
from PIL import Image

from engine.errors import UserError
from engine.video.read import (
    FFMPEG_TIMEOUT_S,
    USER_INPUT_OPTIONS,
    MediaInfo,
    check_audio,
    decode_frames,
    ffmpeg_exe,
    ffmpeg_failure,
    ffmpeg_path,
    probe,
    run_ffmpeg,
    stderr_tail,
)

__all__ = [
    "MediaInfo",
    "VideoWriter",
    "check_audio",
    "decode_frames",
    "encode_frames",
    "ffmpeg_exe",
    "fit_to_size",
    "mux_audio",
    "preview_animation",
    "preview_jpeg",
    "probe",
]

log = logging.getLogger(__name__)

CRF = 18  # visually lossless for x264; renders are short, so the size cost is small
PRESET = "medium"
MUX_AUDIO_BITRATE = "128k"
FIT_AUDIO_KBPS = 96
FIT_MIN_SIDE = 128
FIT_TRIES_PER_SIZE = 3
MiB = 1 << 20


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def temp_path_for(target: Path) -> Path:
    """A hidden, unique sibling of ``target`` with the same suffix (ffmpeg picks formats by it)."""
    return target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.part{target.suffix}")


@contextlib.contextmanager
def temporary_output(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``target``; rename it onto ``target`` if the block succeeds.

    Whatever happens, the temp file is gone afterwards.
    """
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def as_rgb_frame(
    frame: np.ndarray, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """Check that ``frame`` is an HxWx3 uint8 array (of the given size) and make it contiguous."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame)
        raise ValueError(f"a frame must be an HxWx3 uint8 RGB array, got {got}")
    expected = (height or frame.shape[0], width or frame.shape[1], 3)
    if frame.shape != expected:
        raise ValueError(f"a frame must have shape {expected}, got {frame.shape}")
    return np.ascontiguousarray(frame)


def writer_command(
    tmp: Path, width: int, height: int, fps: float, crf: int, preset: str
) -> list[str]:
    """The ffmpeg command line that turns raw rgb24 frames on stdin into an H.264 MP4."""
    stream = ffmpeg.input(
        "pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps
    ).output(
        ffmpeg_path(tmp),
        format="mp4",
        vcodec="libx264",
        pix_fmt="yuv420p",
        movflags="+faststart",
        r=fps,
        crf=crf,
        preset=preset,
    )
    stream = stream.global_args("-hide_banner", "-nostats", "-loglevel", "error")
    return stream.overwrite_output().compile(cmd=ffmpeg_exe())


def mux_args(video: Path, audio: Path, tmp: Path, seconds: float) -> list[str]:
    """ffmpeg arguments: copy ``video``, lay ``audio`` under it cut/padded to ``seconds``."""
    length = f"{seconds:.6f}"
    audio_filter = f"asetpts=PTS-STARTPTS,atrim=end={length},apad=whole_dur={length}"
    return [
        "-i", ffmpeg_path(video),
        *USER_INPUT_OPTIONS, "-i", ffmpeg_path(audio),
        "-map", "0:V:0", "-map", "1:a:0",
        "-c:v", "copy",
        "-af", audio_filter, "-c:a", "aac", "-b:a", MUX_AUDIO_BITRATE,
        "-movflags", "+faststart", "-f", "mp4", "-y", ffmpeg_path(tmp),
    ]  # fmt: skip


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


def fit_args(
    src: Path, tmp: Path, size: tuple[int, int], video_bps: int, has_audio: bool
) -> list[str]:
    """ffmpeg arguments that re-encode ``src`` at ``size`` and about ``video_bps``."""
    width, height = size
    audio = ["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{FIT_AUDIO_KBPS}k"] if has_audio else []
    return [
        "-i", ffmpeg_path(src), "-map", "0:V:0",
        "-vf", f"scale={width}:{height}:flags=area",
        "-c:v", "libx264", "-preset", PRESET, "-pix_fmt", "yuv420p",
        "-b:v", str(video_bps), "-maxrate", str(video_bps), "-bufsize", str(2 * video_bps),
        *audio,
        "-movflags", "+faststart", "-f", "mp4", "-y", ffmpeg_path(tmp),
    ]  # fmt: skip


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / MiB:.3g}"


# ---------------------------------------------------------------------------------------------
# Encoding frames


class VideoWriter:
    """Encode RGB frames into an H.264 (yuv420p) MP4 by piping them raw into ffmpeg.

    ::

        with VideoWriter("out.mp4", 512, 512, fps=8) as writer:
            for frame in frames:
                writer.write(frame)  # HxWx3 uint8 RGB

    ffmpeg starts at construction and writes a hidden temp file next to ``path``; a clean
    :meth:`close` (the end of the ``with`` block) renames it onto ``path``. An exception inside
    the block, or ffmpeg failing, removes the temp file: ``path`` is a complete video or untouched.
    The container is MP4 whatever the suffix. ``width`` and ``height`` must be even.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float,
        *,
        crf: int = CRF,
        preset: str = PRESET,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"width and height must be positive and even, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, fps
        self.frames_written = 0
        self._tmp = temp_path_for(self.path)
        command = writer_command(self._tmp, width, height, fps, crf, preset)
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg can never block on it
        log.debug("running %s", subprocess.list2cmdline(command))
        try:
            self._process: subprocess.Popen | None = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr
            )
        except OSError:
            self._stderr.close()
            raise

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame of the writer's size."""
        frame = as_rgb_frame(frame, self.width, self.height)
        if self._process is None:
            raise ValueError(f"the writer for {self.path} is already closed")
        try:
            self._process.stdin.write(memoryview(frame).cast("B"))
        except BrokenPipeError:
            raise self._failure("encode frames for") from None
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the video and move it onto ``path``; calling it again does nothing."""
        if self._process is None:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise ValueError(f"no frames were written to {self.path}")
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        try:
            returncode = self._process.wait(timeout=FFMPEG_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.abort()
            raise RuntimeError(
                f"ffmpeg did not finish {self.path} within {FFMPEG_TIMEOUT_S} s"
            ) from None
        if returncode != 0:
            raise self._failure("finish")
        try:
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)  # gone already unless the rename failed
            self._release()
        log.info(
            "wrote %s: %d frames, %dx%d at %g fps",
            self.path, self.frames_written, self.width, self.height, self.fps,
        )  # fmt: skip
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and delete the temp file, leaving ``path`` untouched."""
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._process.kill()
        self._process.wait()
        self._tmp.unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        self._process = None
        self._stderr.close()

    def _failure(self, what: str) -> RuntimeError:
        """Abort, and describe the failure with ffmpeg's last stderr lines."""
        process = self._process
        process.wait()
        self._stderr.seek(0)
        tail = stderr_tail(self._stderr.read())
        self.abort()
        return RuntimeError(
            f"ffmpeg failed to {what} {self.path} (exit code {process.returncode}):\n{tail}"
        )


def encode_frames(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    """Encode frames (HxWx3 uint8 RGB, all one size) into an H.264 MP4 at ``path``."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to encode into {path}")
    first = as_rgb_frame(first)
    with VideoWriter(path, first.shape[1], first.shape[0], fps) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)
    return writer.path


# ---------------------------------------------------------------------------------------------
# Soundtracks and sizes


def mux_audio(
    video: str | os.PathLike, audio: str | os.PathLike, out: str | os.PathLike
) -> Path:
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
    with temporary_output(out) as tmp:
        result = run_ffmpeg(mux_args(video, audio, tmp, info.duration))
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
    """
    # 1. check inputs
    src, out = Path(src), Path(out)
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    if src.stat().st_size <= max_bytes:
        if src.resolve() != out.resolve():
            with temporary_output(out) as tmp:
                shutil.copyfile(src, tmp)
        return out
    info = probe(src)
    if not info.has_video or info.duration <= 0:
        raise ValueError(f"{src} has no video to fit into {max_bytes} bytes")
    too_big = UserError(
        f"The video cannot fit under {_mib(max_bytes)} MiB; "
        "ask for fewer frames or a smaller size."
    )
    # 2. plan: the bitrate that fills the budget, and the sizes we may shrink to
    video_bps = fit_video_bps(max_bytes, info)
    if video_bps <= 0:
        raise too_big
    # 3. encode, lowering the bitrate and then the size until the file fits
    with temporary_output(out) as tmp:
        for size in fit_sizes(info.width, info.height):
            for _ in range(FIT_TRIES_PER_SIZE):
                result = run_ffmpeg(fit_args(src, tmp, size, video_bps, info.has_audio))
                if result.returncode != 0:
                    raise ffmpeg_failure(f"re-encode {src.name}", result)
                written = tmp.stat().st_size
                log.info(
                    "fit %s at %dx%d, %d b/s: %d bytes (budget %d)",
                    src.name, *size, video_bps, written, max_bytes,
                )  # fmt: skip
                if written <= max_bytes:
                    return out  # the with-block renames tmp onto out
                excess_bps = (written - max_bytes) * 8 / info.duration
                video_bps = int(max(video_bps - 1.2 * excess_bps, video_bps / 4))
        raise too_big


# ---------------------------------------------------------------------------------------------
# Previews for progress messages


def _thumbnail(frame: np.ndarray, max_side: int) -> Image.Image:
    image = Image.fromarray(as_rgb_frame(frame))
    image.thumbnail((max_side, max_side))  # shrinks only, keeps the aspect ratio
    return image


def preview_jpeg(frame: np.ndarray, max_side: int = 320) -> bytes:
    """One frame as a JPEG whose longer side is at most ``max_side``."""
    buffer = io.BytesIO()
    _thumbnail(frame, max_side).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def preview_animation(frames: Sequence[np.ndarray], fps: float, max_side: int = 256) -> bytes:
    """Frames as a looping animated WebP (a GIF where Pillow lacks WebP), longer side ≤ max_side.

    Identical consecutive frames may be merged by the encoder into one longer frame.
    """
    if len(frames) == 0:  # not `not frames`: a 4-D array of frames is a Sequence too
        raise ValueError("no frames to preview")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = [_thumbnail(frame, max_side) for frame in frames]
    options = dict(save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    buffer = io.BytesIO()
    try:
        images[0].save(buffer, format="WEBP", quality=70, **options)
    except (KeyError, OSError):  # this Pillow was built without (animated) WebP
        log.debug("animated WebP unavailable; previewing as GIF")
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", **options)
    return buffer.getvalue()
