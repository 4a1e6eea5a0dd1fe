"""``engine.runtime.render_job``: one job to its file, and the recipe written from what was used."""

import dataclasses
import json

from engine.config import EngineConfig
from engine.render.weights.model_cache import ModelCache
from engine.request.catalog import build_catalog
from engine.request.params import RenderParams
from engine.runtime.render_job import recipe_for, render_job
from engine.video.read import probe, read_recipe

TINY = EngineConfig(model="test-tiny", device="cpu")


def test_render_job_writes_the_clip_with_its_recipe_and_resumes_from_its_saved_frames(tmp_path):
    catalog = build_catalog("test-tiny", {}, {})
    params = RenderParams(prompt="a cat", frames=4, fps=8, steps=2, width=64, height=64, seed=2)
    work = tmp_path / "frames"
    result = render_job(ModelCache(catalog, TINY), catalog, TINY, params, tmp_path / "a.mp4", work_dir=work, job_id=3)
    info = probe(result.path)
    assert (info.frames, info.fps, info.video_codec, info.pix_fmt) == (4, 8, "h264", "yuv420p")
    assert (info.width, info.height, result.seed, result.frames) == (64, 64, 2, 4)
    assert read_recipe(result.path) == json.loads(json.dumps(recipe_for(catalog, TINY, params, job_id=3)))
    assert len(list(work.glob("*.png"))) == 4
    # A rerun finds every frame on disk and renders none.
    steps = []
    render_job(ModelCache(catalog, TINY), catalog, TINY, params, tmp_path / "b.mp4", work_dir=work,
               on_step=lambda step, total: steps.append(step))  # fmt: skip
    assert steps == [] and probe(tmp_path / "b.mp4").frames == 4


def test_the_recipe_names_a_model_by_its_catalog_name_and_hub_id_never_by_a_hosts_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights" / "sd").mkdir(parents=True)  # a relative folder reads like owner/name
    catalog = build_catalog(
        "org/sd15",
        {
            "hubbed": {"model": "org/other", "controlnet": "org/other-canny"},
            "folder": {"model": str(tmp_path / "weights" / "sd")},
            "relative": {"model": "weights/sd"},
            "single": {"model": str(tmp_path / "mine.safetensors")},
        },
        {},
    )
    engine = EngineConfig(model="org/sd15", controlnet=str(tmp_path / "weights"), depth_controlnet="org/depth")
    clip = RenderParams(prompt="a cat", seed=1)

    def named(model, control="canny"):
        recipe = recipe_for(catalog, engine, dataclasses.replace(clip, model=model, control=control))
        assert str(tmp_path) not in json.dumps(recipe)
        return recipe["params"]["model"], recipe["model_hub"], recipe["controlnet_hub"]

    assert named("default") == ("default", "org/sd15", None)  # the [engine] ControlNet is a folder here
    assert named("hubbed") == ("hubbed", "org/other", "org/other-canny")
    assert named("folder", "depth") == ("folder", None, "org/depth")
    assert named("relative") == ("relative", None, None)
    assert named("single") == ("single", None, None)
    assert named("gone") == ("gone", None, None)  # Info of an old job: the name alone
