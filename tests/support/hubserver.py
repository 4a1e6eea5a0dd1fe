"""A loopback model hub: an aiohttp server on 127.0.0.1 that serves local folders as hub repos.

It answers what huggingface_hub 2.x and diffusers ask (what a real hub serves to them): repo info,
the tree listing, ``HEAD``/``GET`` of ``resolve`` URLs (with ``Range``), and the hub's 404s with
``X-Error-Code``. Large files are served as LFS files (sha256 ETag); nothing mentions xet.

The server runs in its own thread with its own event loop, so synchronous code can use it.
``HF_ENDPOINT`` is read when huggingface_hub is imported, so the code under test runs in a
subprocess (``run_python``) started with the server's URL and a fresh ``HF_HOME``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

REPO_ROOT = Path(__file__).resolve().parents[2]
LFS_THRESHOLD = 10 * 1024  # bytes; the real hub stores weights (and anything big) in LFS


@dataclass(frozen=True)
class HubFile:
    path: str
    data_path: Path
    size: int
    blob_sha1: str  # git blob id
    sha256: str | None  # set for LFS files

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_sha1


@dataclass(frozen=True)
class HubRepo:
    repo_id: str
    sha: str
    files: dict[str, HubFile]

    @classmethod
    def from_folder(cls, repo_id: str, folder: Path) -> HubRepo:
        files = {}
        for item in sorted(Path(folder).rglob("*")):
            rel = item.relative_to(folder).as_posix()
            if not item.is_file() or rel.startswith(".cache/"):
                continue
            data = item.read_bytes()
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            lfs = (
                hashlib.sha256(data).hexdigest() if len(data) > LFS_THRESHOLD or rel.endswith(".safetensors") else None
            )
            files[rel] = HubFile(rel, item, len(data), blob, lfs)
        # A commit id derived from the content: a changed repo is a new commit, as on the hub.
        listing = "\n".join(f"{path} {f.blob_sha1}" for path, f in sorted(files.items()))
        return cls(repo_id, hashlib.sha1(listing.encode()).hexdigest(), files)

    def directories(self) -> set[str]:
        dirs = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return dirs


def _not_found(code: str, message: str, commit: str | None = None) -> web.Response:
    headers = {"X-Error-Code": code, "X-Error-Message": message}
    if commit:
        headers["X-Repo-Commit"] = commit
    return web.json_response({"error": message}, status=404, headers=headers)


class LoopbackHub:
    """Serve ``{repo_id: folder}`` at ``self.url`` until ``stop()`` (also a context manager)."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = {repo_id: HubRepo.from_folder(repo_id, Path(folder)) for repo_id, folder in repos.items()}
        self.requests: list[str] = []  # "METHOD /path" of every request, for tests to inspect
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LoopbackHub:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start_site())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="loopback-hub", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the loopback hub did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _start_site(self) -> None:
        app = web.Application(middlewares=[self._record])
        repo = "{owner}/{name}"
        app.router.add_get(f"/api/models/{repo}", self._info)
        app.router.add_get(f"/api/models/{repo}/revision/{{rev}}", self._info)
        app.router.add_get(f"/api/models/{repo}/tree/{{rev}}", self._tree)
        app.router.add_get(f"/api/models/{repo}/tree/{{rev}}/{{path:.*}}", self._tree)
        app.router.add_get(f"/{repo}/resolve/{{rev}}/{{path:.*}}", self._resolve)  # also answers HEAD
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    @web.middleware
    async def _record(self, request: web.Request, handler):
        self.requests.append(f"{request.method} {request.path}")
        return await handler(request)

    # -- endpoints --------------------------------------------------------------------------------
    def _lookup(self, request: web.Request) -> tuple[HubRepo | None, web.Response | None]:
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, _not_found("RepoNotFound", f"Repository not found: {repo_id}")
        rev = request.match_info.get("rev", "main")
        if rev not in ("main", repo.sha):
            return None, _not_found("RevisionNotFound", f"Invalid rev id: {rev}")
        return repo, None

    async def _info(self, request: web.Request) -> web.Response:
        repo, error = self._lookup(request)
        if error:
            return error
        siblings = [{"rfilename": path} for path in repo.files]
        return web.json_response(
            {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": repo.sha,
                "siblings": siblings,
                "private": False,
                "tags": [],
            }
        )

    async def _tree(self, request: web.Request) -> web.Response:
        repo, error = self._lookup(request)
        if error:
            return error
        base = request.match_info.get("path", "").strip("/")
        recursive = request.query.get("recursive", "false").lower() == "true"

        def wanted(path: str) -> bool:
            if base and not path.startswith(base + "/"):
                return False
            rest = path[len(base) + 1 :] if base else path
            return recursive or "/" not in rest

        entries = []
        for path in sorted(repo.directories()):
            if wanted(path):
                oid = hashlib.sha1(f"{repo.sha}:{path}".encode()).hexdigest()
                entries.append({"type": "directory", "oid": oid, "size": 0, "path": path})
        for path, f in repo.files.items():
            if wanted(path):
                entry = {"type": "file", "oid": f.blob_sha1, "size": f.size, "path": path}
                if f.sha256:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
                entries.append(entry)
        return web.json_response(entries)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        repo, error = self._lookup(request)
        if error:
            return error
        path = request.match_info["path"]
        f = repo.files.get(path)
        if f is None:
            return _not_found("EntryNotFound", f"{path} does not exist on main", commit=repo.sha)
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
        if f.sha256:
            headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)})
        # aiohttp answers HEAD with the headers of this response (Content-Length included) and no body.
        data = f.data_path.read_bytes()
        status, start = 200, 0
        ranges = request.headers.get("Range", "")
        if ranges.startswith("bytes=") and ranges[6:].split("-")[0].isdigit():
            start = int(ranges[6:].split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{f.size - 1}/{f.size}"
        return web.Response(status=status, body=data[start:], headers=headers)


# -- helpers for tests ------------------------------------------------------------------------------
def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on (a hub that cannot be reached)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def hub_env(endpoint: str, hf_home: Path, **extra: str) -> dict[str, str]:
    """The environment for a subprocess talking to ``endpoint``: fresh HF_HOME, no token, no offline flag."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        # One thread: on a small shared CPU, OpenMP threads competing with other processes make
        # tiny models 100x slower (measured: a 64x64 render 6 s with 2 threads, 0.05 s with 1).
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str], timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter; it reports by assigning a JSON-able dict to ``result``.

    Returns that dict, plus ``"seconds"`` (the code's own run time, imports included). A crash
    fails with the child's stderr.
    """
    script = (
        "import json, sys, time\n"
        "started = time.perf_counter()\n"
        "result = {}\n"
        f"exec(compile({code!r}, '<test>', 'exec'))\n"
        "result['seconds'] = time.perf_counter() - started\n"
        "print('RESULT ' + json.dumps(result, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"subprocess failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
