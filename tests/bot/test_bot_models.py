"""/animate model: lora:, their autocomplete, /models and /limits set models: loras:, through the loopback Discord."""

from __future__ import annotations

import pytest
from support import tiny_checkpoints
from support.botharness import command, job_id_in, make_config, start

MODELS = {f"style{n:02d}": {"model": "test-tiny-2"} for n in range(30)} | {"second": {"model": "test-tiny-2"}}


@pytest.fixture
async def running(tmp_path, fake, world):
    lora = tiny_checkpoints.save_diffusers_lora(tmp_path / "ink.safetensors")
    loras = {"ink": {"file": str(lora), "weight": 0.7, "trigger": "ink drawing"}, "pixel": {"file": str(lora)}}
    running = await start(make_config(tmp_path / "data", fake, world, models=MODELS, loras=loras))
    try:
        yield running
    finally:
        await running.stop()
        assert fake.errors == []


async def test_model_autocomplete_offers_at_most_25_names_and_typing_filters_them(fake, world, running):
    everything = await fake.autocomplete("animate", "model", user_id=world.member_id, channel_id=world.channel_id)
    assert len(everything) == 25 and everything[0] == {"name": "default", "value": "default"}
    typed = await fake.autocomplete(
        "animate", "model", {"model": "STYLE2"}, user_id=world.member_id, channel_id=world.channel_id
    )
    assert [c["value"] for c in typed] == [f"style2{n}" for n in range(10)]
    seconds = await fake.autocomplete(
        "animate", "model", {"model": "sec"}, user_id=world.member_id, channel_id=world.channel_id
    )
    assert seconds == [{"name": "second", "value": "second"}]


async def test_lora_autocomplete_completes_the_last_of_a_comma_separated_list(fake, world, running):
    typed = await fake.autocomplete(
        "animate", "lora", {"lora": "ink:0.5, p"}, user_id=world.member_id, channel_id=world.channel_id
    )
    assert typed == [{"name": "ink:0.5, pixel", "value": "ink:0.5, pixel"}]


async def test_animate_with_a_model_and_a_lora_queues_them_and_a_reroll_keeps_them(fake, world, running):
    options = {"prompt": "a cat", "model": "second", "lora": "ink, pixel:0.25"}
    answer = await command(fake, "animate", options, user_id=world.member_id, channel_id=world.channel_id)
    job = await running.bot.store.get(job_id_in(answer.content))
    assert (job.params.model, job.params.loras) == ("second", (("ink", 0.7), ("pixel", 0.25)))
    again = await running.bot.actions.reroll(
        job, user_id=world.member_id, guild_id=world.guild_id, channel_id=world.channel_id
    )
    assert (again.params.model, again.params.loras) == ("second", (("ink", 0.7), ("pixel", 0.25)))


async def test_an_unknown_model_is_one_sentence_naming_what_exists(fake, world, running):
    options = {"prompt": "a cat", "model": "nosuch", "lora": "ink"}
    answer = await command(fake, "animate", options, user_id=world.member_id, channel_id=world.channel_id)
    assert answer.content.startswith("There is no model 'nosuch'; choose one of: default, style00, ")
    answer = await command(fake, "animate", {"prompt": "a cat", "lora": "inq"}, user_id=world.member_id,
                           channel_id=world.channel_id)  # fmt: skip
    assert answer.content == "There is no LoRA 'inq'; choose one of: ink, pixel."


async def test_admins_restrict_the_models_and_loras_of_their_server(fake, world, running):
    where = {"channel_id": world.channel_id}
    changes = {"models": "default, second", "loras": "pixel"}
    updated = await command(fake, "limits set", changes, user_id=world.admin_id, **where)
    assert "Models: **default, second**" in updated.content and "LoRAs: **pixel**" in updated.content
    listing = await command(fake, "models", user_id=world.member_id, **where)
    assert "`second`" in listing.content and "style00" not in listing.content and "`ink`" not in listing.content
    offered = await fake.autocomplete("animate", "model", user_id=world.member_id, **where)
    assert [c["value"] for c in offered] == ["default", "second"]
    refused = await command(fake, "animate", {"prompt": "a cat", "model": "style01"}, user_id=world.member_id, **where)
    assert refused.content == "This server does not allow the model 'style01'; choose one of: default, second."
    refused = await command(fake, "animate", {"prompt": "a cat", "lora": "ink"}, user_id=world.member_id, **where)
    assert refused.content == "This server does not allow the LoRA 'ink'; allowed: pixel."
    back = await command(fake, "limits set", {"models": "all"}, user_id=world.admin_id, **where)
    assert "Models: **all configured**" in back.content


async def test_limits_set_refuses_a_name_that_is_not_configured(fake, world, running):
    answer = await command(fake, "limits set", {"loras": "nosuch"}, user_id=world.admin_id, channel_id=world.channel_id)
    assert answer.content == "There is no LoRA 'nosuch'; choose one of: ink, pixel."
