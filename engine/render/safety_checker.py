"""The safety checker: diffusers' ``StableDiffusionSafetyChecker`` (what the SD pipelines use), as a score.

The checker compares a picture's CLIP embedding with 17 concept embeddings (and 3 "special care"
ones), each with a threshold of its own, and answers yes or no (``has_nsfw_concepts``). animabot
needs a number to hold to ``[safety] threshold``, so :func:`unsafe_scores` computes the checker's
own concept scores and maps the largest one, the *margin*, to 0..1:

    score = clip(0.5 + margin - 0.0005, 0, 1)

The margin is ``max_c round(cos(picture, concept_c) - threshold_c + adjustment, 3)``, the
adjustment being 0.01 once a special-care concept scored above 0, exactly as diffusers computes it;
diffusers flags a picture when the margin is above 0. The margin is a multiple of 0.001, so the half
step makes ``score >= 0.5`` the same verdict, and ``[safety] threshold = 0.5`` (the default) flags
exactly what diffusers flags; a lower threshold flags more (0 flags every picture), a higher one
fewer. ``tests/render/test_safety_checker.py`` holds the two verdicts side by side.

Loaded with ``from_pretrained`` from the folder ``engine.render.weights.models.folder_of`` gives
(``test-tiny``: the built-in random checker, ``engine.render.weights.tiny_safety``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker, cosine_distance
from transformers import CLIPImageProcessor

from engine.render.weights.models import folder_of, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

HALF_STEP = 0.0005  # half of the 0.001 the concept scores are rounded to


class SafetyChecker:
    """``model_id`` (a hub id, a local folder or ``test-tiny``) loaded on ``device`` in ``dtype``."""

    def __init__(self, model_id: str, *, device: str = "auto", dtype: str = "auto") -> None:
        folder, use_safetensors = folder_of(model_id, "safety", local_files_only=False)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = StableDiffusionSafetyChecker.from_pretrained(folder, use_safetensors=use_safetensors)
        self.model.to(self.device, self.dtype).eval()
        self.processor = CLIPImageProcessor.from_pretrained(folder)
        log.info("safety checker %s loaded on %s", model_id, self.device)

    def clip_input(self, pictures: list[np.ndarray]) -> torch.Tensor:
        """``pictures`` (HxWx3 uint8 RGB) as the checker's input batch."""
        pixels = self.processor(images=list(pictures), return_tensors="pt").pixel_values
        return pixels.to(self.device, self.dtype)

    def scores(self, pictures: list[np.ndarray]) -> list[float]:
        """The unsafe score (0..1) of each picture, checked as one batch."""
        if not pictures:
            return []
        return unsafe_scores(self.model, self.clip_input(pictures))

    def flagged(self, pictures: list[np.ndarray], threshold: float) -> list[bool]:
        """Whether each picture's score is at least ``threshold``."""
        return [score >= threshold for score in self.scores(pictures)]


@torch.no_grad()
def unsafe_scores(model: StableDiffusionSafetyChecker, clip_input: torch.Tensor) -> list[float]:
    """The score of each picture of ``clip_input`` (see the module's docstring)."""
    # Copied from diffusers.pipelines.stable_diffusion.safety_checker.StableDiffusionSafetyChecker.forward:
    # the same concept scores, each picture's largest kept as a number instead of a yes/no, and no
    # picture blacked out.
    pooled_output = model.vision_model(clip_input)[1]
    image_embeds = model.visual_projection(pooled_output)
    special_cos_dist = cosine_distance(image_embeds, model.special_care_embeds).cpu().float().numpy()
    cos_dist = cosine_distance(image_embeds, model.concept_embeds).cpu().float().numpy()
    scores = []
    for i in range(image_embeds.shape[0]):
        adjustment = 0.0
        for concept_idx in range(len(special_cos_dist[0])):
            concept_cos = special_cos_dist[i][concept_idx]
            concept_threshold = model.special_care_embeds_weights[concept_idx].item()
            if round(concept_cos - concept_threshold + adjustment, 3) > 0:
                adjustment = 0.01
        margin = max(
            round(cos_dist[i][concept_idx] - model.concept_embeds_weights[concept_idx].item() + adjustment, 3)
            for concept_idx in range(len(cos_dist[0]))
        )
        scores.append(float(min(1.0, max(0.0, 0.5 + float(margin) - HALF_STEP))))
    return scores
