"""Control maps that need a model: a depth map, and a pose skeleton drawn in OpenPose's colours.

- ``DepthAnnotator``: any transformers depth-estimation model (Depth Anything, DPT/MiDaS). Its
  relative inverse depth is scaled to 0–255, near bright, as the SD1.5 depth ControlNet was trained on.
- ``PoseAnnotator``: transformers' ViTPose (COCO's 17 keypoints), drawn as OpenPose's 18-point body
  (the neck is the shoulders' midpoint) in its limb colours, as the SD1.5 OpenPose ControlNet expects.
  ``controlnet_aux``'s OpenPose detector was not used: it needs torchvision and timm, and PyPI's
  torchvision does not import beside the CPU torch wheel these machines install. ViTPose is a
  top-down model; the whole frame is taken as the one person's box (a clip shows one subject).

Each annotator is a callable ``frame (H×W×3 uint8) -> map (H×W×3 uint8)``, run without gradients on
the annotator's device.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

# OpenPose's body: for each of its 18 points, the COCO keypoint it is (None: the neck).
OPENPOSE_FROM_COCO = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# OpenPose's limbs (pairs of its points) and colours, as controlnet_aux draws them.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
KEYPOINT_THRESHOLD = 0.3  # ViTPose scores below this are points it did not see


class _Annotator:
    """A transformers model and its processor on ``device``, frozen for inference."""

    def __init__(self, model, processor, device: torch.device):
        self.model = model.to(device).eval().requires_grad_(False)
        self.processor = processor
        self.device = device


class DepthAnnotator(_Annotator):
    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        inputs = self.processor(images=frame, return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        depth = self.model(**inputs).predicted_depth.float()  # (1, h, w), larger is nearer
        depth = torch.nn.functional.interpolate(depth[:, None], size=frame.shape[:2], mode="bicubic")[0, 0]
        return depth_to_map(depth.cpu().numpy())


def depth_to_map(depth: np.ndarray) -> np.ndarray:
    """Relative depth (larger nearer) → H×W×3 uint8, scaled to the frame's own range (flat: black)."""
    low, high = float(depth.min()), float(depth.max())
    scaled = np.zeros_like(depth) if high <= low else (depth - low) / (high - low)
    grey = np.round(scaled * 255.0).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


class PoseAnnotator(_Annotator):
    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        boxes = [[[0.0, 0.0, float(width), float(height)]]]  # x, y, w, h: the whole frame
        inputs = self.processor(images=[frame], boxes=boxes, return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        outputs = self.model(**inputs)
        outputs.heatmaps = outputs.heatmaps.float().cpu()
        (person,) = self.processor.post_process_pose_estimation(outputs, boxes=boxes)[0]
        return draw_openpose(person["keypoints"].numpy(), person["scores"].numpy(), height, width)


def draw_openpose(keypoints: np.ndarray, scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """COCO keypoints (17×2 x, y in pixels) and scores → OpenPose's body skeleton on black."""
    points: list[tuple[float, float] | None] = []
    for coco in OPENPOSE_FROM_COCO:
        if coco is None:  # the neck: between the shoulders, when both were seen
            seen = scores[5] >= KEYPOINT_THRESHOLD and scores[6] >= KEYPOINT_THRESHOLD
            points.append(tuple((keypoints[5] + keypoints[6]) / 2) if seen else None)
        else:
            points.append(tuple(keypoints[coco]) if scores[coco] >= KEYPOINT_THRESHOLD else None)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    stick = max(1, round(4 * max(height, width) / 512))
    for (a, b), colour in zip(LIMBS, COLOURS):
        if points[a] is None or points[b] is None:
            continue
        (xa, ya), (xb, yb) = points[a], points[b]
        length = float(np.hypot(xa - xb, ya - yb))
        angle = float(np.degrees(np.arctan2(ya - yb, xa - xb)))
        centre = (int((xa + xb) / 2), int((ya + yb) / 2))
        polygon = cv2.ellipse2Poly(centre, (int(length / 2), stick), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, [int(c * 0.6) for c in colour])
    for point, colour in zip(points, COLOURS):
        if point is not None:
            cv2.circle(canvas, (int(point[0]), int(point[1])), stick, colour, thickness=-1)
    return canvas
