"""Reading media with ffmpeg alone: probe a file, decode its frames, check an uploaded soundtrack.

The imageio-ffmpeg wheel ships ``ffmpeg`` but no ``ffprobe``, so probing reads what ffmpeg writes to
stderr (parsed in :mod:`engine.video.parse`): opening the file gives the ``Input #0`` stream headers
(codecs, picture size, frame rate); decoding the first video stream into the null muxer gives the
exact frame count and length (the final ``frame=`` / ``time=`` stats); decoding the first audio
stream the same way gives its length (an upload's, bounded: :func:`check_audio`).

Animated WebP is read with Pillow (:mod:`engine.video.webp`): ffmpeg's ``webp`` decoder reads still
images only. A GIF is decoded by ffmpeg, but its frame rate comes from its frame delays (Pillow):
ffmpeg's banner reports the rate of the first delay, rounded to centiseconds. :func:`read_recipe`
reads the recipe of :mod:`engine.video.embedded_recipe` back from any of the three.

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
from PIL import Image

from engine.errors import UserError
from engine.video.damage import decode_audio_command, parse_audio_decode
from engine.video.embedded_recipe import COMMENT_TAG, parse_ffmetadata, parse_recipe, recipe_from_xmp
from engine.video.parse import (
    StreamHeader,
    first_stream,
    parse_duration,
    parse_final_stats,
    parse_streams,
    split_sections,
)
from engine.video.runner import ffmpeg_command, ffmpeg_failure, ffmpeg_path, run_ffmpeg, stderr_tail
from engine.video.webp import is_webp, read_webp, webp_xmp

log = logging.getLogger(__name__)

AUDIO_HELP = "The attachment is not an audio file that can be decoded; upload an MP3, WAV, OGG or M4A."
DAMAGED_AUDIO = "That audio file is damaged (it does not decode cleanly); export it again and attach the new file."

# Demuxers a user's audio upload may be read with ("mov" covers mp4/m4a; "matroska" covers webm).
USER_AUDIO_FORMATS = ("wav", "mp3", "ogg", "mov", "flac", "aac", "matroska")
# ffmpeg input options (ffmpeg-python keywords) for a file a user uploaded.
USER_INPUT_OPTIONS: Mapping[str, str] = {
    "protocol_whitelist": "file",
    "format_whitelist": ",".join(USER_AUDIO_FORMATS),
}
_NO_OPTIONS: Mapping[str, str] = {}
# The most of an audio file :func:`check_audio` decodes unless told otherwise (10 minutes).
AUDIO_CHECK_SECONDS = 600.0


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


def decode_rgb_command(path: Path, max_frames: int | None = None) -> list[str]:
    """Decode the first video stream of ``path`` to raw rgb24 frames on stdout, one per decoded frame
    (the first ``max_frames`` of them when given).

    ``fps_mode=passthrough`` (ffmpeg ≥ 5.1): the rawvideo muxer would otherwise repeat frames to fill
    a constant rate, which for a variable-delay GIF is ffmpeg's guess (100 fps for a 2-frame GIF).
    """
    source = ffmpeg.input(ffmpeg_path(path))
    limit = {} if max_frames is None else {"frames:v": max_frames}
    return ffmpeg_command(
        source["V:0"].output("-", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough", **limit)
    )


def ffmetadata_command(path: Path) -> list[str]:
    """Write the global metadata of ``path`` to stdout as ``;FFMETADATA1`` text (whole tag values)."""
    return ffmpeg_command(ffmpeg.input(ffmpeg_path(path)).output("-", format="ffmetadata"))


# ---------------------------------------------------------------------------------------------
# Probing and decoding


def sniff_format(path: str | os.PathLike) -> str | None:
    """``"gif"`` or ``"webp"`` by the file's first bytes, else ``None`` (MP4 and anything else)."""
    with open(path, "rb") as file:
        head = file.read(12)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return "webp" if is_webp(head) else None


def _pillow_durations(path: Path) -> list[int]:
    """Each frame's delay in ms, as Pillow reads it (GIF)."""
    durations = []
    with Image.open(path) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            durations.append(int(image.info.get("duration", 0)))
    return durations


def _animation_info(codec: str, width: int, height: int, durations: list[int]) -> MediaInfo:
    seconds = sum(durations) / 1000
    fps = round(len(durations) / seconds, 3) if seconds > 0 else 0.0
    return MediaInfo(width, height, fps, len(durations), codec, "rgb24", seconds)


def _probe_webp(path: Path) -> MediaInfo:
    try:
        frames, durations = read_webp(path)
    except (OSError, ValueError):
        raise _not_readable(path) from None
    return _animation_info("webp", frames[0].shape[1], frames[0].shape[0], durations)


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
    video, audio, _ = _read_input_section(_existing(path), input_options)
    return video, audio


def _read_input_section(
    path: Path, input_options: Mapping[str, str]
) -> tuple[StreamHeader | None, StreamHeader | None, float | None]:
    """The first video and audio stream headers and the declared duration (:func:`parse_duration`)."""
    result = run_ffmpeg(header_command(path, input_options))  # the exit code does not matter here
    inputs, _ = split_sections(result.stderr.decode("utf-8", "replace"))
    streams = parse_streams(inputs)
    video, audio = first_stream(streams, "video"), first_stream(streams, "audio")
    if video is None and audio is None:
        log.info("ffmpeg cannot read %s:\n%s", path, stderr_tail(result.stderr))
        raise _not_readable(path)
    return video, audio, parse_duration(inputs)


def probe(path: str | os.PathLike, *, input_options: Mapping[str, str] = _NO_OPTIONS) -> MediaInfo:
    """Describe a media file by decoding it with ffmpeg (there is no ffprobe).

    Raises ``UserError`` when ffmpeg cannot read or decode the file, and ``FileNotFoundError``
    when there is no file. ``input_options`` are ffmpeg input options as ffmpeg-python keywords
    (see :data:`USER_INPUT_OPTIONS`).
    """
    path = _existing(path)
    kind = sniff_format(path)
    if kind == "webp":
        return _probe_webp(path)
    video, audio = read_header(path, input_options)
    if kind == "gif" and video is not None:
        _decode_to_null(path, "V:0", input_options)  # a GIF ffmpeg cannot decode is not one
        return _animation_info("gif", video.width, video.height, _pillow_durations(path))
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


def first_frame(path: str | os.PathLike) -> np.ndarray:
    """Frame 0 of the first video stream (HxWx3 uint8 RGB), the rest left undecoded (an uploaded
    video's start picture)."""
    path = _existing(path)
    if sniff_format(path) == "webp":
        try:
            with Image.open(path) as image:  # Pillow decodes the first frame only
                return np.array(image.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError):
            raise _not_readable(path) from None
    return _decode_rgb(path, max_frames=1)[0]


def decode_frames(path: str | os.PathLike) -> list[np.ndarray]:
    """Every frame of the first video stream, as HxWx3 uint8 RGB arrays (tests, previews, re-encoding)."""
    path = _existing(path)
    if sniff_format(path) == "webp":
        try:
            return read_webp(path)[0]
        except (OSError, ValueError):
            raise _not_readable(path) from None
    return _decode_rgb(path)


def _decode_rgb(path: Path, max_frames: int | None = None) -> list[np.ndarray]:
    """The frames ffmpeg decodes from ``path`` (the first ``max_frames`` when given)."""
    result = run_ffmpeg(decode_rgb_command(path, max_frames), capture_stdout=True)
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


def check_audio(path: str | os.PathLike, max_seconds: float = AUDIO_CHECK_SECONDS) -> float:
    """The length in seconds of an uploaded audio file, or ``UserError`` if it is not one.

    Only local files in the containers of :data:`USER_AUDIO_FORMATS` are opened. The work is bounded
    by ``max_seconds``, however long the file says or turns out to be:

    1. The header is read; a file whose container declares more than ``max_seconds`` is answered
       with that declared length at once (a 315 KB silent FLAC can declare hours), nothing decoded.
    2. Otherwise the first audio stream is decoded, at most ``max_seconds`` + 1 s of it (ffmpeg's
       ``-t``), so a header that lies cannot make a long decode: a length over ``max_seconds`` then
       means "longer than that". It must have a positive length and not be damaged
       (:mod:`engine.video.damage`: packets that fail to decode, or random bytes read as samples).
    """
    path = _existing(path)
    try:
        _, audio, declared = _read_input_section(path, USER_INPUT_OPTIONS)
    except UserError:
        audio, declared = None, None
    if audio is None:
        log.info("rejected audio upload %s: no audio stream", path)
        raise UserError(AUDIO_HELP)
    if declared is not None and declared > max_seconds:
        log.info("audio upload %s declares %.1f s: answered without decoding", path, declared)
        return declared
    return _decode_audio(path, max_seconds + 1.0)


def _decode_audio(path: Path, cap_seconds: float) -> float:
    """Decode at most ``cap_seconds`` of the first audio stream: its length, or ``UserError``."""
    result = run_ffmpeg(decode_audio_command(path, {**USER_INPUT_OPTIONS, "t": f"{cap_seconds:g}"}))
    stderr = result.stderr.decode("utf-8", "replace")
    decoded = parse_audio_decode(stderr)
    if result.returncode != 0 or decoded.seconds <= 0:
        log.info("rejected audio upload %s:\n%s", path, stderr_tail(result.stderr))
        raise UserError(AUDIO_HELP)
    if decoded.damaged:
        log.info("rejected damaged audio upload %s: %s", path, decoded)
        raise UserError(DAMAGED_AUDIO)
    return decoded.seconds


def read_recipe(path: str | os.PathLike) -> dict | None:
    """The recipe stored in a video by :mod:`engine.video.embedded_recipe`, or ``None`` when it has none.

    MP4 (and anything else ffmpeg opens): the ``comment`` tag; GIF: its comment; WebP: its XMP.
    """
    path = _existing(path)
    kind = sniff_format(path)
    if kind == "webp":
        xmp = webp_xmp(path.read_bytes())
        return recipe_from_xmp(xmp) if xmp else None
    if kind == "gif":
        with Image.open(path) as image:
            return parse_recipe(image.info.get("comment"))
    result = run_ffmpeg(ffmetadata_command(path), capture_stdout=True)
    if result.returncode != 0:
        log.info("cannot read the metadata of %s:\n%s", path, stderr_tail(result.stderr))
        return None
    return parse_recipe(parse_ffmetadata(result.stdout.decode("utf-8", "replace")).get(COMMENT_TAG))
