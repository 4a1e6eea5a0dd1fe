"""Faults at start, as a host meets them: one sentence and exit 2, never a traceback (``-v`` shows it);
Discord unreachable is waited out, one line per try; a token Discord rejects ends the start at once.

Each runs ``animabot`` in a subprocess. File permissions are denied to a root user too: the
subprocess then runs without the capabilities that let root ignore them (``setpriv``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading

import pytest
from support.hubserver import REPO_ROOT, closed_port_url

# (what is wrong, how to make it, words of the sentence)
STORE_FAULTS = {
    "a damaged database": (
        lambda data: (data.mkdir(), (data / "animabot.sqlite3").write_bytes(os.urandom(4096))),
        "is damaged or not a SQLite database",
    ),
    "a folder in place of the database": (
        lambda data: (data / "animabot.sqlite3").mkdir(parents=True),
        "animabot.sqlite3 is a folder; move that folder away",
    ),
    "a data_dir that is a file": (lambda data: data.write_text("not a folder"), "is a file; set data_dir"),
    "an unreadable database": (
        lambda data: (data.mkdir(), (data / "animabot.sqlite3").write_bytes(b""), (data / "animabot.sqlite3").chmod(0)),
        "cannot be read and written by this user",
    ),
    "a read-only data_dir": (lambda data: (data.mkdir(), data.chmod(0o555)), "is not writable (Permission denied)"),
}


def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply to this user (root ignores them)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be denied")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def animabot_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANIMABOT_", "DISCORD_"))}
    env["ANIMABOT_CACHE"] = os.environ.get("ANIMABOT_CACHE", "")
    return {**env, "PYTHONPATH": str(REPO_ROOT)}


def host_config(folder, api_base: str, token: str = "a-token") -> None:
    (folder / "config.toml").write_text(
        f'data_dir = "data"\n[engine]\nmodel = "test-tiny"\ndevice = "cpu"\n'
        f'[discord]\ntoken = "{token}"\napi_base = "{api_base}"\n'
    )


@pytest.mark.parametrize("fault", list(STORE_FAULTS))
def test_a_store_fault_is_one_sentence_and_exit_2(tmp_path, fault):
    make, words = STORE_FAULTS[fault]
    make(tmp_path / "data")
    host_config(tmp_path, closed_port_url() + "/api/v10")
    command = [*unprivileged(), sys.executable, "-m", "bot.cli.main"]
    run = subprocess.run(
        [*command, "run", "--no-engine"], capture_output=True, text=True, cwd=tmp_path, env=animabot_env(), timeout=120
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("animabot: ") and run.stderr.count("\n") == 1, run.stderr
    assert words in run.stderr
    sentence = run.stderr.removeprefix("animabot: ").strip()
    # `animabot check` on the same host: that sentence as its ✗ line
    check = subprocess.run(
        [*command, "check", "--no-engine"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=animabot_env(),
        timeout=120,
    )
    assert check.returncode == 1
    assert f"✗ {sentence}" in check.stdout.splitlines(), check.stdout


def test_verbose_shows_the_traceback_behind_the_sentence(tmp_path):
    STORE_FAULTS["a damaged database"][0](tmp_path / "data")
    host_config(tmp_path, closed_port_url() + "/api/v10")
    run = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "-v", "run", "--no-engine"],
        capture_output=True, text=True, cwd=tmp_path, env=animabot_env(), timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "animabot: The job store data/animabot.sqlite3 is damaged" in run.stderr
    assert "Traceback" in run.stderr and "sqlite3.DatabaseError" in run.stderr


def test_discord_unreachable_at_start_is_tried_again_one_line_per_try(tmp_path):
    host_config(tmp_path, closed_port_url() + "/api/v10")
    # the waits start at 0.05 s instead of 1 s (they double up to 60 s)
    start = (
        "import sys, bot.cli.run as r; r.RETRY_FIRST_SECONDS = 0.05; from bot.cli.main import main; sys.exit(main())"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", start, "run", "--no-engine"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=animabot_env(),
    )  # fmt: skip
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    lines, tries = [], []
    try:
        for line in process.stderr:
            lines.append(line)
            if "Discord cannot be reached" in line:
                tries.append(line)
            if len(tries) >= 3:
                break
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
    assert len(tries) >= 3, "".join(lines)
    assert [t.split("trying again in ")[1].strip() for t in tries[:3]] == ["0.05 s", "0.1 s", "0.2 s"]
    assert "Traceback" not in "".join(lines)


async def test_a_token_discord_rejects_ends_the_start_with_exit_2(fake, tmp_path):
    host_config(tmp_path, fake.api_base, token="not-the-token")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli.main", "run", "--no-engine",
        cwd=tmp_path, env=animabot_env(), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2
    assert err.decode().splitlines()[-1] == (
        "animabot: Discord rejected the bot token; check DISCORD_TOKEN or the config file."
    )
    assert "Traceback" not in err.decode()
    assert any(r.path.endswith("/users/@me") and r.status == 401 for r in fake.state.requests)


def test_a_gateway_that_never_gets_ready_is_one_sentence_not_a_traceback():
    """Discord's API answered the token, its gateway never did: ``run`` ends with a UserError (one line, exit 2)."""
    from bot.cli.run import wait_ready
    from engine.errors import UserError

    class NeverReady:
        async def wait_until_ready(self):
            await asyncio.Event().wait()

    async def scenario():
        connection = asyncio.create_task(asyncio.Event().wait())
        try:
            with pytest.raises(UserError, match="gateway was not ready within 0.05 s"):
                await wait_ready(NeverReady(), connection, 0.05)
        finally:
            connection.cancel()

    asyncio.run(scenario())
