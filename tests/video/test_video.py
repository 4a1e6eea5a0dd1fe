"""engine.video.encode / engine.video.read: encode, probe, decode, mux, fit, preview; checked by decoding back.

Everything runs the real ffmpeg on tiny clips (64×64 or 128×128, a handful of frames).
"""

from __future__ import annotations

import io
import math
import wave

import numpy as np
import pytest
from PIL import Image

from engine.video import read as media
from engine.video import encode as video
from engine.errors import UserError

FPS = 8
FRAMES = 10
SIZE = 64


def moving_square_frames(n: int = FRAMES, size: int = SIZE) -> list[np.ndarray]:
    """A horizontal gradient with a red square sliding across it: smooth, distinct frames."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    frames = []
    for i in range(n):
        frame = np.empty((size, size, 3), dtype=np.uint8)
        frame[..., 0] = ramp[None, :]
        frame[..., 1] = ramp[:, None]
        frame[..., 2] = 255 - ramp[None, :]
        x = 4 + i * (size - 24) // max(n - 1, 1)
        frame[16:32, x : x + 16] = (255, 0, 0)
        frames.append(frame)
    return frames


def noise_frames(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def write_sine_wav(path, seconds: float, rate: int = 22050) -> None:
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * math.pi * 440 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 10-frame 64×64 clip at 8 fps (1.25 s) and the frames it was made from."""
    frames = moving_square_frames()
    path = video.encode_frames(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", FPS)
    return path, frames


# -- encode / probe / decode -------------------------------------------------------------------


def test_encode_then_probe_reports_h264_size_fps_and_frame_count(clip):
    path, _ = clip
    info = video.probe(path)
    assert info == video.MediaInfo(
        width=SIZE,
        height=SIZE,
        fps=FPS,
        frames=FRAMES,
        video_codec="h264",
        pix_fmt="yuv420p",
        duration=pytest.approx(FRAMES / FPS, abs=0.01),
        audio_codec=None,
        audio_duration=None,
    )


def test_decode_frames_gives_back_the_encoded_frames(clip):
    path, frames = clip
    decoded = video.decode_frames(path)
    assert len(decoded) == FRAMES
    for original, back in zip(frames, decoded):
        assert back.shape == (SIZE, SIZE, 3) and back.dtype == np.uint8
        assert np.abs(back.astype(int) - original.astype(int)).mean() < 4


def test_writer_with_block_writes_frames_and_leaves_no_temp_file(tmp_path):
    frames = moving_square_frames(4)
    with video.VideoWriter(tmp_path / "out.mp4", SIZE, SIZE, fps=4) as writer:
        for frame in frames:
            writer.write(frame)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert video.probe(tmp_path / "out.mp4").frames == 4


def test_writer_leaves_nothing_when_the_block_raises(tmp_path):
    with pytest.raises(KeyError):
        with video.VideoWriter(tmp_path / "out.mp4", SIZE, SIZE, fps=FPS) as writer:
            writer.write(moving_square_frames(1)[0])
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_keeps_an_existing_target_when_a_bad_frame_aborts_it(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous render")
    with pytest.raises(ValueError, match="shape"):
        with video.VideoWriter(target, SIZE, SIZE, fps=FPS) as writer:
            writer.write(np.zeros((SIZE, SIZE + 8, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert target.read_bytes() == b"previous render"


def test_writer_leaves_no_temp_file_when_the_rename_fails(tmp_path):
    target = tmp_path / "out.mp4"
    (target / "taken").mkdir(parents=True)  # a folder in the way: the final rename fails
    with pytest.raises(OSError):
        video.encode_frames(moving_square_frames(2), target, FPS)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert [p.name for p in target.iterdir()] == ["taken"]


def test_a_stuck_ffmpeg_is_killed_after_the_time_limit(monkeypatch):
    monkeypatch.setattr(media, "FFMPEG_TIMEOUT_S", 0.5)
    endless = ["-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"]  # a source that never ends
    with pytest.raises(RuntimeError, match="did not finish within 0.5 s"):
        media.run_ffmpeg(endless)


def test_writer_rejects_odd_sizes_and_empty_videos(tmp_path):
    with pytest.raises(ValueError, match="even"):
        video.VideoWriter(tmp_path / "odd.mp4", 63, 64, fps=FPS)
    with pytest.raises(ValueError, match="no frames"):
        video.encode_frames([], tmp_path / "empty.mp4", FPS)
    assert list(tmp_path.iterdir()) == []


def test_probe_rejects_a_file_ffmpeg_cannot_read(tmp_path):
    bogus = tmp_path / "notes.bin"
    bogus.write_bytes(b"\x00\x01 definitely not media " * 10)
    with pytest.raises(UserError, match="is not a video or audio file ffmpeg can read"):
        video.probe(bogus)


# -- audio ------------------------------------------------------------------------------------


@pytest.mark.parametrize("audio_seconds", [0.5, 3.0], ids=["shorter", "longer"])
def test_mux_audio_keeps_the_video_length_and_frames(clip, tmp_path, audio_seconds):
    path, _ = clip
    wav = tmp_path / "tone.wav"
    write_sine_wav(wav, audio_seconds)
    assert video.check_audio(wav) == pytest.approx(audio_seconds, abs=0.01)

    out = video.mux_audio(path, wav, tmp_path / "muxed.mp4")

    info = video.probe(out)
    assert info.audio_codec == "aac"
    assert info.audio_duration == pytest.approx(FRAMES / FPS, abs=0.1)
    assert (info.video_codec, info.frames) == ("h264", FRAMES)
    # the video stream was copied, not re-encoded
    for before, after in zip(video.decode_frames(path), video.decode_frames(out)):
        np.testing.assert_array_equal(before, after)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["muxed.mp4", "tone.wav"]


def test_mux_audio_can_replace_the_video_in_place(tmp_path):
    path = video.encode_frames(moving_square_frames(4), tmp_path / "clip.mp4", FPS)
    write_sine_wav(tmp_path / "tone.wav", 1.0)
    assert video.mux_audio(path, tmp_path / "tone.wav", path) == path
    info = video.probe(path)
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
        video.mux_audio(path, text, tmp_path / "muxed.mp4")
    assert str(err.value) == media.AUDIO_HELP
    assert [p.name for p in tmp_path.iterdir()] == ["song.txt"]


def test_check_audio_rejects_a_file_without_audio(clip):
    path, _ = clip
    with pytest.raises(UserError, match="upload an MP3, WAV, OGG or M4A"):
        video.check_audio(path)


# -- fitting under an upload limit ------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_clip_with_audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noisy")
    silent = video.encode_frames(noise_frames(12, 128), folder / "silent.mp4", FPS)
    write_sine_wav(folder / "tone.wav", 2.0)
    return video.mux_audio(silent, folder / "tone.wav", folder / "noisy.mp4")


def test_fit_to_size_reencodes_under_the_budget_keeping_frames_and_audio(
    noisy_clip_with_audio, tmp_path
):
    src = noisy_clip_with_audio
    budget = src.stat().st_size // 4
    out = video.fit_to_size(src, tmp_path / "fit.mp4", budget)
    assert out.stat().st_size <= budget
    info = video.probe(out)
    assert (info.video_codec, info.pix_fmt, info.frames) == ("h264", "yuv420p", 12)
    assert info.audio_codec == "aac"
    assert len(video.decode_frames(out)) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["fit.mp4"]


def test_fit_to_size_copies_a_file_that_already_fits(clip, tmp_path):
    path, _ = clip
    out = video.fit_to_size(path, tmp_path / "copy.mp4", path.stat().st_size)
    assert out.read_bytes() == path.read_bytes()


def test_fit_to_size_says_when_nothing_fits(noisy_clip_with_audio, tmp_path):
    with pytest.raises(UserError, match=r"cannot fit under .* MiB; ask for fewer frames"):
        video.fit_to_size(noisy_clip_with_audio, tmp_path / "fit.mp4", 2000)
    assert list(tmp_path.iterdir()) == []


def test_fit_sizes_halve_while_the_short_side_stays_at_least_128():
    assert video.fit_sizes(512, 384) == [(512, 384), (256, 192)]
    assert video.fit_sizes(512, 512) == [(512, 512), (256, 256), (128, 128)]
    assert video.fit_sizes(64, 64) == [(64, 64)]


# -- parsing ffmpeg's stderr ------------------------------------------------------------------


def test_parse_stream_line_handles_nested_commas_and_cover_art():
    line = (
        "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), "
        "yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 5000 kb/s, "
        "23.98 fps, 23.98 tbr, 24k tbn (default)"
    )
    assert media.parse_stream_line(line) == media.StreamHeader(
        "video", "h264", "yuv420p", 1920, 1080, 23.98
    )
    audio = "  Stream #0:1: Audio: mp3 (mp3float), 44100 Hz, stereo, fltp, 128 kb/s"
    assert media.parse_stream_line(audio) == media.StreamHeader("audio", "mp3")
    cover = "  Stream #0:2: Video: mjpeg (Baseline), yuvj420p(pc), 500x500, 90k tbr (attached pic)"
    assert media.parse_stream_line(cover) is None


def test_parse_final_stats_reads_the_last_progress_line():
    stderr = "frame=    3 fps=0.0 time=00:00:00.37\rframe=   12 fps=0.0 q=-0.0 time=00:01:01.50 x\n"
    assert media.parse_final_stats(stderr) == (12, 61.5)
    assert media.parse_final_stats("size=N/A time=N/A") == (0, 0.0)


# -- previews ---------------------------------------------------------------------------------


def test_preview_jpeg_is_a_small_jpeg():
    frame = np.zeros((128, 96, 3), np.uint8)
    image = Image.open(io.BytesIO(video.preview_jpeg(frame, max_side=64)))
    assert image.format == "JPEG"
    assert image.size == (48, 64)


def test_preview_animation_has_every_frame():
    frames = moving_square_frames(6, 128)
    image = Image.open(io.BytesIO(video.preview_animation(frames, fps=FPS, max_side=64)))
    assert image.format in ("WEBP", "GIF")
    assert image.n_frames == 6
    assert max(image.size) <= 64


def test_preview_animation_falls_back_to_gif_without_webp(monkeypatch):
    monkeypatch.delitem(Image.SAVE_ALL, "WEBP", raising=False)
    image = Image.open(io.BytesIO(video.preview_animation(moving_square_frames(4), fps=FPS)))
    assert image.format == "GIF"
    assert image.n_frames == 4
