"""The bot's fit path keeps a clip's format and the recipe inside it (what Info and Remix read later)."""

from support.clips import noise_frames

from bot.delivery.results import fit
from engine.video.formats import write_clip
from engine.video.read import decode_frames, read_recipe, sniff_format

RECIPE = {"animabot": "0.1.0", "recipe": 1, "job": 7, "params": {"prompt": "a kite", "seed": 3}}


async def test_fitting_a_gif_to_a_small_limit_keeps_a_gif_with_every_frame_and_the_recipe(tmp_path):
    source = write_clip(noise_frames(6, 96), tmp_path / "animabot-7-seed3.gif", 8, recipe=RECIPE)
    limit = source.stat().st_size // 2
    fitted, note = await fit(source, limit)
    assert fitted.suffix == ".gif" and sniff_format(fitted) == "gif" and fitted.stat().st_size <= limit
    assert len(decode_frames(fitted)) == 6 and read_recipe(fitted) == RECIPE
    assert note.startswith("re-encoded from")


async def test_fitting_an_mp4_keeps_the_recipe(tmp_path):
    source = write_clip(noise_frames(8, 128), tmp_path / "animabot-7-seed3.mp4", 8, recipe=RECIPE)
    fitted, _ = await fit(source, source.stat().st_size // 2)
    assert fitted.suffix == ".mp4" and read_recipe(fitted) == RECIPE
