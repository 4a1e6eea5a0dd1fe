"""``bench/e2e.py``, the end-to-end benchmark of issue 14, runs as its one command and reports what it
says it does: its smoke form (test-tiny, 64x64, 2 frames, 2 steps on the CPU) once for the module,
then one behaviour per test. Behaviour only: the timings are not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench-e2e") / "e2e.json"
    command = [sys.executable, "bench/e2e.py", "--shape", "tiny", "--device", "cpu", "--size", "64",
               "--frames", "2", "--steps", "2", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def jobs_of(report: dict) -> list[dict]:
    rows = report["rows"]
    return [report["setup"]["warm_up"]["warm_up_clip"], *(job for row in rows.values() for job in row["jobs"])]


def test_both_rows_have_their_waits_one_member_three_times_and_eight_members_once(report):
    e1, e2 = report["rows"]["E1_one_member_default_clip"], report["rows"]["E2_8_members_at_once"]
    assert len(e1["waits_s"]) == len(e1["jobs"]) == 3
    assert len(e2["waits_s"]) == len(e2["jobs"]) == 8
    assert len({job["job_id"] for job in e1["jobs"] + e2["jobs"]}) == 11
    assert (e1["target_s"], e2["target_p95_s"]) == (3.0, 10.0)


def test_every_job_is_done_with_the_asked_frames_steps_and_size(report):
    assert {(job["status"], job["frames"], job["steps"], job["size"]) for job in jobs_of(report)} == {
        ("done", 2, 2, "64x64")
    }


def test_every_wait_is_positive_and_the_p95_is_not_below_the_p50(report):
    assert all(job["wait_s"] > 0 for job in jobs_of(report))
    e2 = report["rows"]["E2_8_members_at_once"]
    assert e2["p95_s"] >= e2["p50_s"] > 0
    assert e2["max_s"] == max(e2["waits_s"])


def test_each_breakdown_adds_up_to_its_wait(report):
    parts = ("request_to_queued_s", "queued_to_started_s", "started_to_finished_s", "finished_to_posted_s")
    for job in jobs_of(report):
        assert sum(job[part] for part in parts) == pytest.approx(job["wait_s"], abs=0.01), job
        assert 0 < job["acknowledged_s"] <= job["queued_reply_s"] <= job["wait_s"]


def test_the_setup_names_the_smoke_run_and_the_loopback_discord_saw_no_errors(report):
    setup = report["setup"]
    assert (setup["shape"], setup["device"], setup["compiled_step"], setup["model"]) == (
        "tiny",
        "cpu",
        False,
        "test-tiny",
    )
    assert report["loopback_discord"] == {"errors": [], "openapi_violations": []}
