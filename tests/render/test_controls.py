"""Control types and starting pictures with test-tiny: the control map steers frames, each control
renders with its own ControlNet and annotator, and a picture is frame 0 (or is re-drawn from it)."""

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from engine.config import EngineConfig
from engine.errors import UserError
from engine.render.chain import render_frames
from engine.render.weights.controls import components_for
from engine.render.weights.models import load_components
from engine.request.params import RenderParams
from engine.request.picture import prepare_picture

ENGINE = EngineConfig(model="test-tiny", device="cpu")
PARAMS = RenderParams(prompt="a red cube", frames=3, steps=2, width=64, height=64, seed=3, strength=0.0)


@pytest.fixture(scope="module")
def base():
    return load_components(ENGINE)


def _render(base, params, **kwargs) -> list[np.ndarray]:
    return list(render_frames(components_for(base, params.control, ENGINE), params, **kwargs))


def _picture(seed=0, size=(96, 64)):
    pixels = np.random.RandomState(seed).randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return prepare_picture(buffer.getvalue(), (64, 64))


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


# -- the control map matters ----------------------------------------------------------------------
def _next_frame(base, params, previous):
    """Frame 1 after ``previous``: with strength 0 the previous frame reaches it only as a control map."""
    frames = list(
        render_frames(
            components_for(base, params.control, ENGINE), dataclasses.replace(params, frames=2), frames=[previous]
        )
    )
    return frames[0]


def _square(left: int) -> np.ndarray:
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    frame[16:48, left : left + 24] = 255
    return frame


def test_a_different_control_map_changes_the_next_frame(base):
    edges_a, edges_b = _square(4), _square(36)  # Canny edges in different places
    params = dataclasses.replace(PARAMS, color_coherence=False)  # else the previous frame sets the colours
    assert _differ(_next_frame(base, params, edges_a), _next_frame(base, params, edges_b)) > 1.0
    # With the control scale at 0 the previous frame has no way in: the frames are the same.
    off = dataclasses.replace(params, control_scale=0.0)
    np.testing.assert_array_equal(_next_frame(base, off, edges_a), _next_frame(base, off, edges_b))


def test_a_different_control_scale_changes_the_frames(base):
    low = _render(base, dataclasses.replace(PARAMS, control_scale=0.0))
    high = _render(base, dataclasses.replace(PARAMS, control_scale=1.2))
    np.testing.assert_array_equal(low[0], high[0])  # frame 0 has no control map
    assert _differ(low[1], high[1]) > 1.0


# -- each control ---------------------------------------------------------------------------------
@pytest.mark.parametrize("control", ["depth", "pose"])
def test_each_control_renders_the_frames_asked_for_and_differs_from_canny(base, control):
    params = dataclasses.replace(PARAMS, width=64, height=96, frames=4, control=control)
    frames = _render(base, params)
    canny = _render(base, dataclasses.replace(params, control="canny"))
    assert [f.shape for f in frames] == [(96, 64, 3)] * 4
    np.testing.assert_array_equal(frames[0], canny[0])  # same seed, same text-to-image frame 0
    assert all(_differ(a, b) > 1.0 for a, b in zip(frames[1:], canny[1:]))
    np.testing.assert_array_equal(frames[1], _render(base, params)[1])  # and deterministic


def test_controls_share_the_unet_and_load_their_own_controlnet_and_annotator(base):
    depth, pose = components_for(base, "depth", ENGINE), components_for(base, "pose", ENGINE)
    assert components_for(base, "canny", ENGINE) is base and components_for(base, "depth", ENGINE) is depth
    assert depth.unet is base.unet and pose.vae is base.vae
    assert len({id(base.controlnet), id(depth.controlnet), id(pose.controlnet)}) == 3
    assert base.annotator is None and depth.annotator is not None and pose.annotator is not None
    frame = _picture(4).pixels
    for annotator in (depth.annotator, pose.annotator):
        out = annotator(frame)
        assert out.shape == frame.shape and out.dtype == np.uint8


def test_a_control_the_host_does_not_offer_is_refused(base):
    engine = dataclasses.replace(ENGINE, pose_controlnet="")
    with pytest.raises(UserError, match="This host does not offer the pose control; choose canny instead."):
        components_for(base, "pose", engine)


# -- starting from a picture -----------------------------------------------------------------------
def test_with_image_strength_0_frame_0_is_the_fitted_picture(base):
    picture = _picture()
    params = dataclasses.replace(PARAMS, image_key=picture.key)
    frames = _render(base, params, picture=picture.pixels)
    assert len(frames) == 3
    np.testing.assert_array_equal(frames[0], picture.pixels)
    assert _differ(frames[1], picture.pixels) > 0  # the clip moves on from it


def test_with_image_strength_above_0_frame_0_is_redrawn_and_follows_the_seed(base):
    picture = _picture()
    params = dataclasses.replace(PARAMS, image_key=picture.key, image_strength=0.6, frames=1)
    first = _render(base, params, picture=picture.pixels)[0]
    assert _differ(first, picture.pixels) > 1.0
    np.testing.assert_array_equal(first, _render(base, params, picture=picture.pixels)[0])
    other_seed = _render(base, dataclasses.replace(params, seed=4), picture=picture.pixels)[0]
    assert _differ(first, other_seed) > 0.5


def test_a_picture_job_resumes_from_its_saved_frames(base):
    picture = _picture()
    params = dataclasses.replace(PARAMS, image_key=picture.key, frames=4)
    whole = _render(base, params, picture=picture.pixels)
    resumed = _render(base, params, picture=picture.pixels, frames=whole[:2])
    assert len(resumed) == 2
    for a, b in zip(resumed, whole[2:]):
        np.testing.assert_array_equal(a, b)


def test_a_picture_job_needs_its_picture_at_the_render_size(base):
    picture = _picture()
    params = dataclasses.replace(PARAMS, image_key=picture.key)
    with pytest.raises(ValueError, match="needs its picture"):
        _render(base, params)
    with pytest.raises(ValueError, match="must be 64x64x3 uint8"):
        _render(base, params, picture=picture.pixels[:32])
