"""The content policy's torch-free words: the modes, which one a job gets, and the banned-word check.

A guild picks its policy outside age-restricted channels (:data:`SafetyMode`); in an age-restricted
channel the host's ``[safety] age_restricted`` decides whether it applies (``check``) or nothing is
checked (``allow``). :func:`job_mode` is that rule; the mode is stored with the job
(``Job.safety``), so the worker knows whether to check its start picture and frames.

Banned words: a prompt and a banned word are both *folded* before they are compared:

A prompt and a banned word are both *folded* before they are compared:

- case and accents are dropped (Unicode NFKD, then the combining marks removed): ``Ñúdé`` → ``nude``;
- the usual look-alike characters become the letter they stand for: ``0``→o ``1``→i ``3``→e
  ``4``→a ``5``→s ``@``→a ``$``→s (``n00d`` → ``nood``, ``@$$`` → ``ass``);
- ``.``, ``_`` and ``-`` inside a word are dropped (``n.u.d.e`` → ``nude``), so they cannot split it;
- everything else that is not a letter or digit separates words.

A banned entry matches whole words only: ``ass`` matches ``@ss`` and ``a.s.s`` but not ``class`` or
``assistant``; an entry of several words (``blood bath``) matches those words in a row.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal, get_args

SafetyMode = Literal["block", "spoiler", "off"]  # a guild's policy outside age-restricted channels
SAFETY_MODES = get_args(SafetyMode)

# What a member reads when the checker flags a render's start picture or a frame (block mode).
FLAGGED = (
    "This render was stopped: it was flagged as unsafe for this channel. "
    "Try an age-restricted channel or another prompt."
)

# A result flagged under the spoiler policy is named with Discord's spoiler mark, which the front end keeps.
SPOILER_PREFIX = "SPOILER_"


def job_mode(guild_mode: str, *, age_restricted: bool, age_restricted_policy: str = "allow") -> str:
    """The mode a job requested in a channel gets: ``off`` in an age-restricted channel whose host
    allows it unchecked (``[safety] age_restricted = "allow"``), else the guild's own."""
    if age_restricted and age_restricted_policy == "allow":
        return "off"
    return guild_mode


LOOK_ALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s"})
_JOINERS = re.compile(r"(?<=\w)[._-]+(?=\w)")  # ._- between two word characters: dropped
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """``text``'s words, folded (see the module's docstring)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    plain = plain.casefold().translate(LOOK_ALIKES)
    return _WORD.findall(_JOINERS.sub("", plain).replace("_", " "))


def banned_in(text: str, banned: Iterable[str]) -> str | None:
    """The first entry of ``banned`` that ``text`` uses (as whole words, both folded), or None."""
    found = words(text)
    if not found:
        return None
    spaced = f" {' '.join(found)} "
    for entry in banned:
        folded = words(entry)
        if folded and f" {' '.join(folded)} " in spaced:
            return entry
    return None


def check_prompts(prompts: Iterable[str], banned: Iterable[str]) -> str | None:
    """The sentence a member reads when one of ``prompts`` uses a banned word, else None.

    The sentence never repeats the word (it would post it in the channel)."""
    banned = tuple(banned)
    if any(banned_in(prompt, banned) for prompt in prompts if prompt):
        return "Your prompt uses a word this server does not allow; rephrase it and try again."
    return None
