"""Media files made for tests with the standard library: a WAV tone for ``/mux`` and ``--audio``."""

from __future__ import annotations

import math
import wave
from pathlib import Path


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
