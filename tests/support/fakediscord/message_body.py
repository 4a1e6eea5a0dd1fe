"""What Discord does with a message body it is sent: how its ``attachments`` list applies to the
uploaded files, and the limits it refuses (an empty message, content or embeds too long)."""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .models import AttachmentRecord, MessageRecord

MAX_CONTENT = 2000  # for bots; the OpenAPI description's 4000 is the Nitro users' limit
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000  # every embed's title, description, fields, footer and author together


def resolve_attachments(
    spec: list[dict[str, Any]] | None, files: list[AttachmentRecord], *, kept: list[AttachmentRecord]
) -> list[AttachmentRecord]:
    """Apply a message body's ``attachments`` list: ids of kept attachments, or indexes into
    the uploaded ``files[n]``. Without the list, uploads are added to what was there."""
    if spec is None:
        return kept + files
    by_id = {a.id: a for a in kept}
    result: list[AttachmentRecord] = []
    used: set[int] = set()
    for item in spec:
        ref = int(item["id"])
        if ref in by_id:
            result.append(by_id[ref])
        elif 0 <= ref < len(files):
            attachment = files[ref]
            attachment.filename = item.get("filename") or attachment.filename
            attachment.description = item.get("description", attachment.description)
            result.append(attachment)
            used.add(ref)
    result.extend(f for i, f in enumerate(files) if i not in used)
    return result


def _too_long(field: str, limit: int) -> ApiError:
    """Discord's answer to a value over its length limit: 50035 with the nested ``errors`` object."""
    error = {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
    return ApiError(400, "Invalid Form Body", 50035, {field: {"_errors": [error]}})


def embed_length(embed: dict[str, Any]) -> int:
    """What Discord counts towards an embed's 6000 characters."""
    fields = embed.get("fields") or []
    return (
        len(embed.get("title") or "")
        + len(embed.get("description") or "")
        + sum(len(f.get("name") or "") + len(f.get("value") or "") for f in fields)
        + len((embed.get("footer") or {}).get("text") or "")
        + len((embed.get("author") or {}).get("name") or "")
    )


def check_message(message: MessageRecord) -> None:
    """The limits the OpenAPI schema cannot say (its per-field maxLengths are checked before this)."""
    if not (message.content or message.embeds or message.attachments or message.components):
        raise ApiError(400, "Cannot send an empty message", 50006)
    if len(message.content) > MAX_CONTENT:
        raise _too_long("content", MAX_CONTENT)
    if len(message.embeds) > MAX_EMBEDS:
        raise _too_long("embeds", MAX_EMBEDS)
    if sum(embed_length(e) for e in message.embeds) > MAX_EMBED_TOTAL:
        raise _too_long("embeds", MAX_EMBED_TOTAL)
