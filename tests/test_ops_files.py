"""The ops files in ``ops/`` (issue 23) name only metrics the code exports: every query of the Grafana
dashboard and every alert rule's expression names metrics of the registry that ``/metrics`` serves
(the engine's and the bot's), and Prometheus' own checker accepts the rules and the scrape example."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import bot.ops  # noqa: F401 (declares the bot's metrics in the registry)
from engine.ops.metrics import sample_names

OPS = Path(__file__).resolve().parents[1] / "ops"
METRIC = re.compile(r"\banimabot_\w+")


def _dashboard_exprs() -> dict[str, list[str]]:
    panels = json.loads((OPS / "grafana" / "animabot.json").read_text())["panels"]
    return {panel["title"]: [t["expr"] for t in panel["targets"]] for panel in panels if panel["type"] != "row"}


def _alert_exprs() -> dict[str, str]:
    groups = yaml.safe_load((OPS / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_every_dashboard_panel_queries_metrics_that_exist():
    exported = sample_names()
    panels = _dashboard_exprs()
    assert len(panels) >= 10
    missing = {title: sorted(set(METRIC.findall(e)) - exported for e in exprs) for title, exprs in panels.items()}
    assert {title: names for title, names in missing.items() if any(names)} == {}
    queried = {name for exprs in panels.values() for e in exprs for name in METRIC.findall(e)}
    assert all(any(METRIC.search(e) or e.startswith("up{") for e in exprs) for exprs in panels.values())
    for shown in ("animabot_queue_jobs", "animabot_job_wait_seconds_bucket", "animabot_render_seconds_per_frame_bucket",
                  "animabot_worker_heartbeat_age_seconds", "animabot_discord_responses_total"):  # fmt: skip
        assert shown in queried


def test_every_alert_rule_names_metrics_that_exist():
    exported = sample_names()
    rules = _alert_exprs()
    assert {"AnimabotNoWorkerAlive", "AnimabotQueuedJobTooOld", "AnimabotJobsFailing"} <= set(rules)
    assert {alert: sorted(set(METRIC.findall(expr)) - exported) for alert, expr in rules.items()} == dict.fromkeys(
        rules, []
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus package) is not installed")
def test_promtool_accepts_the_rules_and_the_scrape_example():
    for check in (["rules", "alerts.yml"], ["config", "prometheus.yml"]):
        done = subprocess.run(["promtool", "check", *check], cwd=OPS, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
