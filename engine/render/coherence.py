"""Cross-frame attention (``coherence = "cross-frame"``): each frame also looks at frame 0 and the previous frame.

In the UNet's self-attention layers (``attn1`` of each transformer block, in the blocks that
``[engine] coherence_blocks`` names: the up blocks by default, as Rerender-A-Video does), a frame's
query attends over ``[its own keys, frame 0's keys, the previous frame's keys]`` (values alike) taken
at the same layer and the same scheduler timestep (Text2Video-Zero's and Rerender's cross-frame
attention). Frame 0 fixes identity and style, the previous frame continuity.

- **Whose states**: one job's own, only (:class:`FrameStates`, one per ``FrameChain``). In a batch of
  several jobs each job's rows attend to their own job's states; rows of jobs without cross-frame get
  plain attention. With guidance a job has two rows, unconditional then conditional, and each attends
  to the stored row of its own kind (the guidance halves never mix).
- **Which timestep**: an img2img frame runs the last ``strength`` part of frame 0's timesteps, so the
  states are kept by timestep value, not by step index; only the timesteps later frames run are kept.
  Frame 1's previous frame is frame 0: it attends over ``[own, frame 0]`` (frame 0 once, not twice).
  A step whose timestep frame 0 never ran (a start picture re-drawn at a lower ``image_strength``
  than the clip's ``strength``) attends over what there is.
- **What it costs**: keys and values of three frames (frame 0, the previous one, the one being drawn)
  per kept timestep, in fp16: :func:`state_bytes`. The runtime admits cross-frame jobs within
  ``[engine] coherence_budget_mb`` (``engine.runtime.batcher``). A cross-frame step runs the eager
  UNet (the compiled step is built for plain attention), with :class:`CrossFrameAttnProcessor` put on
  those layers for that call only (:func:`attending`): a batch without cross-frame jobs runs exactly
  what it ran before.
- **A resumed job** (and a start picture kept as frame 0, which is never denoised) has no states:
  ``engine.render.chain.FrameChain`` rebuilds them by re-noising the finished frame's latents to each
  kept timestep (with the job's own noise) and running the UNet once per timestep, recording what the
  layers see. That is the simplest rebuild that needs nothing but the saved frames; the states are
  close to, not equal to, those of the uninterrupted run (which would need the whole chain re-run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

BLOCKS = ("down", "mid", "up")
_PREFIX = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}
STORAGE_DTYPE = torch.float16
SETS = 3  # frame 0's, the previous frame's, the one being drawn

Layers = dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer name → (keys, values), (rows, seq, inner)


def timestep_key(t) -> float:
    """A timestep as the states are keyed: its value (a suffix of frame 0's schedule has the same values)."""
    return round(float(t), 4)


class FrameStates:
    """One job's self-attention keys and values by timestep and layer: frame 0's (the anchor), the
    previous frame's, and those of the frame being denoised, recorded as its steps run.

    ``keep``: the timesteps (:func:`timestep_key`) the job's later frames run; others are not recorded.
    """

    def __init__(self, blocks: Sequence[str], keep: set[float], dtype: torch.dtype = STORAGE_DTYPE):
        self.blocks = tuple(blocks)
        self.keep = keep
        self.dtype = dtype
        self.anchor: dict[float, Layers] | None = None  # None until the first frame is drawn
        self.previous: dict[float, Layers] | None = None  # None while the previous frame is the anchor
        self.current: dict[float, Layers] = {}
        self.recording = False
        self._keys: list[float] = []

    def begin_frame(self, timesteps: torch.Tensor, *, record: bool) -> None:
        """A frame starts denoising at ``timesteps``; ``record``: keep its states for the next frame."""
        self.current = {}
        self.recording = record
        self._keys = [timestep_key(t) for t in timesteps.tolist()]

    def end_frame(self) -> None:
        """The frame is accepted: its states become the anchor (the first frame) or the previous ones."""
        if self.anchor is None:
            self.anchor = self.current
        else:
            self.previous = self.current
        self.current = {}
        self.recording = False

    def key(self, index: int) -> float:
        return self._keys[index]

    def record(self, t: float, layer: str, keys: torch.Tensor, values: torch.Tensor) -> None:
        if self.recording and t in self.keep:
            self.current.setdefault(t, {})[layer] = (keys.to(self.dtype), values.to(self.dtype))

    def sources(self, t: float, layer: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The stored (keys, values) a step at ``t`` attends to besides its own: frame 0's, the previous frame's."""
        found = []
        for frames in (self.anchor, self.previous):
            if frames is not None and layer in frames.get(t, {}):
                found.append(frames[t][layer])
        return found

    @property
    def nbytes(self) -> int:
        sets = (self.anchor or {}, self.previous or {}, self.current)
        return sum(k.nbytes + v.nbytes for frames in sets for layers in frames.values() for k, v in layers.values())


def self_attention_layers(unet, blocks: Sequence[str]) -> dict[str, torch.nn.Module]:
    """The ``attn1`` (self-attention) modules of the UNet's transformer blocks in ``blocks``, by name."""
    prefixes = tuple(_PREFIX[block] for block in blocks)
    return {name: m for name, m in unet.named_modules() if name.endswith(".attn1") and name.startswith(prefixes)}


def _level(name: str, levels: int) -> int:
    """How many times the latents were halved where layer ``name`` runs."""
    if name.startswith("mid_block."):
        return levels - 1
    index = int(name.split(".")[1])
    return index if name.startswith("down_blocks.") else levels - 1 - index


def _halved(side: int, times: int) -> int:
    for _ in range(times):
        side = -(-side // 2)  # a stride-2 convolution with padding 1 rounds up
    return side


def state_bytes(unet, blocks: Sequence[str], *, width: int, height: int, steps: int, strength: float,
                guided: bool, frames: int) -> int:  # fmt: skip
    """The most memory one job's states take (fp16): three frames' keys and values per kept timestep."""
    if frames < 2:
        return 0
    levels = len(unet.config.block_out_channels)
    per_row = 0
    for name, attn in self_attention_layers(unet, blocks).items():
        level = _level(name, levels)
        tokens = _halved(height // 8, level) * _halved(width // 8, level)
        per_row += 2 * tokens * attn.inner_dim  # keys and values
    kept = steps if strength == 0 else max(1, min(int(steps * strength), steps))
    itemsize = torch.tensor([], dtype=STORAGE_DTYPE).element_size()
    return SETS * kept * per_row * (2 if guided else 1) * itemsize


@dataclass(frozen=True)
class Segment:
    """Model rows ``start:stop`` of one step: one cross-frame job's rows at timestep ``t``, or plain rows."""

    start: int
    stop: int
    states: FrameStates | None = None
    t: float | None = None


def segments(tasks) -> list[Segment]:
    """The step's rows, job by job (``engine.render.sampler.FrameTask``s); runs of plain rows merged."""
    found: list[Segment] = []
    row = 0
    for task in tasks:
        states = task.coherence
        if states is None and found and found[-1].states is None:
            found[-1] = Segment(found[-1].start, row + task.rows)
        else:
            found.append(Segment(row, row + task.rows, states, None if states is None else states.key(task.index)))
        row += task.rows
    return found


class CrossFrameAttnProcessor:
    """Self-attention whose keys and values are extended, per job, with that job's stored ones."""

    def __init__(self, layer: str, parts: list[Segment]):
        self.layer = layer
        self.parts = parts

    # Copied from diffusers.models.attention_processor.AttnProcessor2_0.__call__, for the
    # self-attention of a transformer block only (3-D hidden states, no mask, no group or spatial
    # norm: what SD1.5's attn1 is), with each job's keys and values extended before the attention.
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError(f"{self.layer}: cross-frame attention is for plain self-attention layers")
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        out = []
        for part in self.parts:
            rows = slice(part.start, part.stop)
            keys, values = key[rows], value[rows]
            if part.states is not None:
                stored = part.states.sources(part.t, self.layer)
                part.states.record(part.t, self.layer, keys, values)
                keys = torch.cat([keys, *(k.to(keys.dtype) for k, _ in stored)], dim=1)
                values = torch.cat([values, *(v.to(values.dtype) for _, v in stored)], dim=1)
            out.append(attend(attn, query[rows], keys, values))
        hidden = attn.to_out[1](attn.to_out[0](torch.cat(out)))
        if attn.residual_connection:
            hidden = hidden + hidden_states
        return hidden / attn.rescale_output_factor


def attend(attn, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Multi-head attention of (B, n, inner) queries over (B, m, inner) keys and values, (B, n, inner) out."""
    batch, heads = query.shape[0], attn.heads
    head_dim = keys.shape[-1] // heads
    q = query.view(batch, -1, heads, head_dim).transpose(1, 2)
    k = keys.view(batch, -1, heads, head_dim).transpose(1, 2)
    v = values.view(batch, -1, heads, head_dim).transpose(1, 2)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
    return out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)


@contextlib.contextmanager
def attending(unet, tasks) -> Iterator[None]:
    """For one UNet call over ``tasks``' rows: cross-frame attention on the chosen layers, then the
    layers' own processors back (so plain calls, compiled or not, run what they always ran)."""
    blocks = next(task.coherence.blocks for task in tasks if task.coherence is not None)
    parts = segments(tasks)
    layers = self_attention_layers(unet, blocks)
    own = {name: attn.processor for name, attn in layers.items()}
    try:
        for name, attn in layers.items():
            attn.set_processor(CrossFrameAttnProcessor(name, parts))
        yield
    finally:
        for name, attn in layers.items():
            attn.set_processor(own[name])
