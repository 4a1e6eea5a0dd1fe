"""engine.video.encode: frames → H.264 MP4, checked by probing and decoding the file back."""

from __future__ import annotations

import numpy as np
import pytest
from support.clips import FPS, FRAMES, SIZE, moving_square_frames

from engine.video.encode import VideoWriter, encode_frames
from engine.video.read import MediaInfo, decode_frames, probe


def test_encode_then_probe_reports_h264_size_fps_and_frame_count(clip):
    path, _ = clip
    info = probe(path)
    assert info == MediaInfo(
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
    decoded = decode_frames(path)
    assert len(decoded) == FRAMES
    for original, back in zip(frames, decoded):
        assert back.shape == (SIZE, SIZE, 3) and back.dtype == np.uint8
        assert np.abs(back.astype(int) - original.astype(int)).mean() < 4


def test_writer_with_block_writes_frames_and_leaves_no_temp_file(tmp_path):
    frames = moving_square_frames(4)
    with VideoWriter(tmp_path / "out.mp4", SIZE, SIZE, fps=4) as writer:
        for frame in frames:
            writer.write(frame)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert probe(tmp_path / "out.mp4").frames == 4


def test_writer_leaves_nothing_when_the_block_raises(tmp_path):
    with pytest.raises(KeyError):
        with VideoWriter(tmp_path / "out.mp4", SIZE, SIZE, fps=FPS) as writer:
            writer.write(moving_square_frames(1)[0])
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_keeps_an_existing_target_when_a_bad_frame_aborts_it(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous render")
    with pytest.raises(ValueError, match="shape"):
        with VideoWriter(target, SIZE, SIZE, fps=FPS) as writer:
            writer.write(np.zeros((SIZE, SIZE + 8, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert target.read_bytes() == b"previous render"


def test_writer_leaves_no_temp_file_when_the_rename_fails(tmp_path):
    target = tmp_path / "out.mp4"
    (target / "taken").mkdir(parents=True)  # a folder in the way: the final rename fails
    with pytest.raises(OSError):
        encode_frames(moving_square_frames(2), target, FPS)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert [p.name for p in target.iterdir()] == ["taken"]


def test_writer_rejects_odd_sizes_and_empty_videos(tmp_path):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", 63, 64, fps=FPS)
    with pytest.raises(ValueError, match="no frames"):
        encode_frames([], tmp_path / "empty.mp4", FPS)
    assert list(tmp_path.iterdir()) == []
