"""Reading media with ffmpeg alone: find the binary, probe a file, decode its frames, check audio.

The imageio-ffmpeg wheel ships ``ffmpeg`` but no ``ffprobe``, so probing reads what ``ffmpeg -i``
writes to stderr: the ``Input #0`` header gives the codecs, picture size and frame rate; decoding
the first video stream into the null muxer gives the exact frame count and length (the final
``frame=`` / ``time=`` stats line); decoding the first audio stream the same way gives its length.

Files that users upload are opened with :data:`USER_INPUT_OPTIONS`: only local files and a short
list of audio containers. Without that, ffmpeg would follow HLS/concat playlists to other files on
the host and would read any text file as ANSI-art "video".

The write side (encoding, muxing, fitting to a size, previews) is :mod:`engine.video.encode`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from engine.errors import UserError

log = logging.getLogger(__name__)

AUDIO_HELP = (
    "The attachment is not an audio file that can be decoded; upload an MP3, WAV, OGG or M4A."
)

# Demuxers a user's audio upload may be read with ("mov" covers mp4/m4a; "matroska" covers webm).
USER_AUDIO_FORMATS = ("wav", "mp3", "ogg", "mov", "flac", "aac", "matroska")
USER_INPUT_OPTIONS = (
    "-protocol_whitelist", "file",
    "-format_whitelist", ",".join(USER_AUDIO_FORMATS),
)  # fmt: skip

_STDERR_TAIL_LINES = 8

# No ffmpeg run here needs more than seconds (clips are at most a few hundred frames, uploads a
# few MiB); the limit only keeps a stuck ffmpeg (a crafted upload) from holding a worker forever.
FFMPEG_TIMEOUT_S = 600


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


@dataclasses.dataclass(frozen=True)
class StreamHeader:
    """One ``Stream #0:N: Video|Audio: ...`` line of ffmpeg's banner, parsed."""

    kind: str  # "video" or "audio"
    codec: str
    pix_fmt: str | None = None
    width: int = 0
    height: int = 0
    fps: float = 0.0


# ---------------------------------------------------------------------------------------------
# Running ffmpeg


def ffmpeg_exe() -> str:
    """The ffmpeg to run: ``ffmpeg`` on PATH when there is one, else imageio-ffmpeg's own binary."""
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: Sequence[str], *, capture_stdout: bool = False) -> subprocess.CompletedProcess:
    """Run ``ffmpeg -hide_banner -nostdin -nostats ARGS``; stderr is always captured as bytes.

    The return code is not checked: callers decide whether a failure is the user's or ours.
    A run longer than :data:`FFMPEG_TIMEOUT_S` is killed and raises ``RuntimeError``.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *args]
    log.debug("running %s", subprocess.list2cmdline(cmd))
    try:
        return subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
            timeout=FFMPEG_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:  # subprocess.run has killed and reaped it
        raise RuntimeError(
            f"ffmpeg did not finish within {FFMPEG_TIMEOUT_S} s: {subprocess.list2cmdline(cmd)}\n"
            f"{stderr_tail(err.stderr or b'')}"
        ) from None


def stderr_tail(stderr: bytes | str, lines: int = _STDERR_TAIL_LINES) -> str:
    """The last few non-empty lines ffmpeg wrote, for error messages and logs."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    kept = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def ffmpeg_failure(what: str, result: subprocess.CompletedProcess) -> RuntimeError:
    """An internal (not the user's) ffmpeg failure, carrying ffmpeg's last words."""
    return RuntimeError(
        f"ffmpeg failed to {what} (exit code {result.returncode}):\n{stderr_tail(result.stderr)}"
    )


def ffmpeg_path(path: str | os.PathLike) -> str:
    """An absolute path: ffmpeg never reads it as an option (``-x``) or a protocol (``a:b``)."""
    return os.path.abspath(os.fspath(path))


# ---------------------------------------------------------------------------------------------
# Parsing ffmpeg's stderr (pure)


def split_sections(stderr: str) -> tuple[list[str], list[str]]:
    """Split a banner into the ``Input #0`` lines and the ``Output #0`` lines."""
    inputs: list[str] = []
    outputs: list[str] = []
    current: list[str] | None = None
    for line in stderr.replace("\r", "\n").splitlines():
        if line.startswith("Input #"):
            current = inputs
        elif line.startswith("Output #"):
            current = outputs
        elif line.startswith(("Stream mapping:", "Press [q]", "frame=", "size=")):
            current = None
        elif current is not None and line.startswith(" "):
            current.append(line)  # log lines ("[mov @ 0x...] ...") may interleave: skip them
    return inputs, outputs


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets: ``yuv420p(tv, bt709), 64x64`` is two parts."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


_STREAM_LINE = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$")
_SIZE = re.compile(r"^(\d+)x(\d+)\b")
_WORD = re.compile(r"\w+")
_RATE = re.compile(r"\b(\d+(?:\.\d+)?)(k?) (fps|tbr)\b")


def parse_stream_line(line: str) -> StreamHeader | None:
    """Parse one stream line of a banner; ``None`` for other lines and for cover art."""
    match = _STREAM_LINE.match(line)
    if match is None or "(attached pic)" in line:
        return None
    kind, rest = match.group(1).lower(), match.group(2)
    parts = split_top_level(rest)
    codec = parts[0].split()[0] if parts[0] else "unknown"
    if kind == "audio":
        return StreamHeader(kind=kind, codec=codec)
    pix_fmt = None
    width = height = 0
    for part in parts[1:]:
        size = _SIZE.match(part)
        if size:
            width, height = int(size.group(1)), int(size.group(2))
            break
        name = _WORD.match(part)
        if pix_fmt is None and name is not None:
            pix_fmt = name.group(0)
    rates = {unit: float(value) * (1000 if k else 1) for value, k, unit in _RATE.findall(rest)}
    fps = rates.get("fps", rates.get("tbr", 0.0))
    return StreamHeader(kind, codec, pix_fmt, width, height, fps)


def parse_streams(section: Sequence[str]) -> list[StreamHeader]:
    """All video/audio streams in one section of the banner, in order."""
    return [s for s in map(parse_stream_line, section) if s is not None]


def first_stream(streams: Sequence[StreamHeader], kind: str) -> StreamHeader | None:
    return next((s for s in streams if s.kind == kind), None)


_FRAME_STAT = re.compile(r"frame=\s*(\d+)")
_TIME_STAT = re.compile(r"time=\s*(-?)(\d+):(\d+):(\d+(?:\.\d+)?)")


def parse_final_stats(stderr: str) -> tuple[int, float]:
    """``(frames, seconds)`` from the last ``frame=`` and ``time=`` of a run; 0 where absent."""
    frames = _FRAME_STAT.findall(stderr)
    times = _TIME_STAT.findall(stderr)
    seconds = 0.0
    if times:
        sign, hours, minutes, secs = times[-1]
        seconds = 0.0 if sign else int(hours) * 3600 + int(minutes) * 60 + float(secs)
    return (int(frames[-1]) if frames else 0), seconds


# ---------------------------------------------------------------------------------------------
# Probing and decoding


def _not_readable(path: Path) -> UserError:
    return UserError(
        f"{path.name} is not a video or audio file ffmpeg can read; send a different file."
    )


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def _decode_to_null(path: Path, stream: str, input_options: Sequence[str]) -> tuple[int, float]:
    """Decode one stream (``0:V:0``, ``0:a:0``) and return ``(frames, seconds)``."""
    result = run_ffmpeg(
        [*input_options, "-i", ffmpeg_path(path), "-map", stream, "-f", "null", "-"]
    )
    if result.returncode != 0:
        log.info("decoding %s of %s failed:\n%s", stream, path, stderr_tail(result.stderr))
        raise _not_readable(path)
    return parse_final_stats(result.stderr.decode("utf-8", "replace"))


def read_header(
    path: str | os.PathLike, input_options: Sequence[str] = ()
) -> tuple[StreamHeader | None, StreamHeader | None]:
    """The first ``(video, audio)`` stream headers; ``UserError`` if ffmpeg can't open the file."""
    path = _existing(path)
    result = run_ffmpeg([*input_options, "-i", ffmpeg_path(path)])  # no output: exits 1 by design
    inputs, _ = split_sections(result.stderr.decode("utf-8", "replace"))
    streams = parse_streams(inputs)
    video, audio = first_stream(streams, "video"), first_stream(streams, "audio")
    if video is None and audio is None:
        log.info("ffmpeg cannot read %s:\n%s", path, stderr_tail(result.stderr))
        raise _not_readable(path)
    return video, audio


def probe(path: str | os.PathLike, *, input_options: Sequence[str] = ()) -> MediaInfo:
    """Describe a media file by decoding it with ffmpeg (there is no ffprobe).

    Raises ``UserError`` when ffmpeg cannot read or decode the file, and ``FileNotFoundError``
    when there is no file. ``input_options`` go before ``-i`` (see :data:`USER_INPUT_OPTIONS`).
    """
    path = _existing(path)
    video, audio = read_header(path, input_options)
    frames, video_seconds = 0, 0.0
    if video is not None:
        frames, video_seconds = _decode_to_null(path, "0:V:0", input_options)
    audio_seconds = None
    if audio is not None:
        _, audio_seconds = _decode_to_null(path, "0:a:0", input_options)
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
    result = run_ffmpeg(
        ["-i", ffmpeg_path(path), "-map", "0:V:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_stdout=True,
    )
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
        seconds = _decode_to_null(path, "0:a:0", USER_INPUT_OPTIONS)[1] if audio else 0.0
    except UserError:
        seconds = 0.0
    if seconds <= 0:
        log.info("rejected audio upload %s", path)
        raise UserError(AUDIO_HELP)
    return seconds
