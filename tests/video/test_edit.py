"""engine.video.edit: a soundtrack under a video, a video under a byte limit; checked by decoding back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.clips import FPS, FRAMES, moving_square_frames, noise_frames
from support.media import write_wav

from engine.errors import UserError
from engine.video.edit import fit_command, fit_sizes, fit_to_size, mux_audio, mux_command
from engine.video.encode import encode_frames
from engine.video.read import AUDIO_HELP, check_audio, decode_frames, probe

# -- audio ------------------------------------------------------------------------------------


@pytest.mark.parametrize("audio_seconds", [0.5, 3.0], ids=["shorter", "longer"])
def test_mux_audio_keeps_the_video_length_and_frames(clip, tmp_path, audio_seconds):
    path, _ = clip
    wav = tmp_path / "tone.wav"
    write_wav(wav, audio_seconds)
    assert check_audio(wav) == pytest.approx(audio_seconds, abs=0.01)

    out = mux_audio(path, wav, tmp_path / "muxed.mp4")

    info = probe(out)
    assert info.audio_codec == "aac"
    assert info.audio_duration == pytest.approx(FRAMES / FPS, abs=0.1)
    assert (info.video_codec, info.frames) == ("h264", FRAMES)
    # the video stream was copied, not re-encoded
    for before, after in zip(decode_frames(path), decode_frames(out)):
        np.testing.assert_array_equal(before, after)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["muxed.mp4", "tone.wav"]


def test_mux_audio_can_replace_the_video_in_place(tmp_path):
    path = encode_frames(moving_square_frames(4), tmp_path / "clip.mp4", FPS)
    write_wav(tmp_path / "tone.wav", 1.0)
    assert mux_audio(path, tmp_path / "tone.wav", path) == path
    info = probe(path)
    assert (info.frames, info.audio_codec) == (4, "aac")
    assert info.audio_duration == pytest.approx(4 / FPS, abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "tone.wav"]


@pytest.mark.parametrize(
    "content",
    [b"just some words\n", b"a text file with many lines\n" * 100],
    ids=["one-line", "many-lines"],  # many lines of .txt would open as ANSI-art video
)
def test_mux_audio_rejects_a_text_file_and_writes_nothing(clip, tmp_path, content):
    path, _ = clip
    text = tmp_path / "song.txt"
    text.write_bytes(content)
    with pytest.raises(UserError) as err:
        mux_audio(path, text, tmp_path / "muxed.mp4")
    assert str(err.value) == AUDIO_HELP
    assert [p.name for p in tmp_path.iterdir()] == ["song.txt"]


def test_mux_command_copies_the_video_and_reads_the_upload_as_local_audio_only():
    command = mux_command(Path("/v/clip.mp4"), Path("/up/song.ogg"), Path("/v/.out.part.mp4"), 1.25)
    assert command[1:] == [
        "-i", "/v/clip.mp4",
        "-format_whitelist", "wav,mp3,ogg,mov,flac,aac,matroska", "-protocol_whitelist", "file",
        "-i", "/up/song.ogg",
        "-map", "0:V:0", "-map", "1:a:0",
        "-f", "mp4",
        "-af", "asetpts=PTS-STARTPTS,atrim=end=1.250000,apad=whole_dur=1.250000",
        "-b:a", "128k", "-c:a", "aac", "-c:v", "copy", "-map_metadata", "0", "-movflags", "+faststart",
        "/v/.out.part.mp4",
        "-hide_banner", "-nostdin", "-nostats", "-y",
    ]  # fmt: skip


# -- fitting under an upload limit ------------------------------------------------------------


def test_fit_to_size_reencodes_under_the_budget_keeping_frames_and_audio(noisy_clip_with_audio, tmp_path):
    src = noisy_clip_with_audio
    budget = src.stat().st_size // 4
    out = fit_to_size(src, tmp_path / "fit.mp4", budget)
    assert out.stat().st_size <= budget
    info = probe(out)
    assert (info.video_codec, info.pix_fmt, info.frames) == ("h264", "yuv420p", 12)
    assert info.audio_codec == "aac"
    assert len(decode_frames(out)) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["fit.mp4"]


def test_fit_to_size_copies_a_file_that_already_fits(clip, tmp_path):
    path, _ = clip
    out = fit_to_size(path, tmp_path / "copy.mp4", path.stat().st_size)
    assert out.read_bytes() == path.read_bytes()


def test_fit_to_size_says_when_nothing_fits(noisy_clip_with_audio, tmp_path):
    with pytest.raises(UserError, match=r"cannot fit under .* MiB; ask for fewer frames"):
        fit_to_size(noisy_clip_with_audio, tmp_path / "fit.mp4", 2000)
    assert list(tmp_path.iterdir()) == []


def test_fit_sizes_halve_while_the_short_side_stays_at_least_128():
    assert fit_sizes(512, 384) == [(512, 384), (256, 192)]
    assert fit_sizes(512, 512) == [(512, 512), (256, 256), (128, 128)]
    assert fit_sizes(64, 64) == [(64, 64)]


def test_fit_command_scales_and_caps_the_bitrate_keeping_audio_only_when_there_is_some():
    with_audio = fit_command(Path("/v/big.mp4"), Path("/v/.fit.part.mp4"), (256, 192), 50_000, has_audio=True)
    assert with_audio[1:] == [
        "-i", "/v/big.mp4",
        "-map", "0:V:0", "-map", "0:a:0",
        "-f", "mp4",
        "-b:a", "96k", "-b:v", "50000", "-bufsize", "100000", "-c:a", "aac", "-c:v", "libx264",
        "-map_metadata", "0", "-maxrate", "50000", "-movflags", "+faststart", "-pix_fmt", "yuv420p", "-preset", "medium",
        "-threads", "1", "-vf", "scale=256:192:flags=area",
        "/v/.fit.part.mp4",
        "-hide_banner", "-nostdin", "-nostats", "-y",
    ]  # fmt: skip
    silent = fit_command(Path("/v/big.mp4"), Path("/v/.fit.part.mp4"), (256, 192), 50_000, has_audio=False)
    assert silent[1:] == [
        "-i", "/v/big.mp4",
        "-map", "0:V:0",
        "-f", "mp4",
        "-b:v", "50000", "-bufsize", "100000", "-c:v", "libx264",
        "-map_metadata", "0", "-maxrate", "50000", "-movflags", "+faststart", "-pix_fmt", "yuv420p", "-preset", "medium",
        "-threads", "1", "-vf", "scale=256:192:flags=area",
        "/v/.fit.part.mp4",
        "-hide_banner", "-nostdin", "-nostats", "-y",
    ]  # fmt: skip


def test_fitting_the_same_video_twice_writes_the_same_bytes(tmp_path):
    """x264's rate control is run single-threaded, so a fit cannot miss its budget by the luck of thread timing."""
    src = encode_frames(noise_frames(12, 128), tmp_path / "clip.mp4", 8)
    budget = src.stat().st_size // 3
    first = fit_to_size(src, tmp_path / "a.mp4", budget).read_bytes()
    second = fit_to_size(src, tmp_path / "b.mp4", budget).read_bytes()
    assert len(first) <= budget and first == second
