"""The safety checker's score: at the default threshold, diffusers' own verdict; at 0, every picture."""

import numpy as np
import pytest
import torch

from engine.render.safety_checker import SafetyChecker, unsafe_scores


@pytest.fixture(scope="module")
def checker():
    return SafetyChecker("test-tiny", device="cpu")


def pictures(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(count)]


def test_the_tiny_checker_loads_through_from_pretrained_and_scores_a_batch(checker):
    scores = checker.scores(pictures(5))
    assert len(scores) == 5 and all(0.0 <= s < 0.5 for s in scores)  # its thresholds flag nothing at 0.5
    assert checker.scores(pictures(5)) == scores  # the same pictures, the same scores
    assert checker.flagged(pictures(5), 0.5) == [False] * 5
    assert checker.flagged(pictures(5), 0.0) == [True] * 5  # threshold 0 flags every picture


def test_at_threshold_one_half_the_verdict_is_diffusers_own(checker):
    clip_input = checker.clip_input(pictures(16, seed=1))
    model = checker.model
    cos = torch.nn.functional.normalize(model.visual_projection(model.vision_model(clip_input)[1]))
    cos = (cos @ torch.nn.functional.normalize(model.concept_embeds).t()).detach()
    special = (
        torch.nn.functional.normalize(model.visual_projection(model.vision_model(clip_input)[1]))
        @ torch.nn.functional.normalize(model.special_care_embeds).t()
    ).detach()
    original = (model.concept_embeds_weights.clone(), model.special_care_embeds_weights.clone())
    try:
        with torch.no_grad():  # thresholds that flag about half the pictures, some through a special concept
            model.concept_embeds_weights.fill_(cos.max(dim=1).values.median().item())
            model.special_care_embeds_weights.fill_(special.max(dim=1).values.quantile(0.75).item())
        scores = unsafe_scores(model, clip_input)
        _, has_nsfw_concepts = model(clip_input, [np.zeros((4, 4, 3)) for _ in range(16)])
    finally:
        with torch.no_grad():
            model.concept_embeds_weights.copy_(original[0])
            model.special_care_embeds_weights.copy_(original[1])
    assert 0 < sum(has_nsfw_concepts) < 16  # a mix of verdicts to compare
    assert [s >= 0.5 for s in scores] == list(has_nsfw_concepts)
