"""The progress of ``animabot render``: two bars in a terminal, plain lines anywhere else.

In a terminal, a frames bar and a steps bar (tqdm, on stderr), redrawn in place; log lines go
through tqdm's ``logging_redirect_tqdm`` so they never break a bar. When stderr is not a terminal
(a pipe, a file, a CI log) a redrawn bar would be carriage returns and cursor moves in the text,
so each finished frame is one plain line instead (``frames: 3/16``) and the steps are not shown.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TextIO


class RenderProgress(contextlib.ExitStack):
    """``with RenderProgress(frames, steps) as progress:`` then ``progress.on_step`` and
    ``progress.on_frame`` as ``render_job``'s callbacks."""

    def __init__(self, frames: int, steps: int, stream: TextIO | None = None) -> None:
        super().__init__()
        self.frames, self.steps = frames, steps
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.frames_bar = self.steps_bar = None

    def __enter__(self) -> RenderProgress:
        super().__enter__()
        if self.stream.isatty():
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.enter_context(logging_redirect_tqdm())
            self.frames_bar = self.enter_context(
                tqdm(total=self.frames, desc="frames", unit="frame", position=0, file=self.stream)
            )
            self.steps_bar = self.enter_context(
                tqdm(total=self.steps, desc="steps", unit="step", position=1, leave=False, file=self.stream)
            )
        return self

    def on_step(self, step: int, total: int) -> None:
        if self.steps_bar is not None:
            self.steps_bar.total = total
            self.steps_bar.n = step
            self.steps_bar.refresh()

    def on_frame(self, index: int, frame) -> None:
        self.done += 1
        if self.frames_bar is None:
            print(f"frames: {self.done}/{self.frames}", file=self.stream, flush=True)
            return
        self.frames_bar.update(1)
        self.steps_bar.reset()
