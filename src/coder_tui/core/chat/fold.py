"""What of a reply is drawn: huge code blocks and huge replies folded, so drawing costs what shows.

A reply is drawn as Markdown, one widget a block, and a fence highlighted whole: a 50,000-line
reply or a 10 MB code block cost minutes of CPU and most of a gigabyte, on every start that
reopened it. ``fold_reply`` keeps the drawn text bounded whatever the reply's size:

- a code block of more than ``FOLD_CODE_LINES`` lines shows its first ``CODE_HEAD`` and last
  ``CODE_TAIL`` lines, a line between them saying how many are folded;
- a reply still longer than ``FOLD_REPLY_LINES`` lines (after that) shows its first
  ``REPLY_HEAD`` and last ``REPLY_TAIL`` lines, a fence cut at the fold closed and reopened;
- a line longer than ``MAX_LINE_CHARS`` is cut.

The stored reply is never changed: Ctrl+T opens the reply whole, Ctrl+B copies its last code
block whole (the UI's keys; the fold lines name the first). One pass over the lines: O(size), once per reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FOLD_CODE_LINES = 200
CODE_HEAD = 40
CODE_TAIL = 20
FOLD_REPLY_LINES = 1200
REPLY_HEAD = 400
REPLY_TAIL = 200
MAX_LINE_CHARS = 2000
OPEN_KEYS = "Ctrl+T opens the reply whole"

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})([^\n]*)")


@dataclass(frozen=True)
class Folded:
    """The text to draw and how much of the reply it leaves out (0, 0: drawn whole)."""

    text: str
    folded_lines: int = 0
    cut_lines: int = 0
    """Lines cut to ``MAX_LINE_CHARS``."""

    @property
    def whole(self) -> bool:
        return not self.folded_lines and not self.cut_lines


def needs_fold(text: str) -> bool:
    """Whether ``text`` may need folding (cheap: a count, no parse)."""
    return text.count("\n") > FOLD_CODE_LINES or len(text) > MAX_LINE_CHARS


def _opening(line: str) -> tuple[str, int] | None:
    match = _FENCE.fullmatch(line)
    if match is None:
        return None
    marker, info = match.groups()
    if marker[0] == "`" and "`" in info:
        return None
    return marker[0], len(marker)


def _closes(fence: tuple[str, int], line: str) -> bool:
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return False
    run = len(stripped) - len(stripped.lstrip(fence[0]))
    return run >= fence[1] and not stripped[run:].strip(" \t")


def fold_line(count: int) -> str:
    """The line that stands for ``count`` folded lines."""
    return f"⋯ {count:,} lines folded · {OPEN_KEYS} ⋯"


def fold_reply(text: str) -> Folded:
    """``text`` with its huge code blocks and, still too long, its middle folded."""
    if not needs_fold(text):
        return Folded(text)
    lines = text.split("\n")
    cut = 0
    out: list[str] = []
    openers: list[str | None] = []
    """Per output line: the opening line of the fence it lies in (``None``: outside)."""
    folded = 0
    fence: tuple[str, int] | None = None
    opener: str | None = None
    block: list[str] = []

    def emit(line: str, inside: str | None) -> None:
        nonlocal cut
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + " ⋯"
            cut += 1
        out.append(line)
        openers.append(inside)

    def flush_block() -> None:
        nonlocal folded
        if len(block) > FOLD_CODE_LINES:
            hidden = len(block) - CODE_HEAD - CODE_TAIL
            folded += hidden
            shown = [*block[:CODE_HEAD], fold_line(hidden), *block[-CODE_TAIL:]]
        else:
            shown = block
        for line in shown:
            emit(line, opener)
        block.clear()

    for line in lines:
        if fence is None:
            found = _opening(line)
            emit(line, None)
            if found is not None:
                fence, opener = found, line
        elif _closes(fence, line):
            flush_block()
            emit(line, None)
            fence, opener = None, None
        else:
            block.append(line)
    flush_block()  # a fence still open at the end
    if len(out) > FOLD_REPLY_LINES:
        hidden = len(out) - REPLY_HEAD - REPLY_TAIL
        folded += hidden
        head, tail = out[:REPLY_HEAD], out[-REPLY_TAIL:]
        inside_at_cut = openers[REPLY_HEAD - 1]
        inside_after = openers[len(out) - REPLY_TAIL]
        middle: list[str] = []
        if inside_at_cut is not None:
            middle.append(_closing_for(inside_at_cut))
        middle += ["", fold_line(hidden), ""]
        if inside_after is not None:
            middle.append(inside_after)
        out = [*head, *middle, *tail]
    return Folded("\n".join(out), folded, cut)


def _closing_for(opener: str) -> str:
    found = _opening(opener)
    return (found[0] * found[1]) if found else "```"
