"""/mux answers a soundtrack that declares hours from its header, with the sentence for too long."""

from __future__ import annotations

from support.botharness import command, job_id_in
from support.media import write_flac
from support.waiting import wait_result


async def test_mux_refuses_a_small_flac_that_declares_four_hours(fake, world, bot, tmp_path):
    answer = await command(fake, "animate", {"prompt": "a drum"}, user_id=world.member_id, channel_id=world.channel_id)
    await wait_result(fake, world.channel_id, job_id_in(answer.content))
    # One second of silence, a few KB, whose header says four hours: decoded, it would pass.
    flac = write_flac(tmp_path / "silence.flac", seconds=1, declared=4 * 3600).read_bytes()
    refused = await command(fake, "mux", user_id=world.member_id, channel_id=world.channel_id,
                            attachments={"audio": ("silence.flac", flac)})  # fmt: skip
    assert refused.content.startswith("That audio is 4 h 00 min long; /mux takes at most 10 min 00 s")
    assert not list((bot.bot.config.data_dir / "uploads").iterdir())
