"""Folding huge replies (``core/chat/fold.py``): what is drawn stays bounded, fences stay whole."""

from __future__ import annotations

import time

from coder_tui.core.chat.fold import (
    CODE_HEAD,
    CODE_TAIL,
    FOLD_CODE_LINES,
    FOLD_REPLY_LINES,
    MAX_LINE_CHARS,
    REPLY_HEAD,
    REPLY_TAIL,
    fold_reply,
)


def code_block(n: int, fence: str = "```") -> str:
    return f"{fence}python\n" + "".join(f"x{i} = {i}\n" for i in range(n)) + f"{fence}\n"


def test_a_short_reply_is_drawn_whole() -> None:
    text = "Here:\n\n" + code_block(FOLD_CODE_LINES) + "done"
    folded = fold_reply(text)
    assert folded.text == text and folded.whole


def test_a_huge_code_block_shows_its_first_and_last_lines() -> None:
    text = "Here:\n\n" + code_block(10_000) + "\ndone"
    folded = fold_reply(text)
    lines = folded.text.split("\n")
    assert folded.folded_lines == 10_000 - CODE_HEAD - CODE_TAIL
    assert lines[:3] == ["Here:", "", "```python"]
    assert lines[3] == "x0 = 0" and lines[2 + CODE_HEAD] == f"x{CODE_HEAD - 1} = {CODE_HEAD - 1}"
    assert lines[3 + CODE_HEAD] == "⋯ 9,940 lines folded · Ctrl+T opens the reply whole ⋯"
    assert lines[4 + CODE_HEAD] == f"x{10_000 - CODE_TAIL} = {10_000 - CODE_TAIL}"
    assert lines[-4:] == ["x9999 = 9999", "```", "", "done"]  # the fence still closes


def test_a_tilde_fence_and_an_open_last_fence_fold_too() -> None:
    folded = fold_reply("~~~\n" + "".join(f"{i}\n" for i in range(1000)) + "~~~\n")
    assert folded.folded_lines == 1000 - CODE_HEAD - CODE_TAIL
    assert folded.text.endswith("999\n~~~\n")
    cut_off = fold_reply("```\n" + "".join(f"{i}\n" for i in range(1000)))
    assert cut_off.folded_lines == 1000 - CODE_HEAD - CODE_TAIL + 1  # the last empty line too


def test_a_huge_reply_shows_its_head_and_tail_and_keeps_fences_balanced() -> None:
    blocks = ["para\n\n" + code_block(50) for _ in range(100)]  # 5,500 lines, no block folded
    folded = fold_reply("".join(blocks))
    lines = folded.text.split("\n")
    assert len(lines) <= REPLY_HEAD + REPLY_TAIL + 5
    assert folded.folded_lines > 0 and any("lines folded" in line for line in lines)
    fences = [line for line in lines if line.startswith("```")]
    assert len(fences) % 2 == 0  # every fence cut at the fold is closed and reopened
    prose = "".join(f"line {i}\n" for i in range(50_000))
    long = fold_reply(prose)
    assert long.text.startswith("line 0\n") and long.text.endswith("line 49999\n")
    assert long.folded_lines == 50_001 - REPLY_HEAD - REPLY_TAIL
    assert len(long.text.split("\n")) < FOLD_REPLY_LINES


def test_a_huge_line_is_cut() -> None:
    folded = fold_reply("```\n" + "y" * 10_000_000 + "\n```")
    assert folded.cut_lines == 1 and len(folded.text) < MAX_LINE_CHARS + 20


def test_folding_costs_little_whatever_the_size() -> None:
    text = code_block(100_000) * 1  # about 1 MB
    start = time.process_time()
    fold_reply(text * 10)  # 10 MB
    assert time.process_time() - start < 2.0
