"""Reading media with ffmpeg alone: probe a file, decode its frames, check an uploaded soundtrack.

The imageio-ffmpeg wheel ships ``ffmpeg`` but no ``ffprobe``, so probing reads what ffmpeg writes to
stderr (parsed in :mod:`engine.video.parse`): opening the file gives the ``Input #0`` stream headers
(codecs, picture size, frame rate); decoding the first video stream into the null muxer gives the
exact frame count and length (the final ``frame=`` / ``time=`` stats); decoding the first audio
stream the same way gives its length.

Files that users upload are opened with :data:`USER_INPUT_OPTIONS`: only local files and a short
list of audio containers. Without that, ffmpeg would follow HLS/concat playlists to other files on
the host and would read any text file as ANSI-art "video".
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import ffmpeg
import numpy as np

from engine.errors import UserError
from engine.video.parse import StreamHeader, first_stream, parse_final_stats, parse_streams, split_sections
from engine.video.runner import ffmpeg_command, ffmpeg_failure, ffmpeg_path, run_ffmpeg, stderr_tail

log = logging.getLogger(__name__)

AUDIO_HELP = "The attachment is not an audio file that can be decoded; upload an MP3, WAV, OGG or M4A."

# Demuxers a user's audio upload may be read with ("mov" covers mp4/m4a; "matroska" covers webm).
USER_AUDIO_FORMATS = ("wav", "mp3", "ogg", "mov", "flac", "aac", "matroska")
# ffmpeg input options (ffmpeg-python keywords) for a file a user uploaded.
USER_INPUT_OPTIONS: Mapping[str, str] = {
    "protocol_whitelist": "file",
    "format_whitelist": ",".join(USER_AUDIO_FORMATS),
}
_NO_OPTIONS: Mapping[str, str] = {}


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found in a file.

    The video fields describe the first video stream (cover art is ignored); for a file with no
    video they are 0 / ``None``. ``duration`` is the decoded length of that video stream in
    seconds, or of the audio stream when there is no video.
    """

    width: int
    height: int
    fps: float
    frames: int
    video_codec: str | None
    pix_fmt: str | None
    duration: float
    audio_codec: str | None = None
    audio_duration: float | None = None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None


# ---------------------------------------------------------------------------------------------
# Command lines (pure)


def header_command(path: Path, input_options: Mapping[str, str] = _NO_OPTIONS) -> list[str]:
    """Open ``path`` and stop: ffmpeg prints its ``Input #0`` stream headers and decodes nothing.

    ffmpeg-python cannot compile a command without an output, so the output is the null muxer
    cut to zero seconds (``-t 0``); the input section ffmpeg prints is the same as with none.
    """
    stream = ffmpeg.input(ffmpeg_path(path), **input_options).output("-", format="null", t=0)
    return ffmpeg_command(stream)


def decode_to_null_command(path: Path, stream: str, input_options: Mapping[str, str] = _NO_OPTIONS) -> list[str]:
    """Decode one stream of ``path`` (``V:0``, ``a:0``) into the null muxer, for its final stats."""
    source = ffmpeg.input(ffmpeg_path(path), **input_options)
    return ffmpeg_command(source[stream].output("-", format="null"))


def decode_rgb_command(path: Path) -> list[str]:
    """Decode the first video stream of ``path`` to raw rgb24 frames on stdout."""
    source = ffmpeg.input(ffmpeg_path(path))
    return ffmpeg_command(source["V:0"].output("-", format="rawvideo", pix_fmt="rgb24"))


# ---------------------------------------------------------------------------------------------
# Probing and decoding


def _not_readable(path: Path) -> UserError:
    return UserError(f"{path.name} is not a video or audio file ffmpeg can read; send a different file.")


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def _decode_to_null(path: Path, stream: str, input_options: Mapping[str, str]) -> tuple[int, float]:
    """Decode one stream (``V:0``, ``a:0``) and return ``(frames, seconds)``."""
    result = run_ffmpeg(decode_to_null_command(path, stream, input_options))
    if result.returncode != 0:
        log.info("decoding %s of %s failed:\n%s", stream, path, stderr_tail(result.stderr))
        raise _not_readable(path)
    return parse_final_stats(result.stderr.decode("utf-8", "replace"))


def read_header(
    path: str | os.PathLike, input_options: Mapping[str, str] = _NO_OPTIONS
) -> tuple[StreamHeader | None, StreamHeader | None]:
    """The first ``(video, audio)`` stream headers; ``UserError`` if ffmpeg can't open the file."""
    path = _existing(path)
    result = run_ffmpeg(header_command(path, input_options))  # the exit code does not matter here
    inputs, _ = split_sections(result.stderr.decode("utf-8", "replace"))
    streams = parse_streams(inputs)
    video, audio = first_stream(streams, "video"), first_stream(streams, "audio")
    if video is None and audio is None:
        log.info("ffmpeg cannot read %s:\n%s", path, stderr_tail(result.stderr))
        raise _not_readable(path)
    return video, audio


def probe(path: str | os.PathLike, *, input_options: Mapping[str, str] = _NO_OPTIONS) -> MediaInfo:
    """Describe a media file by decoding it with ffmpeg (there is no ffprobe).

    Raises ``UserError`` when ffmpeg cannot read or decode the file, and ``FileNotFoundError``
    when there is no file. ``input_options`` are ffmpeg input options as ffmpeg-python keywords
    (see :data:`USER_INPUT_OPTIONS`).
    """
    path = _existing(path)
    video, audio = read_header(path, input_options)
    frames, video_seconds = 0, 0.0
    if video is not None:
        frames, video_seconds = _decode_to_null(path, "V:0", input_options)
    audio_seconds = None
    if audio is not None:
        _, audio_seconds = _decode_to_null(path, "a:0", input_options)
    return MediaInfo(
        width=video.width if video else 0,
        height=video.height if video else 0,
        fps=video.fps if video else 0.0,
        frames=frames,
        video_codec=video.codec if video else None,
        pix_fmt=video.pix_fmt if video else None,
        duration=video_seconds if video else (audio_seconds or 0.0),
        audio_codec=audio.codec if audio else None,
        audio_duration=audio_seconds,
    )


def decode_frames(path: str | os.PathLike) -> list[np.ndarray]:
    """Every frame of the first video stream, as HxWx3 uint8 RGB arrays (tests, previews)."""
    path = _existing(path)
    result = run_ffmpeg(decode_rgb_command(path), capture_stdout=True)
    stderr = result.stderr.decode("utf-8", "replace")
    inputs, outputs = split_sections(stderr)
    if result.returncode != 0 or first_stream(parse_streams(inputs), "video") is None:
        log.info("cannot decode video from %s:\n%s", path, stderr_tail(stderr))
        raise _not_readable(path)
    # The output stream's size is what was decoded (it differs from the input's when rotated).
    out = first_stream(parse_streams(outputs), "video")
    if out is None or not out.width or not out.height:
        raise ffmpeg_failure(f"report the decoded size of {path}", result)
    frame_bytes = out.width * out.height * 3
    data = np.frombuffer(result.stdout, dtype=np.uint8)
    count = len(data) // frame_bytes
    if count * frame_bytes != len(data):
        raise RuntimeError(f"decoding {path} gave {len(data)} bytes, not a whole number of frames")
    return list(data.reshape(count, out.height, out.width, 3))


def check_audio(path: str | os.PathLike) -> float:
    """The length in seconds of an uploaded audio file, or ``UserError`` if it is not one.

    Only local files in the containers of :data:`USER_AUDIO_FORMATS` are opened; the first audio
    stream must decode to a positive length.
    """
    path = _existing(path)
    try:
        _, audio = read_header(path, USER_INPUT_OPTIONS)
        seconds = _decode_to_null(path, "a:0", USER_INPUT_OPTIONS)[1] if audio else 0.0
    except UserError:
        seconds = 0.0
    if seconds <= 0:
        log.info("rejected audio upload %s", path)
        raise UserError(AUDIO_HELP)
    return seconds
