"""``animabot`` in a subprocess of the tests, and stopping such processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def spawn_animabot(config: Path, args: list[str], log: Path) -> subprocess.Popen:
    """``animabot --config CONFIG ARGS…`` from this checkout, its stderr appended to ``log`` (a process
    started again after a kill adds to the same log)."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "bot.cli.main", "--config", str(config), *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env)


def stop(processes) -> None:
    """SIGTERM to each process still running, then wait up to 30 s each (killed past that)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
