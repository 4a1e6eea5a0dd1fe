"""The audio check decodes the whole stream: damaged uploads are refused, saying so; sound ones pass."""

from __future__ import annotations

import random
import wave
from pathlib import Path

import ffmpeg
import pytest
from support.media import write_wav

from engine.errors import UserError
from engine.video.damage import decode_audio_command, parse_audio_decode
from engine.video.read import DAMAGED_AUDIO, USER_INPUT_OPTIONS, check_audio
from engine.video.runner import ffmpeg_command, ffmpeg_path, run_ffmpeg


def lavfi_audio(path: Path, source: str) -> Path:
    """Render an ffmpeg test source (``sine=d=20``, ``anoisesrc=...``) into ``path``."""
    stream = ffmpeg.input(source, format="lavfi").output(ffmpeg_path(path))
    result = run_ffmpeg(ffmpeg_command(stream.global_args("-y")))
    assert result.returncode == 0, result.stderr[-500:]
    return path


def corrupt(path: Path, start: float, end: float, seed: int = 0) -> Path:
    """Overwrite the bytes between fractions ``start`` and ``end`` of the file with random ones."""
    data = bytearray(path.read_bytes())
    lo, hi = int(len(data) * start), int(len(data) * end)
    data[lo:hi] = random.Random(seed).randbytes(hi - lo)
    path.write_bytes(bytes(data))
    return path


def test_a_wav_header_followed_by_random_bytes_is_refused_as_damaged(tmp_path):
    path = tmp_path / "song.wav"
    with wave.open(str(path), "wb") as out:  # a valid 44-byte header, then 2 s of random "samples"
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(random.Random(1).randbytes(2 * 44100 * 4))
    with pytest.raises(UserError) as refused:
        check_audio(path)
    assert str(refused.value) == DAMAGED_AUDIO and "damaged" in DAMAGED_AUDIO


def test_an_mp3_whose_middle_is_random_bytes_is_refused_as_damaged(tmp_path):
    path = corrupt(lavfi_audio(tmp_path / "song.mp3", "sine=d=3"), 0.1, 0.9)
    decoded = parse_audio_decode(run_ffmpeg(decode_audio_command(path, USER_INPUT_OPTIONS)).stderr.decode())
    assert decoded.bad_packets > 0 and decoded.bad_fraction > 0.01
    with pytest.raises(UserError, match="damaged"):
        check_audio(path)


def test_a_few_bad_packets_in_a_long_mp3_are_tolerated(tmp_path):
    path = corrupt(lavfi_audio(tmp_path / "song.mp3", "sine=d=20"), 0.5, 0.5002)
    decoded = parse_audio_decode(run_ffmpeg(decode_audio_command(path, USER_INPUT_OPTIONS)).stderr.decode())
    assert 0 < decoded.bad_packets and decoded.bad_fraction <= 0.01
    assert check_audio(path) == pytest.approx(20, abs=0.1)


def test_a_sound_wav_passes_with_its_length(tmp_path):
    assert check_audio(write_wav(tmp_path / "tone.wav", seconds=1.5)) == pytest.approx(1.5, abs=0.01)


def test_a_noise_recording_at_a_normal_level_is_not_taken_for_random_bytes(tmp_path):
    path = lavfi_audio(tmp_path / "rain.wav", "anoisesrc=d=2:c=pink:a=0.3")
    assert check_audio(path) == pytest.approx(2, abs=0.01)
