"""Make untrusted text safe to show in a terminal: model output, server logs, GGUF strings.

Removes ESC, the other C0 controls except newline and tab, DEL and the C1 controls. Textual passes
such characters through to the terminal otherwise, which would let a model's output move the
cursor, set the clipboard (OSC 52) or retitle the window.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def sanitize(text: str) -> str:
    """``text`` without terminal control characters (newline and tab are kept)."""
    return _UNSAFE.sub("", text)
