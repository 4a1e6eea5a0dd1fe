"""A member's attachment, downloaded: streamed with the bot's one aiohttp session, and cut off past a cap.

Not ``Attachment.read()``: that reads the whole response into memory before it could be checked.
The pictures of ``/animate`` and the Animate menu, the audio of ``/mux`` and the videos Remix reads
its recipe from all come this way, and nothing else in the bot reads an attachment.
"""

from __future__ import annotations

import logging

import aiohttp

from engine.errors import UserError

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024


async def download_capped(
    session: aiohttp.ClientSession, url: str, *, cap: int, seconds: float, what: str, too_big: str, again: str
) -> bytes:
    """The file at ``url``, at most ``cap`` bytes whatever its declared size, within ``seconds``.

    Each failure is a ``UserError``: ``too_big`` past the cap; otherwise a sentence about ``what``
    (``"picture"``) that ends with ``again`` (what the member does next: ``"attach it again"``).
    """
    data = bytearray()
    timeout = aiohttp.ClientTimeout(total=seconds)
    try:
        async with session.get(url, timeout=timeout) as response:
            if response.status != 200:
                raise UserError(f"Discord did not hand over that {what} (HTTP {response.status}); {again}.")
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                data += chunk
                if len(data) > cap:
                    raise UserError(too_big)
    except (aiohttp.ClientError, TimeoutError) as err:
        log.warning("downloading %s failed: %r", url.partition("?")[0], err)  # not the CDN's signature
        raise UserError(f"I could not download that {what}; {again}.") from None
    return bytes(data)
