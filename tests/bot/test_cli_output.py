"""What ``animabot render`` prints: in a pipe, plain lines and nothing timestamped; in a terminal,
the bars; the summary counts the file's frames; ``--from`` a clip that began from a picture."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

import numpy as np
from support.clips import moving_square_frames
from support.hubserver import REPO_ROOT
from test_cli import animabot

from engine.request.params import RenderParams
from engine.request.recipe import build_recipe
from engine.video.formats import write_clip
from engine.video.read import decode_frames, probe

TINY = ("--model", "test-tiny", "--frames", 3, "--fps", 8, "--steps", 2, "--size", "64x64")


def test_a_render_into_a_pipe_prints_the_header_plain_progress_and_the_files_frames(tmp_path):
    out = tmp_path / "harbour.mp4"
    prompt = "a quiet harbour | oil painting"  # a | without frame numbers: one prompt, not keyframes
    done = animabot("render", prompt, *TINY, "--seed", 9, "--loop", "pingpong", "--smooth", 2, "-o", out)
    assert done.returncode == 0, done.stderr
    for output in (done.stdout, done.stderr):
        assert "\x1b" not in output and "\r" not in output  # no bar redrawn over itself
    header, *progress = done.stderr.splitlines()
    assert header.startswith(f'rendering "{prompt}": seed 9, 3 frames @ 8 fps, 64x64')
    words = re.findall(r"[a-z]+", header.split(", loop")[0].lower())  # "fps" comes again in "smooth ×2 (16 fps)"
    assert len(words) == len(set(words)), f"a word repeats in {header!r}"
    assert progress == ["frames: 1/3", "frames: 2/3", "frames: 3/3"]  # no log line, nothing timestamped
    assert probe(out).frames == 7  # pingpong 3 → 4, smoothed ×2 → 7
    assert done.stdout.count("\n") == 1 and done.stdout.startswith(f"{out}  seed 9  7 frames (3 rendered in ")


def test_a_render_in_a_terminal_keeps_its_two_bars(tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm draws 0 columns in 0
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "bot.cli.main", "render", "a cat", *map(str, TINY), "-o", str(tmp_path / "c.mp4")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=follower, env=env, cwd=REPO_ROOT) as process:
        os.close(follower)
        chunks = []
        reader = threading.Thread(target=_read_until_closed, args=(leader, chunks))
        reader.start()
        stdout, _ = process.communicate(timeout=300)
        reader.join(timeout=30)
    os.close(leader)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert process.returncode == 0, terminal
    assert "frames: 100%" in terminal and "steps:" in terminal and "\r" in terminal  # tqdm, redrawn in place
    assert "frames: 1/3" not in terminal and stdout.count(b"\n") == 1


def _read_until_closed(fd: int, chunks: list) -> None:
    """Read a pty's leader side until the follower side is closed (Linux answers EIO then)."""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        chunks.append(data)


def test_render_from_a_clip_that_began_from_a_picture_starts_from_its_frame_0(tmp_path):
    hostile = "a kite\x9b31m\u202e"  # a recipe's prompt with a C1 escape and a right-to-left override
    params = RenderParams(prompt=hostile, seed=3, model="test-tiny", frames=2, steps=1, width=64, height=64,
                          image_key="a" * 64)  # fmt: skip
    video = write_clip(moving_square_frames(2), tmp_path / "kite.mp4", 8,
                       recipe=build_recipe(params, model=None, controlnet=None))  # fmt: skip
    out = tmp_path / "again.mp4"
    done = animabot("render", "--from", video, "-o", out)
    assert done.returncode == 0, done.stderr
    assert 'rendering "a kite31m": seed 3, 2 frames' in done.stderr and "from a picture" in done.stderr
    assert not set(done.stdout + done.stderr) & {"\x9b", "\u202e"}
    first, again = decode_frames(video)[0].astype(int), decode_frames(out)[0].astype(int)
    assert np.abs(first - again).mean() < 6  # frame 0 kept as it was, through H.264 twice
