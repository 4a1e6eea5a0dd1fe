"""Parsing what ffmpeg writes to stderr (pure): the stream headers and the final stats line.

``ffmpeg -i FILE ...`` prints an ``Input #0`` section (and ``Output #0`` when there is an output)
whose ``Stream #0:N: Video|Audio: ...`` lines give the codecs, picture size and frame rate; a run
ends with a ``frame= ... time= ...`` stats line giving how much it decoded. :mod:`engine.video.read`
runs ffmpeg and reads these; this module only parses text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class StreamHeader:
    """One ``Stream #0:N: Video|Audio: ...`` line of ffmpeg's banner, parsed."""

    kind: str  # "video" or "audio"
    codec: str
    pix_fmt: str | None = None
    width: int = 0
    height: int = 0
    fps: float = 0.0


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


_DURATION = re.compile(r"^\s*Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def parse_duration(section: Sequence[str]) -> float | None:
    """The length in seconds that the ``Duration:`` line of an ``Input #0`` section declares; ``None``
    when it says ``N/A`` or is missing. It is what the container's header says, not what decodes."""
    for line in section:
        match = _DURATION.match(line)
        if match:
            hours, minutes, seconds = match.groups()
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None
