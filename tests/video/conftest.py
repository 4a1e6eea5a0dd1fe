"""The clips the video tests share, encoded once per module with the real ffmpeg."""

import pytest
from support.clips import FPS, moving_square_frames, noise_frames
from support.media import write_wav

from engine.video.edit import mux_audio
from engine.video.encode import encode_frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 10-frame 64×64 clip at 8 fps (1.25 s) and the frames it was made from."""
    frames = moving_square_frames()
    path = encode_frames(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", FPS)
    return path, frames


@pytest.fixture(scope="module")
def noisy_clip_with_audio(tmp_path_factory):
    """12 frames of 128×128 noise (hard to compress) with a 2 s tone under them."""
    folder = tmp_path_factory.mktemp("noisy")
    silent = encode_frames(noise_frames(12, 128), folder / "silent.mp4", FPS)
    write_wav(folder / "tone.wav", 2.0)
    return mux_audio(silent, folder / "tone.wav", folder / "noisy.mp4")
