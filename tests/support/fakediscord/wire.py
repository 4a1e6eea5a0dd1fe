"""HTTP details of talking like Discord: exact JSON content type, multipart bodies, 429s."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.multipart import parse_content_disposition

from .errors import ApiError

_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly: discord.py reads anything else
    (aiohttp's ``json_response`` adds ``; charset=utf-8``) as text."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


def no_content() -> web.Response:
    return web.Response(status=204)


def parse_multipart(raw: bytes, content_type: str) -> tuple[dict[str, Any], list[tuple[int, str, str, bytes]]]:
    """Split a multipart/form-data body into its ``payload_json`` and its files, as
    ``(index, filename, content_type, bytes)`` with the index from the ``files[n]`` field name.
    (Parsed here rather than with ``request.multipart()`` so the body can be size-checked first.)"""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ApiError(400, "multipart body without a boundary", 50035)
    payload: dict[str, Any] = {}
    files: list[tuple[int, str, str, bytes]] = []
    for part in raw.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        _, params = parse_content_disposition(headers.get("content-disposition"))
        name = params.get("name", "")
        if name == "payload_json":
            payload = json.loads(content)
        elif "filename" in params:
            index_match = _FILE_FIELD.match(name)
            index = int(index_match.group(1)) if index_match else len(files)
            files.append((index, params["filename"], headers.get("content-type", ""), content))
    files.sort(key=lambda f: f[0])
    return payload, files


async def drain(request: web.Request) -> None:
    """Read and drop what is left of the body, so the client can finish sending it."""
    if request.body_exists and not request.content.at_eof():
        async for _ in request.content.iter_any():
            pass


def rate_limited(retry_after: float, global_: bool, key: str) -> web.Response:
    """A 429 as discord.py expects it: JSON body, ``Via`` (else it assumes a Cloudflare ban),
    and the X-RateLimit-* headers as a set."""
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": hashlib.sha1(key.encode()).hexdigest()[:16],
        "X-RateLimit-Scope": "global" if global_ else "user",
    }
    if global_:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
    return json_response(body, 429, headers)
