"""The ``animabot`` command, run as a user runs it: in a subprocess."""

import os
import shutil
import subprocess
import sys

from support.hubserver import REPO_ROOT, LoopbackHub, closed_port_url, hub_env
from support.media import write_wav

from engine.render.weights import builtin
from engine.video.read import probe


def animabot(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Run ``animabot ARGS``; this checkout's code is imported whatever ``cwd`` is (not an installed copy's)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd or REPO_ROOT,
    )


def test_render_writes_the_video_and_reports_path_seed_and_timing(tmp_path):
    out = tmp_path / "cat.mp4"
    done = animabot(
        "render",
        "a cat in a sunflower field",
        "--model",
        "test-tiny",
        "--frames",
        3,
        "--fps",
        8,
        "--steps",
        2,
        "--size",
        "96x64",
        "--seed",
        42,
        "--motion",
        "pan-left",
        "-o",
        out,
    )
    assert done.returncode == 0, done.stderr
    assert f"{out}  seed 42  3 frames" in done.stdout
    info = probe(out)
    assert (info.frames, info.fps, info.width, info.height, info.video_codec, info.pix_fmt) == (
        3,
        8,
        96,
        64,
        "h264",
        "yuv420p",
    )


def test_render_with_audio_muxes_it(tmp_path):
    wav = write_wav(tmp_path / "tone.wav", seconds=1.0, rate=16000)
    out = tmp_path / "with-audio.mp4"
    done = animabot(
        "render",
        "a cat",
        "--model",
        "test-tiny",
        "--frames",
        4,
        "--fps",
        8,
        "--steps",
        1,
        "--size",
        "64x64",
        "--audio",
        wav,
        "-o",
        out,
    )
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert info.audio_codec == "aac" and abs(info.audio_duration - 0.5) < 0.1


def test_bad_values_get_one_line_and_exit_code_2(tmp_path):
    for args, message in [
        (("--frames", -1), "frames must be between 1 and 240, got -1."),
        (("--size", "500x500"), "width must be a multiple of 8, got 500."),
        (("--size", "big"), "size must look like WIDTHxHEIGHT"),
        (("--motion", "spin"), "unknown motion 'spin'"),
    ]:
        done = animabot("render", "a cat", "--model", "test-tiny", *args, "-o", tmp_path / "x.mp4")
        assert done.returncode == 2
        assert done.stderr.startswith(f"animabot: {message}") and done.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_models_download_to_a_folder_and_an_unreachable_hub(tmp_path):
    tiny = builtin.built_folder()
    repos = {"animabot-test/sd-tiny": tmp_path / "sd", "animabot-test/cn-tiny": tmp_path / "cn"}
    shutil.copytree(tiny / "sd", repos["animabot-test/sd-tiny"])
    shutil.copytree(tiny / "controlnet", repos["animabot-test/cn-tiny"])
    ids = ("--model", "animabot-test/sd-tiny", "--controlnet", "animabot-test/cn-tiny")
    # This host offers canny only: depth and pose (real hub ids by default) are not fetched.
    config = tmp_path / "config.toml"
    no_controls = ("depth_controlnet", "depth_annotator", "pose_controlnet", "pose_annotator")
    config.write_text("[engine]\n" + "".join(f'{key} = ""\n' for key in no_controls))
    with LoopbackHub(repos) as hub:
        done = animabot(
            "--config", config, "models", "download", *ids, "--to", tmp_path / "weights",
            env=hub_env(hub.url, tmp_path / "hf-home"),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "weights" / "sd-tiny" / "model_index.json").is_file()
    assert (tmp_path / "weights" / "cn-tiny" / "diffusion_pytorch_model.safetensors").is_file()

    done = animabot("models", "download", *ids, env=hub_env(closed_port_url(), tmp_path / "hf-home-2"))
    assert done.returncode == 2
    assert "animabot models download" in done.stderr and "reach" in done.stderr.lower()
