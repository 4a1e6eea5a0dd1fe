"""The render layer's import rules, checked in a fresh interpreter (``sys.modules``)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import engine.render, engine.render.params
assert "torch" not in sys.modules, "engine.render.params loads torch"
import engine.render.accel, engine.render.chain, engine.render.clip, engine.render.frames
import engine.render.hub, engine.render.models, engine.render.sampler, engine.render.tiny
import engine.render.steps.color, engine.render.steps.control, engine.render.steps.motion
upper = ("bot", "discord", "engine.queue")
loaded = sorted(name for name in sys.modules if any(name == top or name.startswith(top + ".") for top in upper))
assert not loaded, f"engine.render imports {loaded}"
"""


def test_params_need_no_torch_and_render_imports_neither_queue_nor_bot():
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    command = [sys.executable, "-c", CHECK]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
