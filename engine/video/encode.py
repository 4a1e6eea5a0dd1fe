"""Encoding frames: HxWx3 uint8 RGB frames → an H.264 (yuv420p) MP4, piped raw into ffmpeg.

:class:`VideoWriter` takes frames one at a time (the render chain writes each as it is drawn);
:func:`encode_frames` encodes a whole sequence. The video is written through
:func:`engine.files.atomic_output`, so the target holds either a whole, playable file or nothing new.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from engine.files import atomic_output
from engine.video.embedded_recipe import metadata_options
from engine.video.runner import FFMPEG_TIMEOUT_S, ffmpeg_exe, ffmpeg_path, stderr_tail

log = logging.getLogger(__name__)

CRF = 18  # visually lossless for x264; renders are short, so the size cost is small
PRESET = "medium"


def as_rgb_frame(frame: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Check that ``frame`` is an HxWx3 uint8 array (of the given size) and make it contiguous."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame)
        raise ValueError(f"a frame must be an HxWx3 uint8 RGB array, got {got}")
    expected = (height or frame.shape[0], width or frame.shape[1], 3)
    if frame.shape != expected:
        raise ValueError(f"a frame must have shape {expected}, got {frame.shape}")
    return np.ascontiguousarray(frame)


def writer_command(
    tmp: Path, width: int, height: int, fps: float, crf: int, preset: str, recipe: Mapping[str, Any] | None = None
) -> list[str]:
    """The ffmpeg command line that turns raw rgb24 frames on stdin into an H.264 MP4 (``recipe`` in its comment).

    Not :func:`engine.video.runner.ffmpeg_command`: stdin carries the frames, so no ``-nostdin``,
    and only errors are logged since nobody reads the banner.
    """
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps).output(
        ffmpeg_path(tmp),
        format="mp4",
        vcodec="libx264",
        pix_fmt="yuv420p",
        movflags="+faststart",
        r=fps,
        crf=crf,
        preset=preset,
        **metadata_options(recipe),
    )
    stream = stream.global_args("-hide_banner", "-nostats", "-loglevel", "error")
    return stream.overwrite_output().compile(cmd=ffmpeg_exe())


class _Aborted(Exception):
    """Thrown into the writer's :func:`atomic_output` so it deletes the temp file instead of renaming it."""


class VideoWriter:
    """Encode RGB frames into an H.264 (yuv420p) MP4 by piping them raw into ffmpeg.

    ::

        with VideoWriter("out.mp4", 512, 512, fps=8) as writer:
            for frame in frames:
                writer.write(frame)  # HxWx3 uint8 RGB

    ffmpeg starts at construction and writes the temp file of an :func:`atomic_output` held open
    until :meth:`close` (the end of the ``with`` block), which renames it onto ``path``. An
    exception inside the block, or ffmpeg failing, removes the temp file: ``path`` is a complete
    video or untouched. The container is MP4 whatever the suffix. ``width`` and ``height`` must
    be even. ``recipe`` (a JSON-able dict) is stored in the MP4's ``comment`` tag
    (:mod:`engine.video.embedded_recipe`).
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
        recipe: Mapping[str, Any] | None = None,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"width and height must be positive and even, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, fps
        self.frames_written = 0
        self._output = atomic_output(self.path)  # entered here, left in close() or abort()
        self._tmp = self._output.__enter__()
        command = writer_command(self._tmp, width, height, fps, crf, preset, recipe)
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg can never block on it
        log.debug("running %s", subprocess.list2cmdline(command))
        try:
            self._process: subprocess.Popen | None = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr
            )
        except OSError:
            self._discard_output()
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
            raise RuntimeError(f"ffmpeg did not finish {self.path} within {FFMPEG_TIMEOUT_S} s") from None
        if returncode != 0:
            raise self._failure("finish")
        try:
            self._output.__exit__(None, None, None)  # renames the temp file onto path; removes it if that fails
        finally:
            self._release()
        log.info(
            "wrote %s: %d frames, %dx%d at %g fps", self.path, self.frames_written, self.width, self.height, self.fps
        )
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and delete the temp file, leaving ``path`` untouched."""
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._process.kill()
        self._process.wait()
        self._discard_output()
        self._release()

    def _discard_output(self) -> None:
        aborted = _Aborted()
        self._output.__exit__(_Aborted, aborted, None)  # returns False: the temp file is deleted, nothing raised

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
        return RuntimeError(f"ffmpeg failed to {what} {self.path} (exit code {process.returncode}):\n{tail}")


def encode_frames(
    frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float, *, recipe: Mapping[str, Any] | None = None
) -> Path:
    """Encode frames (HxWx3 uint8 RGB, all one size) into an H.264 MP4 at ``path``, ``recipe`` in its comment."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to encode into {path}")
    first = as_rgb_frame(first)
    with VideoWriter(path, first.shape[1], first.shape[0], fps, recipe=recipe) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)
    return writer.path
