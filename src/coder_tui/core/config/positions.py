"""Where keys are in a TOML text: dotted key paths mapped to 1-based line numbers.

``tomllib`` returns plain dicts without positions, so config errors would name a key but no line.
This module scans the (already valid) source once and records the line of every table header,
key, dotted key and inline-table key. It is not a TOML parser: it never decides whether the text
is valid and never raises; on text it cannot follow it returns what it found so far. Reading and
validating values belongs to ``config.py``.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re

from coder_tui.core.sanitize import sanitize_line

KeyPath = tuple[str, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def render_key(path: KeyPath) -> str:
    """A key path as the user would write it: ``profiles.iq2.n_cpu_moe``, quoting odd parts."""
    return sanitize_line(".".join(p if _BARE_KEY.fullmatch(p) else _quote(p) for p in path))


def _quote(part: str) -> str:
    escaped = part.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def show_value(value: object) -> str:
    """A parsed TOML value as the user wrote it, for "got ..." in messages (one line, short)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = sanitize_line(json.dumps(value, ensure_ascii=False))
        return shown if len(shown) <= 60 else shown[:56] + '..."'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def decode_error_position(exc: ValueError, text: str) -> tuple[int | None, int | None, str]:
    """Line, column and bare message of a ``TOMLDecodeError``.

    tomli 2.1+ has ``lineno``/``colno``/``msg``; Python 3.11's tomllib only puts
    "(at line L, column C)" or "(at end of document)" at the end of the message.
    """
    message = str(exc)
    line, column, bare = (getattr(exc, a, None) for a in ("lineno", "colno", "msg"))
    if isinstance(line, int) and isinstance(column, int) and isinstance(bare, str):
        return line, column, bare
    head, sep, where = message.rpartition(" (at ")
    if not sep:
        return None, None, message
    if where == "end of document)":
        return text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1, head
    m = re.fullmatch(r"line (\d+), column (\d+)\)", where)
    if not m:
        return None, None, message
    return int(m.group(1)), int(m.group(2)), head


class KeyLocator:
    """Line numbers of the keys in one TOML text; ``line`` falls back to the nearest parent."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        scanner = _Scanner(text, self._lines)
        # On text it cannot follow, keep what was found: a missing line only blurs a message.
        with contextlib.suppress(IndexError, ValueError, _Stop):
            scanner.run()

    def line(self, path: KeyPath) -> int | None:
        """The line where ``path`` (or, failing that, its closest recorded parent) is defined."""
        for end in range(len(path), 0, -1):
            found = self._lines.get(path[:end])
            if found is not None:
                return found
        return None


class _Stop(Exception):
    """The scanner met something it does not follow."""


class _Scanner:
    def __init__(self, text: str, out: dict[KeyPath, int]) -> None:
        self.s = text
        self.i = 0
        self.out = out
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    # -- positions -------------------------------------------------------------------------
    def lineno(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def record(self, path: KeyPath, pos: int) -> None:
        line = self.lineno(pos)
        # Every parent of a dotted key is implicitly defined here, unless it was defined earlier.
        for end in range(1, len(path) + 1):
            self.out.setdefault(path[:end], line)

    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def eof(self) -> bool:
        return self.i >= len(self.s)

    # -- whitespace and comments -----------------------------------------------------------
    def skip_space(self, newlines: bool = False) -> None:
        while not self.eof():
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    # -- document --------------------------------------------------------------------------
    def run(self) -> None:
        header: KeyPath = ()
        alias: KeyPath | None = None
        counts: dict[KeyPath, int] = {}
        while True:
            self.skip_space(newlines=True)
            if self.eof():
                return
            start = self.i
            if self.peek() == "[":
                double = self.peek(2) == "[["
                self.i += 2 if double else 1
                self.skip_space()
                header = self.key()
                self.skip_space()
                self.expect("]]" if double else "]")
                self.record(header, start)
                alias = None
                if double:  # [[x]]: its keys are also found as x.<index>.key
                    index = counts.get(header, 0)
                    counts[header] = index + 1
                    alias = (*header, str(index))
                    self.record(alias, start)
            else:
                own = self.key()
                key = header + own
                self.record(key, start)
                if alias is not None:
                    self.record(alias + own, start)
                self.skip_space()
                self.expect("=")
                self.value(key)
            self.skip_space()
            if not self.eof() and self.peek() != "\n":
                raise _Stop

    def expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise _Stop
        self.i += len(token)

    def key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self.skip_space()
            parts.append(self.key_part())
            self.skip_space()
            if self.peek() != ".":
                return tuple(parts)
            self.i += 1

    def key_part(self) -> str:
        c = self.peek()
        if c == '"':
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        m = _BARE_KEY.match(self.s, self.i)
        if not m:
            raise _Stop
        self.i = m.end()
        return m.group()

    # -- values ----------------------------------------------------------------------------
    def value(self, path: KeyPath) -> None:
        self.skip_space()
        c = self.peek()
        if c == "{":
            self.inline_table(path)
        elif c == "[":
            self.array(path)
        elif self.peek(3) in ('"""', "'''"):
            self.multiline_string(self.peek(3))
        elif c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        else:
            # Numbers, booleans, dates: everything up to a delimiter.
            start = self.i
            while not self.eof() and self.s[self.i] not in ",]}\n#":
                self.i += 1
            if self.i == start:
                raise _Stop

    def inline_table(self, path: KeyPath) -> None:
        self.i += 1
        while True:
            self.skip_space(newlines=True)
            if self.peek() == "}":
                self.i += 1
                return
            start = self.i
            key = path + self.key()
            self.record(key, start)
            self.skip_space()
            self.expect("=")
            self.value(key)
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "}":
                raise _Stop

    def array(self, path: KeyPath) -> None:
        self.i += 1
        while True:
            self.skip_space(newlines=True)
            if self.peek() == "]":
                self.i += 1
                return
            # Keys inside arrays of inline tables have no stable path; only the array is recorded.
            self.value((*path, "[]"))
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                raise _Stop

    # -- strings ---------------------------------------------------------------------------
    def basic_string(self) -> str:
        self.i += 1
        out: list[str] = []
        while True:
            c = self.s[self.i]  # IndexError at EOF ends the scan
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\n":
                raise _Stop
            if c == "\\":
                esc = self.s[self.i + 1]
                if esc in _ESCAPES:
                    out.append(_ESCAPES[esc])
                    self.i += 2
                elif esc in "uU":
                    width = 4 if esc == "u" else 8
                    digits = self.s[self.i + 2 : self.i + 2 + width]
                    out.append(chr(int(digits, 16)))  # ValueError ends the scan
                    self.i += 2 + width
                else:
                    raise _Stop
                continue
            out.append(c)
            self.i += 1

    def literal_string(self) -> str:
        end = self.s.find("'", self.i + 1)
        nl = self.s.find("\n", self.i + 1)
        if end < 0 or 0 <= nl < end:
            raise _Stop
        text = self.s[self.i + 1 : end]
        self.i = end + 1
        return text

    def multiline_string(self, delim: str) -> None:
        pos = self.i + 3
        while True:
            end = self.s.find(delim, pos)
            if end < 0:
                raise _Stop
            if delim == '"""':
                # A delimiter preceded by an odd number of backslashes is escaped.
                backslashes = len(self.s[pos:end]) - len(self.s[pos:end].rstrip("\\"))
                if backslashes % 2:
                    pos = end + 1
                    continue
            # Up to two quotes may directly precede the closing delimiter.
            while self.s.startswith(delim[0], end + 3):
                end += 1
            self.i = end + 3
            return
