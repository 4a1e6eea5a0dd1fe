"""test-tiny's controls: a ControlNet per control type whose control map matters, and tiny annotators.

An untrained ControlNet (``ControlNetModel.from_unet``) has zero-initialised output convolutions
(and a zero last layer in its hint encoder), so it adds nothing and no test could show a control map
steering a frame. ``wake_zero_convs`` gives those layers small random weights instead; each control
type's ControlNet gets its own seed, so depth and pose renders differ from canny ones.

The annotators are what turn a frame into the depth or pose ControlNet's input: tiny random-weight
versions of the transformers models the real ones are (DPT depth estimation, ViTPose), saved with
their image processors so they load through the same ``from_pretrained`` calls. None of this
imports ``engine.render.weights.tiny``, which uses it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ControlNetModel
from transformers import (
    DPTConfig,
    DPTForDepthEstimation,
    DPTImageProcessor,
    VitPoseBackboneConfig,
    VitPoseConfig,
    VitPoseForPoseEstimation,
    VitPoseImageProcessor,
)

# Standard deviation of the woken output weights: enough for the residuals to move a tiny frame,
# small enough that they stay of the UNet features' own scale.
ZERO_CONV_STD = 0.05
# The hint encoder (control map → features) as initialised by diffusers barely sees the map: its
# answer to a moved edge is ~1% of its constant part. Weights of this gain (x 1/sqrt(fan-in)), and a
# stronger last layer, make a moved edge change the residuals by ~40% instead.
HINT_GAIN = 1.5
HINT_OUT_STD = 0.2
# Each control's ControlNet seed is the model seed plus this offset.
CONTROL_SEED_OFFSET = {"canny": 101, "depth": 202, "pose": 303}
COCO_KEYPOINTS = 17  # ViTPose's COCO keypoints, which the pose annotator draws as an OpenPose skeleton

_DEPTH = {
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
    "backbone_out_indices": [0, 1, 2, 3],
    "neck_hidden_sizes": [8, 16, 16, 16],
    "fusion_hidden_size": 16,
    "reassemble_factors": [4, 2, 1, 0.5],
    "head_in_index": -1,
}
_POSE_BACKBONE = {
    "image_size": [64, 48],
    "patch_size": [16, 16],
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "out_indices": [2],
}
LAYOUT = [ZERO_CONV_STD, HINT_GAIN, HINT_OUT_STD, CONTROL_SEED_OFFSET, _DEPTH, _POSE_BACKBONE, COCO_KEYPOINTS]


def wake_zero_convs(controlnet: ControlNetModel, seed: int, std: float = ZERO_CONV_STD) -> ControlNetModel:
    """Give the ControlNet's zero-initialised layers small random weights, and its hint encoder weights
    that see the control map (in place; returned)."""
    generator = torch.Generator("cpu").manual_seed(seed)
    hint = controlnet.controlnet_cond_embedding
    with torch.no_grad():
        for layer in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            for param in (layer.weight, layer.bias):
                param.copy_(torch.randn(param.shape, generator=generator) * std)
        for layer in [hint.conv_in, *hint.blocks]:
            fan_in = layer.weight[0].numel()
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * HINT_GAIN / fan_in**0.5)
        for param in (hint.conv_out.weight, hint.conv_out.bias):
            param.copy_(torch.randn(param.shape, generator=generator) * HINT_OUT_STD)
    return controlnet


def build_controlnet(unet, control: str, hint_channels: tuple[int, ...], seed: int = 0) -> ControlNetModel:
    """The ``control`` type's ControlNet: made from ``unet``, with its own woken output weights."""
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=hint_channels)
    return wake_zero_convs(controlnet, seed + CONTROL_SEED_OFFSET[control]).eval()


def build_depth_annotator(seed: int = 0) -> tuple[DPTForDepthEstimation, DPTImageProcessor]:
    torch.manual_seed(seed)
    model = DPTForDepthEstimation(DPTConfig(**_DEPTH)).eval()
    processor = DPTImageProcessor(size={"height": _DEPTH["image_size"], "width": _DEPTH["image_size"]})
    return model, processor


def build_pose_annotator(seed: int = 0) -> tuple[VitPoseForPoseEstimation, VitPoseImageProcessor]:
    torch.manual_seed(seed)
    config = VitPoseConfig(
        backbone_config=VitPoseBackboneConfig(**_POSE_BACKBONE), use_simple_decoder=True, num_labels=COCO_KEYPOINTS
    )
    model = VitPoseForPoseEstimation(config).eval()
    height, width = _POSE_BACKBONE["image_size"]
    return model, VitPoseImageProcessor(size={"height": height, "width": width})


def save_tiny_controls(directory: Path, unet, hint_channels: tuple[int, ...], seed: int = 0) -> None:
    """Write ``controlnet-depth``, ``controlnet-pose``, ``annotator-depth`` and ``annotator-pose`` repos."""
    directory = Path(directory)
    for control in ("depth", "pose"):
        controlnet = build_controlnet(unet, control, hint_channels, seed)
        controlnet.save_pretrained(directory / f"controlnet-{control}", safe_serialization=True)
    for control, build in (("depth", build_depth_annotator), ("pose", build_pose_annotator)):
        model, processor = build(seed)
        model.save_pretrained(directory / f"annotator-{control}", safe_serialization=True)
        processor.save_pretrained(directory / f"annotator-{control}")
