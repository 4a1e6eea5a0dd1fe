"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a temp dir, trust auth,
loopback only, a port of its own.

PostgreSQL refuses to run as root, and CI runs as root: the server then runs as the ``postgres``
user (``runuser``); as anyone else it runs as that user. One cluster per test session (``initdb``
takes seconds); each test gets its own database.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14)]


def server_bin() -> Path | None:
    """The folder of the server binaries (``initdb``, ``pg_ctl``), or None when none is installed."""
    for folder in BIN_DIRS:
        if (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """``start()`` / ``stop()`` a cluster; ``new_database()`` gives a fresh database's URL."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="animabot-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count(1)
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, *, durable: bool = False) -> PostgresCluster:
        """Start the server; fast and not crash-safe (fsync off) unless ``durable`` (benchmarks)."""
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._durable = durable or getattr(self, "_durable", False)
        fast = "" if self._durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "start",
            "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 {fast}-c max_connections=200",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def restart(self) -> None:
        """Restart the server: every connection is dropped."""
        self.stop()  # not `pg_ctl restart`: it would hand the server our pipes instead of the log file
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` through psql as the superuser; its output (unaligned, tuples only)."""
        result = subprocess.run(
            [str(self.bin / "psql") if (self.bin / "psql").exists() else "psql", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", "postgres", "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return result.stdout.strip()

    def new_database(self) -> str:
        """Create an empty database; its URL."""
        name = f"t_{os.getpid()}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def terminate_connections(self, database: str) -> int:
        """Kill every connection to ``database`` (``pg_terminate_backend``); how many there were."""
        out = self.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        return int(out or 0)
