"""Whether an uploaded soundtrack is damaged: decode all of it once and read what ffmpeg says.

One ffmpeg run decodes the whole first audio stream into the null muxer through ``astats``, so
its stderr holds (1) a line for every packet the decoder refused, (2) the decoded length in the
final stats, and (3) the sample statistics of everything that did decode. A file is damaged when

- more than :data:`MAX_BAD_FRACTION` of its packets failed to decode (a few bad packets in a long
  file, as in a download cut short and resumed, are tolerated), or
- it decodes cleanly but to uniformly random full-scale samples (normalised entropy of the sample
  values ≥ :data:`NOISE_ENTROPY` and RMS above :data:`NOISE_RMS_DB`): what any bytes read as PCM
  look like, e.g. a WAV header followed by random bytes. PCM has no redundancy, so nothing
  else can tell random bytes from a recording; real recordings, even noise recordings at normal
  levels, stay far below both (pink noise at -20 dBFS: entropy 0.82).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import ffmpeg

from engine.video.parse import parse_final_stats
from engine.video.runner import ffmpeg_command, ffmpeg_path

MAX_BAD_FRACTION = 0.01
PACKET_SECONDS = 0.026  # a typical audio packet (MP3 1152 samples, AAC 1024, at 44.1 kHz): to estimate the count
NOISE_ENTROPY = 0.99
NOISE_RMS_DB = -6.0

# One line per packet the decoder refused (ffmpeg ≥ 7; "Error while decoding stream" before).
_BAD_PACKET = re.compile(r"Error submitting packet to decoder|Error while decoding stream")
_ENTROPY = re.compile(r"Entropy: ([0-9.]+)")
_RMS = re.compile(r"RMS level dB: (-?[0-9.]+|-inf)")


@dataclasses.dataclass(frozen=True)
class AudioDecode:
    """What decoding a whole audio stream showed."""

    seconds: float  # decoded length
    bad_packets: int
    entropy: float | None  # 0..1, of the sample values (astats); None if ffmpeg did not say
    rms_db: float | None

    @property
    def bad_fraction(self) -> float:
        good = self.seconds / PACKET_SECONDS
        return self.bad_packets / (self.bad_packets + good) if self.bad_packets else 0.0

    @property
    def random_samples(self) -> bool:
        return (
            self.entropy is not None
            and self.rms_db is not None
            and self.entropy >= NOISE_ENTROPY
            and self.rms_db > NOISE_RMS_DB
        )

    @property
    def damaged(self) -> bool:
        return self.bad_fraction > MAX_BAD_FRACTION or self.random_samples


def decode_audio_command(path: Path, input_options: Mapping[str, str]) -> list[str]:
    """Decode ``a:0`` of ``path`` through ``astats`` (overall entropy and RMS) into the null muxer."""
    source = ffmpeg.input(ffmpeg_path(path), **input_options)
    stats = source["a:0"].filter("astats", measure_perchannel="none", measure_overall="Entropy+RMS_level")
    return ffmpeg_command(stats.output("-", format="null"))


def parse_audio_decode(stderr: str) -> AudioDecode:
    """The :class:`AudioDecode` in the stderr of :func:`decode_audio_command`."""
    _, seconds = parse_final_stats(stderr)
    entropy = _ENTROPY.findall(stderr)
    rms = _RMS.findall(stderr)
    rms_db = None if not rms else (float("-inf") if rms[-1] == "-inf" else float(rms[-1]))
    return AudioDecode(
        seconds=seconds,
        bad_packets=len(_BAD_PACKET.findall(stderr)),
        entropy=float(entropy[-1]) if entropy else None,
        rms_db=rms_db,
    )
