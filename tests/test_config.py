"""The config schema (engine/config.py): each mistake a host makes is one line naming it, all at once."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.config import Config, EngineConfig, LimitsConfig, load_config
from engine.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _mistakes(tmp_path: Path, text: str, environ: dict | None = None) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_config(path, environ=environ or {})
    return str(caught.value).splitlines()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            '[discord]\nguild_ids = "123456789012345678"\n',
            "[discord] guild_ids must be a list, like [1, 2], got '123456789012345678'.",
        ),
        ('[engine]\nmax_batch = "eight"\n', "[engine] max_batch must be an integer, got 'eight'."),
        ('[store]\nlease_seconds = "thirty"\n', "[store] lease_seconds must be a number, got 'thirty'."),
        ('[limits]\nmax_frames = "48"\n', "[limits] max_frames must be an integer, got '48'."),
        ("[limits]\ndaily_quota = -5\n", "[limits] daily_quota must be at least 0, got -5."),
        ("[limits]\nmax_frames = 500\n", "[limits] max_frames must be between 1 and 240, got 500."),
        ("[limit]\nmax_frames = 8\n", "unknown section [limit] in config.toml; did you mean [limits]?"),
        ('data_dri = "x"\n', "unknown key data_dri at the top of config.toml; did you mean data_dir?"),
        ("[engine]\nmax_bach = 4\n", "unknown key max_bach in [engine]; did you mean max_batch?"),
        (
            'depth_controlnet = ""\n',
            "unknown key depth_controlnet at the top of config.toml; it belongs in [engine]: move it below that heading.",
        ),
        (
            '[engine]\ncompile_mode = "fast"\n',
            "[engine] compile_mode must be 'reduce-overhead' or 'max-autotune', got 'fast'.",
        ),
        ('[engine]\ncompile = "yes"\n', "[engine] compile must be true or false, got 'yes'."),
        ("[engine]\njob_timeout_seconds = inf\n", "[engine] job_timeout_seconds must be a finite number, got inf."),
        ('[discord]\nguild_ids = [1, "2"]\n', "[discord] guild_ids[1] must be an integer, got '2'."),
        (
            '[store]\nurl = "mysql://db"\n',
            "[store] url must be empty or start with postgresql:// or postgres://, got 'mysql://db'.",
        ),
        ("[render]\nframes = 500\n", "[render] frames must be between 1 and 240, got 500."),
        ('[render]\nframes = "16"\n', "[render] frames must be a whole number, got '16'."),  # the request's schema
        (
            "[render]\ncanny_low = 300\n",
            "[render]: Canny thresholds must satisfy 0 <= low < high <= 1000, got 300/200.",
        ),
        ('[render]\nmotoin = "zoom-in"\n', "unknown key motoin in [render]; did you mean motion?"),
        ('[render]\nmodel = "dreamy"\n', "[render]: There is no model 'dreamy'; choose one of: default."),
        ('[models.dreamy]\nfile = "d.safetensors"\n', "[models.dreamy] needs model."),
        (
            '[models.default]\nmodel = "x"\n',
            "[models.default]: the name default is the [engine] model; pick another name.",
        ),
        (
            '[loras.pixel]\nfile = "p.safetensors"\nweight = 5\n',
            "[loras.pixel] weight must be between -2 and 2, got 5.",
        ),
        ("limits = 5\n", "[limits] must be a table, got 5."),
    ],
)
def test_each_mistake_is_one_line_naming_it(tmp_path, text, line):
    assert line in _mistakes(tmp_path, text)


def test_an_unknown_key_without_a_close_name_lists_the_valid_ones(tmp_path):
    assert _mistakes(tmp_path, '[models.dreamy]\nmodel = "m"\nfile = "x"\n') == [
        "unknown key file in [models.dreamy]; the valid ones are model, controlnet, vae, config."
    ]


def test_several_mistakes_are_reported_at_once(tmp_path):
    text = """data_dri = "x"
[engine]
max_batch = "eight"
[limits]
daily_quota = -5
[limit]
max_frames = 8
[discord]
guild_ids = "123456789012345678"
"""
    assert sorted(_mistakes(tmp_path, text)) == sorted(
        [
            "unknown key data_dri at the top of config.toml; did you mean data_dir?",
            "[engine] max_batch must be an integer, got 'eight'.",
            "[limits] daily_quota must be at least 0, got -5.",
            "unknown section [limit] in config.toml; did you mean [limits]?",
            "[discord] guild_ids must be a list, like [1, 2], got '123456789012345678'.",
        ]
    )


def test_the_command_line_prints_the_mistakes_and_exits_2_before_rendering(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[engine]\nmax_batch = "eight"\n[limit]\nmax_frames = 8\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "--config", str(bad), "render", "a cat", "--model", "test-tiny"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-2:] == [
        "animabot: [engine] max_batch must be an integer, got 'eight'.",
        "unknown section [limit] in bad.toml; did you mean [limits]?",
    ]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_environment_variables_override_keys_with_values_of_their_type(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[engine]\nmax_batch = 2\n[store]\nurl = "postgresql://file@db/x"\n', encoding="utf-8")
    config = load_config(
        path,
        environ={
            "ANIMABOT_ENGINE_MAX_BATCH": "4",
            "ANIMABOT_ENGINE_COMPILE": "false",
            "ANIMABOT_ENGINE_DEVICE": "cuda:1",
            "ANIMABOT_STORE_URL": "postgresql://env@db/x",
            "ANIMABOT_STORE_LEASE_SECONDS": "2.5",
            "ANIMABOT_DISCORD_GUILD_IDS": "123, 456",
            "ANIMABOT_DATA_DIR": str(tmp_path / "data"),
            "ANIMABOT_RENDER_FRAMES": "24",
            "DISCORD_TOKEN": "token-from-env",
            "ANIMABOT_LIMITS_DAILY_QUOTA": "",  # empty: not set
        },
    )
    assert (config.engine.max_batch, config.engine.compile, config.engine.device) == (4, False, "cuda:1")
    assert (config.store.url, config.store.lease_seconds) == ("postgresql://env@db/x", 2.5)
    assert config.discord.guild_ids == (123, 456) and config.discord.token == "token-from-env"
    assert config.data_dir == tmp_path / "data" and config.render.frames == 24
    assert config.limits.daily_quota == LimitsConfig().daily_quota


def test_a_bad_environment_value_names_the_variable(tmp_path):
    environ = {
        "ANIMABOT_ENGINE_MAX_BATCH": "eight",
        "ANIMABOT_DISCORD_GUILD_IDS": "1,x",
        "ANIMABOT_ENGINE_MAXBATCH": "2",
    }
    assert sorted(_mistakes(tmp_path, "", environ)) == [
        "ANIMABOT_DISCORD_GUILD_IDS must be a list, like [1, 2], got '1,x'.",
        "ANIMABOT_ENGINE_MAX_BATCH must be an integer, got 'eight'.",
        "unknown environment variable ANIMABOT_ENGINE_MAXBATCH; did you mean ANIMABOT_ENGINE_MAX_BATCH?",
    ]


def test_the_process_environment_is_read_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "from-the-environment")
    monkeypatch.setenv("ANIMABOT_LIMITS_MAX_FPS", "12")
    monkeypatch.chdir(tmp_path)  # no config.toml here: the built-in defaults and the environment
    config = load_config()
    assert (config.discord.token, config.limits.max_fps) == ("from-the-environment", 12)


def test_configs_built_in_code_keep_working_as_dataclasses_and_are_checked_too():
    config = Config(engine=EngineConfig(model="test-tiny", device="cpu"))
    changed = dataclasses.replace(config, engine=dataclasses.replace(config.engine, max_batch=3))
    assert changed.engine.max_batch == 3 and config.engine.max_batch == 8
    assert [f.name for f in dataclasses.fields(LimitsConfig)][:2] == ["max_frames", "max_steps"]
    assert LimitsConfig.max_frames == 48  # bot.guild_limits reads the defaults off the class
    with pytest.raises(ValidationError):
        EngineConfig(max_batch="eight")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.engine.max_batch = 2


def test_animabot_discord_token_wins_over_discord_token(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    both = {"DISCORD_TOKEN": "plain", "ANIMABOT_DISCORD_TOKEN": "prefixed"}
    assert load_config(environ=both).discord.token == "prefixed"


def test_metrics_listen_is_off_by_default_and_host_port_from_the_file_or_the_environment(tmp_path):
    assert load_config(environ={}).metrics.listen == ""
    assert load_config(environ={"ANIMABOT_METRICS_LISTEN": "0.0.0.0:9465"}).metrics.listen == "0.0.0.0:9465"
    assert _mistakes(tmp_path, '[metrics]\nlisten = "9464"\n', {}) == [
        "[metrics] listen must be empty (off) or HOST:PORT, like 127.0.0.1:9464, got '9464'."
    ]


def test_shard_ids_are_within_shard_count_each_once_and_need_it(tmp_path):
    config = load_config(environ={"ANIMABOT_DISCORD_SHARD_COUNT": "4", "ANIMABOT_DISCORD_SHARD_IDS": "2,3"})
    assert (config.discord.shard_count, config.discord.shard_ids) == (4, (2, 3))
    assert (load_config(environ={}).discord.shard_count, load_config(environ={}).discord.shard_ids) == (0, ())
    assert _mistakes(tmp_path, "[discord]\nshard_ids = [1]\n") == [
        "[discord]: shard_ids needs shard_count: set how many shards there are in all."
    ]
    assert _mistakes(tmp_path, "[discord]\nshard_count = 2\nshard_ids = [0, 2]\n") == [
        "[discord]: shard_ids may name shards 0 to 1 of shard_count 2, not [2]."
    ]
    assert _mistakes(tmp_path, "[discord]\nshard_count = 2\nshard_ids = [1, 1]\n") == [
        "[discord]: shard_ids names a shard twice; name each once."
    ]
