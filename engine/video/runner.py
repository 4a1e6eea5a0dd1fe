"""Running ffmpeg: which executable, the one way a command line is compiled and run, failure text.

Every command line in this package is built with ffmpeg-python (``ffmpeg.input(...).output(...)``)
and compiled by :func:`ffmpeg_command`, which adds the global options every run uses; :func:`run_ffmpeg`
runs it under :data:`FFMPEG_TIMEOUT_S`. This module is named for what it does, not ``ffmpeg.py``, so
that ``import ffmpeg`` next to it always means ffmpeg-python.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence

import ffmpeg
import imageio_ffmpeg

log = logging.getLogger(__name__)

# No ffmpeg run here needs more than seconds (clips are at most a few hundred frames, uploads a
# few MiB); the limit only keeps a stuck ffmpeg (a crafted upload) from holding a worker forever.
FFMPEG_TIMEOUT_S = 600

GLOBAL_OPTIONS = ("-hide_banner", "-nostdin", "-nostats")

_STDERR_TAIL_LINES = 8


def ffmpeg_exe() -> str:
    """The ffmpeg to run: ``ffmpeg`` on PATH when there is one, else imageio-ffmpeg's own binary."""
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_path(path: str | os.PathLike) -> str:
    """An absolute path: ffmpeg never reads it as an option (``-x``) or a protocol (``a:b``)."""
    return os.path.abspath(os.fspath(path))


def ffmpeg_command(stream: ffmpeg.nodes.OutputStream, *, overwrite: bool = False) -> list[str]:
    """The command line for an ffmpeg-python output ``stream``: ``ffmpeg ... -hide_banner -nostdin -nostats``.

    ffmpeg-python puts global options after the outputs; ffmpeg reads them anywhere.
    """
    return stream.global_args(*GLOBAL_OPTIONS).compile(cmd=ffmpeg_exe(), overwrite_output=overwrite)


def run_ffmpeg(command: Sequence[str], *, capture_stdout: bool = False) -> subprocess.CompletedProcess:
    """Run a command line from :func:`ffmpeg_command`; stderr is always captured as bytes.

    The return code is not checked: callers decide whether a failure is the user's or ours.
    A run longer than :data:`FFMPEG_TIMEOUT_S` is killed and raises ``RuntimeError``.
    """
    command = list(command)
    log.debug("running %s", subprocess.list2cmdline(command))
    try:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
            timeout=FFMPEG_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:  # subprocess.run has killed and reaped it
        raise RuntimeError(
            f"ffmpeg did not finish within {FFMPEG_TIMEOUT_S} s: {subprocess.list2cmdline(command)}\n"
            f"{stderr_tail(err.stderr or b'')}"
        ) from None


def stderr_tail(stderr: bytes | str, lines: int = _STDERR_TAIL_LINES) -> str:
    """The last few non-empty lines ffmpeg wrote, for error messages and logs."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    kept = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def ffmpeg_failure(what: str, result: subprocess.CompletedProcess) -> RuntimeError:
    """An internal (not the user's) ffmpeg failure, carrying ffmpeg's last words."""
    return RuntimeError(f"ffmpeg failed to {what} (exit code {result.returncode}):\n{stderr_tail(result.stderr)}")
