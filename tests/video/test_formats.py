"""engine.video.formats, .gif, .webp and the recipe: written, decoded back, counted, fitted, read back."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from support.clips import FPS, moving_square_frames, noise_frames
from support.media import write_wav

from engine.errors import UserError
from engine.files import result_filename
from engine.video.edit import fit_to_size, mux_audio
from engine.video.embedded_recipe import gif_with_comment, parse_ffmetadata, recipe_text
from engine.video.formats import check_format_matches, clip_format, write_clip
from engine.video.read import decode_frames, probe, read_recipe
from engine.video.runner import ffmpeg_exe

RECIPE = {"prompt": 'a café in Zürich at dusk, 東京の夜 = ; # \\ "quoted"\nsecond line ' * 40, "seed": 1234, "fps": 8}


def with_repeats(frames: list[np.ndarray]) -> list[np.ndarray]:
    """``frames`` with an exact and a near-exact repeat in them: encoders like to merge those."""
    nudged = np.clip(frames[2].astype(np.int16) + 1, 0, 255).astype(np.uint8)
    return [frames[0], frames[1], frames[1].copy(), frames[2], nudged, *frames[3:]]


@pytest.mark.parametrize("fmt", ["mp4", "gif", "webp"])
def test_every_frame_stays_its_own_frame(tmp_path, fmt):
    frames = with_repeats(moving_square_frames(6))
    path = write_clip(frames, tmp_path / result_filename(42, 7, ext=fmt), FPS, recipe=RECIPE)
    assert path.name == f"animabot-42-seed7.{fmt}"
    info = probe(path)
    assert (info.frames, info.width, info.height, info.video_codec) == (8, 64, 64, "h264" if fmt == "mp4" else fmt)
    assert info.fps == pytest.approx(FPS, rel=0.01)
    decoded = decode_frames(path)
    assert len(decoded) == 8 and decoded[0].shape == (64, 64, 3)
    assert np.abs(decoded[3].astype(np.float32) - frames[3]).mean() < 8  # the right picture, lossy or paletted
    assert read_recipe(path) == RECIPE
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_the_mp4_recipe_is_the_comment_tag_on_one_line(tmp_path):
    path = write_clip(moving_square_frames(2), tmp_path / "clip.mp4", FPS, recipe=RECIPE)
    banner = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    assert f"comment         : {recipe_text(RECIPE)[:100]}" in banner
    assert "\n" not in recipe_text(RECIPE) and recipe_text(RECIPE).isascii()


def test_a_video_without_a_recipe_reads_none(clip):
    assert read_recipe(clip[0]) is None


def test_mux_audio_and_fit_to_size_keep_the_recipe(tmp_path):
    src = write_clip(noise_frames(12, 128), tmp_path / "clip.mp4", FPS, recipe=RECIPE)
    write_wav(tmp_path / "tone.wav", 1.0)
    muxed = mux_audio(src, tmp_path / "tone.wav", tmp_path / "muxed.mp4")
    assert read_recipe(muxed) == RECIPE
    fitted = fit_to_size(muxed, tmp_path / "fit.mp4", muxed.stat().st_size // 3)
    assert read_recipe(fitted) == RECIPE


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_fit_to_size_keeps_the_format_every_frame_and_the_recipe(tmp_path, fmt):
    src = write_clip(noise_frames(6, 256), tmp_path / f"clip.{fmt}", FPS, recipe=RECIPE)
    budget = src.stat().st_size // 3
    out = fit_to_size(src, tmp_path / f"fit.{fmt}", budget)
    assert out.stat().st_size <= budget
    info = probe(out)
    assert (info.video_codec, info.frames) == (fmt, 6)
    assert read_recipe(out) == RECIPE


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_fit_to_size_says_when_an_animation_cannot_fit(tmp_path, fmt):
    src = write_clip(noise_frames(4, 64), tmp_path / f"clip.{fmt}", FPS)
    with pytest.raises(UserError, match=r"cannot fit under .* MiB; ask for fewer frames"):
        fit_to_size(src, tmp_path / f"fit.{fmt}", 300)
    assert [p.name for p in tmp_path.iterdir()] == [f"clip.{fmt}"]


@pytest.mark.parametrize(("name", "expected"), [(None, "mp4"), ("", "mp4"), ("GIF", "gif"), (".webp", "webp")])
def test_clip_format_maps_names_and_extensions(name, expected):
    assert clip_format(name).ext == expected


def test_clip_format_refuses_an_unknown_format_in_one_sentence():
    with pytest.raises(UserError) as err:
        clip_format("avi")
    assert str(err.value) == "The format 'avi' is not one animabot writes; choose mp4, gif, webp."


def test_a_format_that_contradicts_the_file_name_is_refused(tmp_path):
    assert check_format_matches(tmp_path / "a.GIF", "gif").name == "gif"
    assert check_format_matches(tmp_path / "a.webp").name == "webp"
    with pytest.raises(UserError) as err:
        write_clip(moving_square_frames(2), tmp_path / "clip.mp4", FPS, fmt="gif")
    assert str(err.value) == "The format gif does not match the file name clip.mp4; name it clip.gif or choose mp4."
    assert list(tmp_path.iterdir()) == []


def test_parse_ffmetadata_unescapes_and_stops_at_the_first_section():
    text = ";FFMETADATA1\nmajor_brand=isom\ncomment=a\\=b\\;c\\#d\\\\e\\\nf\n[STREAM]\ncomment=other\n"
    assert parse_ffmetadata(text) == {"major_brand": "isom", "comment": "a=b;c#d\\e\nf"}


def test_a_gif_comment_longer_than_one_sub_block_survives(tmp_path):
    path = write_clip(moving_square_frames(2), tmp_path / "clip.gif", FPS)
    data = gif_with_comment(path.read_bytes(), recipe_text(RECIPE))
    (tmp_path / "again.gif").write_bytes(data)
    assert len(recipe_text(RECIPE)) > 255 and read_recipe(tmp_path / "again.gif") == RECIPE
    assert len(decode_frames(tmp_path / "again.gif")) == 2
