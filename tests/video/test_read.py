"""engine.video.read / parse / runner: probing, the audio check, parsing ffmpeg's stderr, the time limit."""

from __future__ import annotations

from pathlib import Path

import ffmpeg
import pytest

from engine.errors import UserError
from engine.video import runner
from engine.video.parse import StreamHeader, parse_final_stats, parse_stream_line
from engine.video.read import check_audio, decode_to_null_command, header_command, probe


def test_a_stuck_ffmpeg_is_killed_after_the_time_limit(monkeypatch):
    monkeypatch.setattr(runner, "FFMPEG_TIMEOUT_S", 0.5)
    endless = ffmpeg.input("anullsrc", format="lavfi").output("-", format="null")  # a source that never ends
    with pytest.raises(RuntimeError, match="did not finish within 0.5 s"):
        runner.run_ffmpeg(runner.ffmpeg_command(endless))


def test_probe_rejects_a_file_ffmpeg_cannot_read(tmp_path):
    bogus = tmp_path / "notes.bin"
    bogus.write_bytes(b"\x00\x01 definitely not media " * 10)
    with pytest.raises(UserError, match="is not a video or audio file ffmpeg can read"):
        probe(bogus)


def test_check_audio_rejects_a_file_without_audio(clip):
    path, _ = clip
    with pytest.raises(UserError, match="upload an MP3, WAV, OGG or M4A"):
        check_audio(path)


# -- command lines ----------------------------------------------------------------------------


def test_a_user_file_is_opened_with_the_whitelists_and_decoded_into_nothing():
    command = header_command(Path("/up/song.mp3"), {"protocol_whitelist": "file", "format_whitelist": "wav,mp3"})
    assert command[0] == runner.ffmpeg_exe()
    assert command[1:] == [
        "-format_whitelist", "wav,mp3", "-protocol_whitelist", "file", "-i", "/up/song.mp3",
        "-f", "null", "-t", "0", "-",
        "-hide_banner", "-nostdin", "-nostats",
    ]  # fmt: skip


def test_decoding_one_stream_maps_only_that_stream():
    assert decode_to_null_command(Path("/v/clip.mp4"), "a:0")[1:] == [
        "-i", "/v/clip.mp4", "-map", "0:a:0", "-f", "null", "-", "-hide_banner", "-nostdin", "-nostats",
    ]  # fmt: skip


# -- parsing ffmpeg's stderr ------------------------------------------------------------------


def test_parse_stream_line_handles_nested_commas_and_cover_art():
    line = (
        "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), "
        "yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 5000 kb/s, "
        "23.98 fps, 23.98 tbr, 24k tbn (default)"
    )
    assert parse_stream_line(line) == StreamHeader("video", "h264", "yuv420p", 1920, 1080, 23.98)
    audio = "  Stream #0:1: Audio: mp3 (mp3float), 44100 Hz, stereo, fltp, 128 kb/s"
    assert parse_stream_line(audio) == StreamHeader("audio", "mp3")
    cover = "  Stream #0:2: Video: mjpeg (Baseline), yuvj420p(pc), 500x500, 90k tbr (attached pic)"
    assert parse_stream_line(cover) is None


def test_parse_final_stats_reads_the_last_progress_line():
    stderr = "frame=    3 fps=0.0 time=00:00:00.37\rframe=   12 fps=0.0 q=-0.0 time=00:01:01.50 x\n"
    assert parse_final_stats(stderr) == (12, 61.5)
    assert parse_final_stats("size=N/A time=N/A") == (0, 0.0)
