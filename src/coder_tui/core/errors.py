"""Errors a user can cause, each rendered as one clear line (file, line, key) without a traceback.

The CLI catches ``UserError`` at the top and exits with its ``exit_code``; anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; ``str()`` is the message to print, one line per problem."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: where it is and what is wrong."""

    file: Path
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.file.name if self.line is None else f"{self.file.name}:{self.line}"
        if self.key:
            return f"{where}: {self.key}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(UserError):
    """The config file has one or more problems; all of them are collected before raising."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in problems))


class ServerError(UserError):
    """The server cannot be started or stopped as asked (port taken, binary missing, bad flag)."""
