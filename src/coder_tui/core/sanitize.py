"""Make untrusted text safe to show in a terminal: model output, server logs, GGUF strings, files.

The one place every path that shows text from a model, a server, a GGUF or a file goes through:
the TUI, the CLI's output and log lines, Prometheus label values and exported Markdown.

- ``sanitize`` (multi-line text): removes ESC, the other C0 controls except newline and tab, DEL
  and the C1 controls (Textual and the terminal would otherwise let the text move the cursor, set
  the clipboard with OSC 52 or retitle the window), and shows bidi and other invisible format
  controls (U+202E, U+2066-U+2069, zero-width spaces, tag characters, lone surrogates, line and
  paragraph separators) visibly as ``⟨U+202E⟩`` instead of letting the terminal obey them.
- ``sanitize_line``: the same for text that must stay one line (a log line, a path in an error,
  a label): newline, carriage return and tab are shown as ``⟨U+000A⟩`` too.
- ``decode_output``: bytes a program printed, decoded without ever raising.

Zero-width joiner and non-joiner (U+200D, U+200C) are kept: emoji sequences and Persian and Indic
scripts need them, and they reorder nothing. Escaping for a particular format (Prometheus label
quoting, Markdown) belongs to that format's writer, after this.
"""

from __future__ import annotations

import io
import re
from typing import TextIO

_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
# Unicode's format characters (category Cf) but U+200C/U+200D, plus lone surrogates and the line
# and paragraph separators; tests/core/test_sanitize.py checks this against unicodedata.
_INVISIBLE = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE = re.compile(f"[{_CONTROLS}]|([{_INVISIBLE}])")
_UNSAFE_STREAM = re.compile(f"([\\r])|[{_CONTROLS}]|([{_INVISIBLE}])")
_UNSAFE_LINE = re.compile(f"([\\n\\r\\t])|[{_CONTROLS}]|([{_INVISIBLE}])")


def _visible(m: re.Match[str]) -> str:
    shown = m.group(m.lastindex) if m.lastindex else None
    return f"⟨U+{ord(shown):04X}⟩" if shown is not None else ""


def sanitize(text: str) -> str:
    """``text`` without terminal controls (newline and tab kept), invisible formats shown."""
    return _UNSAFE.sub(_visible, text)


def sanitize_line(text: str) -> str:
    """``sanitize`` for one line: newline, carriage return and tab are shown, not obeyed."""
    return _UNSAFE_LINE.sub(_visible, text)


class SafeTextStream(io.TextIOBase):
    """A text stream that passes writes on through ``sanitize``, carriage returns shown too: the
    CLI's stdout and stderr, so nothing a hostile string holds reaches the terminal whichever
    ``print`` forgot to sanitise it first. A progress line rewritten in place asks for its
    carriage return with ``carriage_return()``: no written text, not even a lone ``"\\r"``, is
    passed on raw."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(_UNSAFE_STREAM.sub(_visible, text))
        return len(text)

    def carriage_return(self) -> None:
        """Back to the start of the line (a progress line rewritten in place)."""
        self.inner.write("\r")

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.inner, "encoding", "utf-8"))

    def writable(self) -> bool:
        return True


def show_path(path: object) -> str:
    """A path for a one-line message: a newline or escape in its name is shown, not obeyed."""
    return sanitize_line(str(path))


def decode_output(data: bytes | str) -> str:
    """What a program printed, as text: invalid UTF-8 becomes U+FFFD, never an exception."""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")
