"""``animabot render --model/--lora``, ``animabot models list`` and the check of weights at start, in a subprocess."""

import pytest
from support import tiny_checkpoints
from test_cli import animabot

from engine.video.read import probe


@pytest.fixture
def host(tmp_path):
    """A host folder: a config naming a second model, a single-file checkpoint and a LoRA."""
    tiny_checkpoints.save_diffusers_lora(tmp_path / "ink.safetensors")
    tiny_checkpoints.save_single_file(tmp_path / "tiny2.safetensors")
    (tmp_path / "config.toml").write_text(
        'data_dir = "data"\n[engine]\nmodel = "test-tiny"\ndevice = "cpu"\n'
        '[models.second]\nmodel = "test-tiny-2"\n[models.single]\nmodel = "tiny2.safetensors"\n'
        '[loras.ink]\nfile = "ink.safetensors"\nweight = 0.7\ntrigger = "ink drawing"\n'
    )
    return tmp_path


def test_render_with_a_configured_model_and_lora_writes_the_video(host):
    done = animabot(
        "--config", host / "config.toml", "render", "a cat", "--model", "single", "--lora", "ink:0.5",
        "--frames", 2, "--steps", 2, "--size", "64x64", "-o", host / "cat.mp4", cwd=host,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "model single" in done.stderr and "LoRA ink:0.5" in done.stderr
    assert probe(host / "cat.mp4").frames == 2


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--model", "nosuch"],
            "animabot: There is no model 'nosuch': configured models are default, second, single; "
            "else give a hub id (org/name), an existing path or a built-in model (test-tiny, test-tiny-2).",
        ),
        (["--lora", "nosuch"], "animabot: There is no LoRA 'nosuch'; choose one of: ink."),
        (["--lora", "ink:9"], "animabot: The weight of LoRA ink must be between -2 and 2, got 9.0."),
    ],
)
def test_a_bad_model_or_lora_is_one_line_and_exit_code_2(host, args, line):
    done = animabot("--config", host / "config.toml", "render", "a cat", *args, cwd=host)
    assert done.returncode == 2 and done.stderr.strip() == line


def test_models_list_shows_each_model_and_lora_and_whether_it_is_here(host):
    (host / "tiny2.safetensors").unlink()
    done = animabot("--config", host / "config.toml", "models", "list", cwd=host)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines()}
    assert "present (built in code)" in lines["default"] and "present (built in code)" in lines["second"]
    assert "missing: The file of model single" in lines["single"]
    assert "present (weight 0.7, trigger 'ink drawing')" in lines["ink"]


def test_run_refuses_a_broken_safetensors_file_at_start_with_one_line(host):
    checkpoint = host / "tiny2.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])
    done = animabot("--config", host / "config.toml", "run", cwd=host)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"animabot: The file of model single, tiny2.safetensors, is truncated "
        f"({checkpoint.stat().st_size} of {checkpoint.stat().st_size + 100} bytes); download it again."
    ]
