"""Incremental, byte-level decoder for Server-Sent Events (the WHATWG ``text/event-stream`` format).

Owns only the framing: bytes in, ``SSEEvent`` values out. What an event's ``data`` means (OpenAI
chunks, ``[DONE]``, error JSON) is the chat client's business (``core/chat/stream.py``).

Why not ``httpx-sse``: it reads lines through httpx's line decoder, which splits on every
``str.splitlines`` boundary (U+2028, U+2029, U+0085, VT, FF, FS, GS, RS). JSON may carry U+2028 and
U+0085 unescaped, and model output does, so such an event would be torn in two. The SSE format
knows only CR, LF and CRLF. This decoder splits the raw bytes on those (UTF-8 continuation bytes
never equal CR or LF, so a character split across chunks is always whole within a line), decodes
each complete line on its own (invalid UTF-8 becomes U+FFFD, never an exception), and remembers a
CR at the end of a chunk so that an LF opening the next chunk ends the same line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024


class SSEError(Exception):
    """The byte stream cannot be framed as SSE (a line longer than the decoder's limit)."""


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its type (``message`` when the stream names none), data and last id."""

    event: str
    data: str
    id: str | None = None


class SSEDecoder:
    """Feed it chunks of bytes as they arrive; it returns the events each chunk completes.

    Follows the WHATWG rules: ``:`` lines are comments (counted in ``comments``, which is how a
    caller sees pings), a field without a colon has an empty value, one space after the colon is
    dropped, ``data`` lines join with ``\\n``, a blank line dispatches, an event with no data is not
    dispatched, the last event id persists across events, ``retry`` and unknown fields are ignored,
    and one byte-order mark at the start of the stream is skipped.
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        # The previous chunk ended in CR: an LF opening the next one belongs to the same line end.
        self._skip_lf = False
        self._first_line = True
        self._max_line_bytes = max_line_bytes
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._last_id: str | None = None
        self.comments = 0

    @property
    def has_partial_event(self) -> bool:
        """True when bytes or fields of an event not yet dispatched are held."""
        return bool(self._buf) or self._has_data or bool(self._event)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Events completed by ``chunk`` (may be none). Raises ``SSEError`` for an overlong line."""
        if not chunk:
            return []
        buf = self._buf
        buf += chunk
        if self._skip_lf:
            self._skip_lf = False
            if buf[:1] == b"\n":
                del buf[:1]
        events: list[SSEEvent] = []
        pos = 0
        for match in _EOL.finditer(buf):
            self._line(bytes(buf[pos : match.start()]), events)
            pos = match.end()
            if pos == len(buf) and match.group() == b"\r":
                self._skip_lf = True
        if pos:
            del buf[:pos]
        if len(buf) > self._max_line_bytes:
            raise SSEError(f"an SSE line is longer than {self._max_line_bytes} bytes")
        return events

    def close(self, *, dispatch_incomplete: bool = False) -> list[SSEEvent]:
        """End of stream. An unterminated last line is still read, but the spec discards an event
        that no blank line ended; ``dispatch_incomplete=True`` dispatches it instead."""
        events: list[SSEEvent] = []
        if self._buf:
            self._line(bytes(self._buf), events)
            self._buf.clear()
        if dispatch_incomplete:
            self._line(b"", events)
        self._event, self._data, self._has_data = "", [], False
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        line = raw.decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            if line.startswith(_BOM):
                line = line[1:]
        if not line:
            if self._has_data:
                events.append(
                    SSEEvent(self._event or "message", "\n".join(self._data), self._last_id)
                )
            self._event, self._data, self._has_data = "", [], False
            return
        if line[0] == ":":
            self.comments += 1
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
