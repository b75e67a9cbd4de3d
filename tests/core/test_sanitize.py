"""The terminal-output sanitizer: what it removes, what it shows, and that it misses no format
control Unicode knows (hypothesis feeds it random text and bytes)."""

from __future__ import annotations

import io
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from coder_tui.core.sanitize import (
    SafeTextStream,
    decode_output,
    sanitize,
    sanitize_line,
    show_path,
)

SHOWN = ("Cf", "Cs", "Zl", "Zp")


def _unsafe(text: str, allowed: str) -> list[str]:
    return [
        f"U+{ord(c):04X}"
        for c in text
        if c not in allowed and unicodedata.category(c) in ("Cc", *SHOWN)
    ]


def test_escapes_are_removed_and_bidi_shown() -> None:
    text = "a\x1b]52;c;aGk=\x07b\x1b[2Jc\u202ed\u2066e\x9bf\n\tg"
    assert sanitize(text) == "a]52;c;aGk=b[2Jc⟨U+202E⟩d⟨U+2066⟩ef\n\tg"


def test_one_line_shows_newline_return_and_tab() -> None:
    assert sanitize_line("x\ny\rz\tw") == "x⟨U+000A⟩y⟨U+000D⟩z⟨U+0009⟩w"
    assert show_path("/tmp/a\nb.gguf") == "/tmp/a⟨U+000A⟩b.gguf"


def test_joiners_and_ordinary_text_pass() -> None:
    text = "👩\u200d💻 fa\u200cx · é 中文 العربية"
    assert sanitize(text) == text == sanitize_line(text)


def test_every_format_control_unicode_knows_is_shown() -> None:
    """Each Cf (but the joiners), surrogate and line/paragraph separator of Python's Unicode
    database is shown as ⟨U+XXXX⟩, so a new bidi control cannot slip through."""
    missed = [
        hex(i)
        for i in range(0x110000)
        if unicodedata.category(chr(i)) in SHOWN
        and chr(i) not in "\u200c\u200d"
        and sanitize(chr(i)) != f"⟨U+{i:04X}⟩"
    ]
    assert missed == []


def test_stream_keeps_carriage_return_for_progress_lines() -> None:
    out = io.StringIO()
    stream = SafeTextStream(out)
    stream.carriage_return()
    print("50 %\x1b[K \u202e\rx", file=stream, end="")
    assert out.getvalue() == "\r50 %[K ⟨U+202E⟩⟨U+000D⟩x"


def test_stream_shows_a_lone_carriage_return_written_as_text() -> None:
    # A hostile string that is only "\r" (print writes it on its own) must not rewind the line.
    out = io.StringIO()
    print("\r", file=SafeTextStream(out), end="")
    assert out.getvalue() == "⟨U+000D⟩"


def test_output_of_a_program_never_fails_to_decode() -> None:
    assert decode_output(b"ok \xff\xfe") == "ok \ufffd\ufffd"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_text(text: str) -> None:
    assert _unsafe(sanitize(text), "\n\t\u200c\u200d") == []
    assert _unsafe(sanitize_line(text), "\u200c\u200d") == []


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_random_bytes(data: bytes) -> None:
    text = decode_output(data)
    assert _unsafe(sanitize_line(text), "\u200c\u200d") == []
    # surrogateescape is how Python hands undecodable file names over: those must not pass either
    assert _unsafe(sanitize(data.decode("utf-8", "surrogateescape")), "\n\t\u200c\u200d") == []
