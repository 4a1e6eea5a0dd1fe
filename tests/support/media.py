"""Media files made for tests: a WAV tone (standard library) for ``/mux`` and ``--audio``, a FLAC whose header lies."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import ffmpeg

from engine.video.runner import ffmpeg_command, ffmpeg_path, run_ffmpeg


def write_wav(
    path: Path, seconds: float = 1.0, rate: int = 8000, *, freq: float = 440.0, amplitude: int = 12000
) -> Path:
    """A mono 16-bit sine tone of ``seconds`` at ``rate`` Hz; returns ``path``."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        value = int(amplitude * math.sin(2 * math.pi * freq * i / rate))
        frames += value.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return Path(path)


def write_flac(path: Path, seconds: float, *, declared: float | None = None, rate: int = 8000) -> Path:
    """``seconds`` of FLAC silence whose header (STREAMINFO's sample count) says ``declared`` seconds:
    what a hostile upload sends, a few KB that say they hold hours. Made by ffmpeg, then patched."""
    silence = ffmpeg.input(f"anullsrc=r={rate}:cl=mono", format="lavfi", t=f"{seconds:g}")
    result = run_ffmpeg(ffmpeg_command(silence.output(ffmpeg_path(path)), overwrite=True))
    assert result.returncode == 0, result.stderr[-500:]
    data = bytearray(Path(path).read_bytes())
    if declared is not None:
        # "fLaC", a 4-byte block header, then STREAMINFO: the sample count is the low 36 bits of bytes 18..25.
        assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "the first metadata block is STREAMINFO"
        fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
        data[18:26] = (fields | round(declared * rate)).to_bytes(8, "big")
        Path(path).write_bytes(bytes(data))
    return Path(path)
