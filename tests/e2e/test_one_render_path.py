"""One render path (issue 19, rule 3): the worker and ``animabot render`` draw, encode and describe a job alike.

A job with a second model, a LoRA and the depth control is rendered by the worker runtime and by ``animabot render`` with the same flags; both files carry the
same recipe (but for the job id) and the same frames. Info's command line, run, gives the same
parameters back.
"""

import asyncio
import shlex

import numpy as np
import pytest
from support import tiny_checkpoints

from bot.cli.main import main
from engine.config import load_config
from engine.request.recipe import build_recipe, recipe_params, render_command
from engine.runtime.worker import Runtime
from engine.store.jobs import JobKind, JobStatus
from engine.store.store import JobStore
from engine.video.read import decode_frames, read_recipe

ASKED = {"frames": 3, "steps": 2, "width": 64, "height": 64, "seed": 4, "control": "depth"}


@pytest.fixture
def host(tmp_path):
    """A config file naming a second model and a LoRA with trigger words, and the config it reads as."""
    lora = tiny_checkpoints.save_diffusers_lora(tmp_path / "ink.safetensors")
    path = tmp_path / "config.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[engine]\nmodel = "test-tiny"\ndevice = "cpu"\n'
        '[models.second]\nmodel = "test-tiny-2"\n'
        f'[loras.ink]\nfile = "{lora}"\ntrigger = "ink drawing"\n'
    )
    return path, load_config(path)


async def _worker_render(config, params) -> str:
    """The worker's file for ``params``. Alone in its batch: H.264 turns the few one-level differences
    batching makes (tests/render/test_chain.py bounds them) into larger ones, past that bound."""
    store = await JobStore.open(config.db_path)
    runtime = Runtime(config, store)
    try:
        job = await store.enqueue(JobKind.ANIMATE, params, user_id=1)
        await runtime.start()
        await asyncio.wait_for(runtime.drain(), 120)
        done = await store.get(job.id)
    finally:
        await runtime.stop()
        await store.close()
    assert done.status is JobStatus.DONE, done.error
    return done.result_path


def _cli(config_path, *args) -> None:
    assert main(["--config", str(config_path), "render", *map(str, args)]) == 0


def _alike(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    """Frames equal within tests/render/test_chain.py's batched-vs-alone tolerance."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        diff = np.abs(x.astype(int) - y.astype(int))
        assert diff.max() <= 8 and diff.mean() < 0.05 and (diff > 0).mean() < 0.03


def test_the_worker_and_the_command_line_render_a_job_alike(host, tmp_path):
    config_path, config = host
    params = config.defaults("a cat", model="second", loras=(("ink", 0.7),), **ASKED).validate()
    by_worker = asyncio.run(_worker_render(config, params))
    by_cli = tmp_path / "cli.mp4"
    _cli(
        config_path, "a cat", "--model", "second", "--lora", "ink:0.7", "--control", "depth",
        "--frames", 3, "--steps", 2, "--size", "64x64", "--seed", 4, "-o", by_cli,
    )  # fmt: skip

    worker_recipe, cli_recipe = read_recipe(by_worker), read_recipe(by_cli)
    assert worker_recipe["job"] is not None and cli_recipe["job"] is None
    assert {**worker_recipe, "job": None} == cli_recipe
    # What was used, as the host named it: the model by its catalog name (its folder is test-tiny-2's,
    # no hub id), the LoRA with its weight, the prompt as typed (trigger words are added at render).
    assert recipe_params(cli_recipe) == params
    assert (cli_recipe["recipe"], cli_recipe["model_hub"]) == (2, None)
    assert cli_recipe["controlnet_hub"] == config.engine.depth_controlnet
    _alike(decode_frames(by_worker), decode_frames(by_cli))


def test_infos_command_line_renders_the_same_params_again(host, tmp_path):
    config_path, config = host
    params = config.defaults(
        "-a kite over a hill", negative_prompt="", model="second", loras=(("ink", -0.25),), guidance=6.25,
        canny_low=40, canny_high=120, color_coherence=False, scheduler="euler", loop="pingpong", smooth=2,
        format="gif", motion="zoom-in", motion_amount=0.1, **{**ASKED, "control": "canny", "frames": 2},
    ).validate()  # fmt: skip
    command = render_command(build_recipe(params, model="test-tiny-2", controlnet=None, job_id=9))
    words = shlex.split(command)
    assert words[:2] == ["animabot", "render"]
    out = tmp_path / "again.gif"
    assert main(["--config", str(config_path), "render", "-o", str(out), *words[2:]]) == 0
    assert recipe_params(read_recipe(out)) == params
