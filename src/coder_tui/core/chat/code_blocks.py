"""Fenced code blocks in a reply's Markdown: the last one, which the chat copies (Ctrl+B).

Owns ``last_code_block``; a fence still open at the end (a reply that is still streaming, or cut
off) counts as a block. Knows nothing of the UI.
"""

from __future__ import annotations

import re

_CODE_BLOCK = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def last_code_block(text: str) -> str | None:
    """The body of the last fenced code block in ``text`` (an unclosed last fence counts too)."""
    blocks = _CODE_BLOCK.findall(text)
    tail = text.rsplit("```", 1)
    if text.count("```") % 2 == 1 and "\n" in tail[-1]:
        blocks.append(tail[-1].split("\n", 1)[1])
    return blocks[-1] if blocks else None
