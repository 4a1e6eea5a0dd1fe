"""The recipe inside every video: a caller's JSON dict, stored in the file's own metadata.

The recipe is one line of ASCII JSON (:func:`recipe_text`: ``ensure_ascii``, so non-ASCII prompts
travel as ``\\uXXXX`` escapes and survive GIF's 7-bit comments and ffmpeg's logging). Where it lives:

- MP4: the ``comment`` tag (``-metadata comment=...``; ``ffprobe -show_format`` shows it). It is
  read back with ffmpeg's ``ffmetadata`` muxer, not the banner: the banner prints at most 255
  bytes of a tag per line, which cuts a long prompt.
- GIF: a Comment Extension block (GIF89a) after the header; ffmpeg's GIF muxer writes none, so
  :func:`gif_with_comment` inserts it into the encoded bytes.
- WebP: an ``XMP`` chunk holding a small XMP packet with an ``animabot:recipe`` property
  (:func:`recipe_xmp`), written by :mod:`engine.video.webp`'s container writer.

This module is pure (text and bytes); :func:`engine.video.read.read_recipe` reads files.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from engine.errors import UserError

COMMENT_TAG = "comment"
XMP_NAMESPACE = "https://animabot.invalid/ns/recipe/1.0/"
# The longest recipe text read back (ASCII JSON): a recipe with a long prompt and negative prompt
# is a few KiB; a bigger one was made by hand, and parsing it is work for nothing.
MAX_RECIPE_CHARS = 256 * 1024


def recipe_text(recipe: Mapping[str, Any]) -> str:
    """The recipe as one line of ASCII JSON (keys sorted, no spaces)."""
    if not isinstance(recipe, Mapping):
        raise ValueError(f"a recipe must be a dict, got {type(recipe).__name__}")
    return json.dumps(dict(recipe), ensure_ascii=True, separators=(",", ":"), sort_keys=True, allow_nan=False)


def parse_recipe(text: str | bytes | None) -> dict | None:
    """The recipe a text holds, or ``None`` when it is not a JSON object (someone else's comment).

    The text comes from a file anyone may have made: over :data:`MAX_RECIPE_CHARS`, or nested deeper
    than Python's JSON parser can follow (``RecursionError``), it is ``UserError``, not a crash."""
    if text is None:
        return None
    if len(text) > MAX_RECIPE_CHARS:
        raise UserError(
            f"The recipe in this file is {len(text) // 1024} KiB, more than any animabot recipe "
            f"({MAX_RECIPE_CHARS // 1024} KiB); it was not written by animabot."
        )
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        return None
    except RecursionError:
        raise UserError(
            "The recipe in this file is nested too deeply to read; it was not written by animabot."
        ) from None
    return value if isinstance(value, dict) else None


def metadata_options(recipe: Mapping[str, Any] | None) -> dict[str, str]:
    """ffmpeg-python output keywords that store ``recipe`` in the ``comment`` tag (none for ``None``)."""
    return {} if recipe is None else {"metadata": f"{COMMENT_TAG}={recipe_text(recipe)}"}


# ---------------------------------------------------------------------------------------------
# MP4: ffmpeg's ffmetadata text


def parse_ffmetadata(text: str) -> dict[str, str]:
    """The global tags of an ``;FFMETADATA1`` text (the lines before the first ``[SECTION]``).

    ``=``, ``;``, ``#``, ``\\`` and newlines inside keys and values are escaped with a backslash.
    """
    tags: dict[str, str] = {}
    key: list[str] = []
    value: list[str] = []
    current = key
    chars = iter(text)
    at_line_start = True
    for char in chars:
        if at_line_start and char in ";#":
            for skipped in chars:  # a comment line (``;FFMETADATA1``)
                if skipped == "\n":
                    break
            continue
        if at_line_start and char == "[":
            break  # [STREAM] / [CHAPTER]: no more global tags
        at_line_start = False
        if char == "\\":
            current.append(next(chars, ""))
        elif char == "=" and current is key:
            current = value
        elif char == "\n":
            if current is value:
                tags["".join(key)] = "".join(value)
            key, value, current, at_line_start = [], [], key, True
            current = key
        else:
            current.append(char)
    if value:
        tags["".join(key)] = "".join(value)
    return tags


# ---------------------------------------------------------------------------------------------
# GIF: a Comment Extension block


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """The offset after a chain of GIF data sub-blocks starting at ``pos`` (its 0 terminator included)."""
    while pos < len(data) and data[pos] != 0:
        pos += data[pos] + 1
    return pos + 1


def gif_with_comment(data: bytes, text: str) -> bytes:
    """``data`` (a GIF) with a Comment Extension holding ``text`` (ASCII) before the first image.

    It goes after the header, the global colour table and a NETSCAPE2.0 loop block if one follows
    them, where decoders look for the loop block.
    """
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("not a GIF")
    payload = text.encode("ascii")
    packed = data[10]
    pos = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
    if data[pos : pos + 3] == b"\x21\xff\x0b" and data[pos + 3 : pos + 14] == b"NETSCAPE2.0":
        pos = _skip_sub_blocks(data, pos + 14)
    blocks = b"".join(bytes([len(chunk)]) + chunk for chunk in _chunks(payload, 255))
    return b"GIF89a" + data[6:pos] + b"\x21\xfe" + blocks + b"\x00" + data[pos:]


def _chunks(payload: bytes, size: int) -> list[bytes]:
    return [payload[i : i + size] for i in range(0, len(payload), size)]


# ---------------------------------------------------------------------------------------------
# WebP: an XMP packet

_XMP_TEMPLATE = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:animabot="{namespace}">'
    "<animabot:recipe>{recipe}</animabot:recipe>"
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
    '<?xpacket end="r"?>'
)


def recipe_xmp(recipe: Mapping[str, Any]) -> bytes:
    """An XMP packet (UTF-8) carrying the recipe as the ``animabot:recipe`` property."""
    return _XMP_TEMPLATE.format(namespace=XMP_NAMESPACE, recipe=escape(recipe_text(recipe))).encode("utf-8")


def recipe_from_xmp(packet: bytes) -> dict | None:
    """The recipe of an XMP packet from :func:`recipe_xmp`; ``None`` for any other packet."""
    try:
        root = ElementTree.fromstring(packet.decode("utf-8", "replace").split("?>", 1)[-1].rsplit("<?xpacket", 1)[0])
    except ElementTree.ParseError:
        return None
    node = root.find(f".//{{{XMP_NAMESPACE}}}recipe")
    return parse_recipe(node.text) if node is not None else None
