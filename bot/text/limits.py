"""Discord's limits on what a bot sends, and the one place text is shortened to fit them.

Discord refuses a message over its limits with 400/50035 and the member's "thinking…" never
resolves, so every text the bot sends passes through here:

- :func:`fill` builds a message from a template and the parts a member supplied (prompts, file
  names, error details), shortening those parts, the longest first, so that the whole fits;
- :func:`content` is the last guard on any message text (``bot.replies`` and the channel sends
  call it): over 2000 characters it is cut in the middle, keeping its start (what it is about)
  and its end (what to do next);
- :func:`embed`, :func:`label`, :func:`custom_id` do the same for embeds, button and select
  labels, and component ids (an id is never shortened: one too long is a bug, so it raises).

The limits are Discord's documented ones. The OpenAPI description says 4000 for ``content``, but
that is the limit for Nitro users; bots get 2000.
"""

from __future__ import annotations

import string

import discord

ELLIPSIS = "…"

CONTENT = 2000
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_FIELD_NAME = 256
EMBED_FIELD_VALUE = 1024
EMBED_FOOTER = 2048
EMBED_AUTHOR = 256
EMBED_FIELDS = 25
EMBED_TOTAL = 6000  # title + description + field names and values + footer + author, over all embeds
BUTTON_LABEL = 80
CUSTOM_ID = 100
SELECT_PLACEHOLDER = 150
SELECT_OPTION_LABEL = 100
SELECT_OPTION_DESCRIPTION = 100
MODAL_TITLE = 45
TEXT_INPUT_LABEL = 45
TEXT_INPUT_PLACEHOLDER = 100
TEXT_INPUT_VALUE = 4000


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def shorten_middle(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, an ellipsis in place of its middle when cut."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    head = (limit - 1) // 2
    tail = limit - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def shares(lengths: list[int], budget: int) -> list[int]:
    """How long each part may be so their sum is within ``budget``: short parts stay whole and
    the long ones share the rest equally (``shares([10, 500, 900], 300)`` → ``[10, 145, 145]``)."""
    allowed = list(lengths)
    if sum(lengths) <= budget:
        return allowed
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    left, remaining = max(0, budget), len(lengths)
    for i in order:
        share = left // remaining
        allowed[i] = min(lengths[i], share)
        left -= allowed[i]
        remaining -= 1
    return allowed


def fill(template: str, limit: int = CONTENT, **parts: str) -> str:
    """``template.format(**parts)`` with the parts shortened so that the whole is within ``limit``.

    Only the parts are shortened (each with an ellipsis), never the template's own words: the
    member still reads what happened and what to do. ``{name}`` fields only, no format specs.
    """
    names = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    unknown = set(names) - parts.keys()
    if unknown:
        raise KeyError(f"fill() needs {sorted(unknown)}")
    fixed = len(template.format(**{name: "" for name in parts}))
    # a part used twice costs twice: share the budget per use
    uses = {name: names.count(name) for name in parts}
    keys = [name for name in parts if uses[name]]
    lengths = [len(parts[name]) * uses[name] for name in keys]
    allowed = shares(lengths, limit - fixed)
    fitted = dict(parts)
    for name, room in zip(keys, allowed):
        fitted[name] = shorten(parts[name], room // uses[name])
    return content(template.format(**fitted), limit)


def content(text: str, limit: int = CONTENT) -> str:
    """Any message text within Discord's limit (the middle cut out if need be)."""
    return shorten_middle(text, limit)


def label(text: str, limit: int = BUTTON_LABEL) -> str:
    """A button or select-option label (80 and 100 characters)."""
    return shorten(text, limit)


def custom_id(value: str) -> str:
    """A component's ``custom_id``, checked: ids carry job ids and are never shortened."""
    if len(value) > CUSTOM_ID:
        raise ValueError(f"custom_id {value[:40]!r}… is {len(value)} characters; Discord allows {CUSTOM_ID}")
    return value


def embed(item: discord.Embed, budget: int = EMBED_TOTAL) -> discord.Embed:
    """``item`` with each text within its limit and all of them within ``budget`` (6000) together;
    over the total, the longest texts give way first (:func:`shares`)."""
    fields = [(shorten(f.name or "", EMBED_FIELD_NAME), shorten(f.value or "", EMBED_FIELD_VALUE), bool(f.inline))
              for f in item.fields[:EMBED_FIELDS]]  # fmt: skip
    texts = [
        shorten(item.title or "", EMBED_TITLE),
        shorten(item.description or "", EMBED_DESCRIPTION),
        shorten(item.footer.text or "", EMBED_FOOTER) if item.footer else "",
        shorten(item.author.name or "", EMBED_AUTHOR) if item.author else "",
        *(text for name, value, _ in fields for text in (name, value)),
    ]
    texts = [shorten(text, room) for text, room in zip(texts, shares([len(t) for t in texts], budget))]
    title, description, footer, author, *pairs = texts
    item.title = title or None
    item.description = description or None
    if item.footer and item.footer.text:
        item.set_footer(text=footer, icon_url=item.footer.icon_url)
    if item.author and item.author.name:
        item.set_author(name=author, url=item.author.url, icon_url=item.author.icon_url)
    item.clear_fields()
    for index, (_, _, inline) in enumerate(fields):
        # a field needs a name and a value; a zero-width space stands in for one shortened away
        item.add_field(name=pairs[2 * index] or "\u200b", value=pairs[2 * index + 1] or "\u200b", inline=inline)
    return item


def embed_length(item: discord.Embed) -> int:
    """What Discord counts towards the 6000 characters of an embed."""
    return len(item)
