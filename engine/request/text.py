"""Text that came from a member or a file, made safe to print or post.

A prompt, a LoRA or model name read from a video's recipe, or a file name may hold terminal escape
sequences (``ESC [ 2 J`` clears a screen, ``ESC ] 8`` writes links), a carriage return that hides
what came before it on the line, NUL bytes, or Unicode's bidirectional overrides that show text in
another order than it is. :func:`printable` takes them out; everything else stays as it was.
"""

from __future__ import annotations

import re
import unicodedata

# A whole escape sequence goes, not only its ESC: "ESC[31m" without the ESC would print "[31m".
# CSI (ESC [ ... final byte), OSC/DCS/APC/PM/SOS strings (ended by BEL or ESC \), then any other
# two-character escape (ESC and one character).
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[\]P_^X][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, DCS, APC, PM, SOS
    r"|\x1b.?",  # anything else after ESC
    re.DOTALL,
)
# Unicode's bidirectional embeddings, overrides and isolates ("Trojan Source"), and the line and
# paragraph separators, which terminals and Discord treat as line breaks.
_INVISIBLE = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` without escape sequences and control characters (C0, DEL, C1, bidi overrides).

    Tabs stay; newlines stay only with ``newlines=True`` (a multi-line message), else they become
    spaces so that one line stays one line.
    """
    text = _ESCAPE.sub("", str(text))
    kept = []
    for char in text:
        if char == "\n":
            kept.append("\n" if newlines else " ")
        elif char == "\t" or (char not in _INVISIBLE and unicodedata.category(char) != "Cc"):
            kept.append(char)
    return "".join(kept)
