"""Motion jobs through the worker: with ``[engine] motion_adapter`` they render in windows and deliver
their videos beside frame-by-frame jobs; without one they fail with the reason."""

import dataclasses

from support.serving import served

from engine.config import Config, EngineConfig
from engine.request.params import RenderParams
from engine.store.jobs import JobStatus
from engine.video.read import probe, read_recipe

MOTION = RenderParams(prompt="a cat", frames=3, fps=8, steps=2, width=64, height=64, seed=1, coherence="motion")
PLAIN = RenderParams(prompt="a dog", frames=2, steps=2, width=64, height=64, seed=3)


async def _served(tmp_path, adapter: str, jobs: list[RenderParams]):
    engine = EngineConfig(model="test-tiny", device="cpu", motion_adapter=adapter)
    return await served(Config(data_dir=tmp_path / "data", engine=engine), jobs)


async def test_motion_jobs_render_beside_plain_ones_and_say_so_in_the_recipe(tmp_path):
    assert MOTION.batch_key() != dataclasses.replace(MOTION, coherence="off").batch_key()  # never in one batch
    assert MOTION.batch_key() == MOTION.with_seed(2).batch_key()
    (motion, other, plain), seen = await _served(tmp_path, "test-tiny", [MOTION, MOTION.with_seed(2), PLAIN])
    assert all(job.status is JobStatus.DONE for job in (motion, other, plain))
    for job in (motion, other):
        assert probe(job.result_path).frames == 3
        recipe = read_recipe(job.result_path)
        assert recipe["params"]["coherence"] == "motion" and recipe["motion_adapter_hub"] is None  # test-tiny
    frames = [e.frames_done for e in seen if e.job_id == motion.id and e.status is JobStatus.RUNNING]
    assert frames[-1] == 3


async def test_a_motion_job_without_an_adapter_fails_with_the_reason(tmp_path):
    (refused, served), _ = await _served(tmp_path, "", [MOTION, PLAIN])
    assert refused.status is JobStatus.FAILED
    assert refused.error == "Coherence motion needs a motion adapter, which this host does not have; pick cross-frame."
    assert served.status is JobStatus.DONE
