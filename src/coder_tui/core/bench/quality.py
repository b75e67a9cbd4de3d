"""The ``--quality`` check: built-in coding tasks with unit tests, code extraction, grading.

Owns the tasks (each a prompt, the name of the function asked for, assert-based tests and a
reference solution that passes them), ``extract_code`` (the fenced block of a reply that defines
the function) and ``grade`` (extract, then run in ``sandbox.run_tests``, never in this process).
Asking the model is ``runner``'s. The tasks are small on purpose: they check that a quantization
still writes working code, not how good a model is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coder_tui.core.bench.sandbox import run_tests


@dataclass(frozen=True)
class QualityTask:
    """One task: ``prompt`` asks for ``function``; ``tests`` are asserts run after the code."""

    id: str
    function: str
    prompt: str
    tests: str
    reference: str


_FORMAT = " Reply with only the code, in one ```python block, no examples or tests."

TASKS: tuple[QualityTask, ...] = (
    QualityTask(
        id="palindrome",
        function="is_palindrome",
        prompt="Write a Python function is_palindrome(s: str) -> bool that ignores case and "
        "every character that is not a letter or digit." + _FORMAT,
        tests=(
            "assert is_palindrome('A man, a plan, a canal: Panama')\n"
            "assert not is_palindrome('race a car')\n"
            "assert is_palindrome('')\n"
            "assert is_palindrome('No lemon, no melon')\n"
        ),
        reference=(
            "def is_palindrome(s: str) -> bool:\n"
            "    kept = [c.lower() for c in s if c.isalnum()]\n"
            "    return kept == kept[::-1]\n"
        ),
    ),
    QualityTask(
        id="merge_intervals",
        function="merge_intervals",
        prompt="Write a Python function merge_intervals(intervals: list[tuple[int, int]]) -> "
        "list[tuple[int, int]] that merges overlapping or touching closed intervals and returns "
        "them sorted by start." + _FORMAT,
        tests=(
            "assert merge_intervals([(1, 3), (2, 6), (8, 10), (15, 18)]) == "
            "[(1, 6), (8, 10), (15, 18)]\n"
            "assert merge_intervals([(1, 4), (4, 5)]) == [(1, 5)]\n"
            "assert merge_intervals([]) == []\n"
            "assert merge_intervals([(5, 7), (1, 2)]) == [(1, 2), (5, 7)]\n"
        ),
        reference=(
            "def merge_intervals(intervals):\n"
            "    out = []\n"
            "    for start, end in sorted(intervals):\n"
            "        if out and start <= out[-1][1]:\n"
            "            out[-1] = (out[-1][0], max(out[-1][1], end))\n"
            "        else:\n"
            "            out.append((start, end))\n"
            "    return out\n"
        ),
    ),
    QualityTask(
        id="roman",
        function="roman_to_int",
        prompt="Write a Python function roman_to_int(s: str) -> int that converts a Roman "
        "numeral (I, V, X, L, C, D, M, with subtractive forms like IV and CM) to an integer."
        + _FORMAT,
        tests=(
            "assert roman_to_int('III') == 3\n"
            "assert roman_to_int('LVIII') == 58\n"
            "assert roman_to_int('MCMXCIV') == 1994\n"
            "assert roman_to_int('IX') == 9\n"
        ),
        reference=(
            "def roman_to_int(s: str) -> int:\n"
            "    v = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n"
            "    total = 0\n"
            "    for a, b in zip(s, s[1:] + ' '):\n"
            "        total += -v[a] if b != ' ' and v[a] < v[b] else v[a]\n"
            "    return total\n"
        ),
    ),
    QualityTask(
        id="flatten",
        function="flatten",
        prompt="Write a Python function flatten(nested: list) -> list that flattens arbitrarily "
        "nested lists, keeping the order of the items." + _FORMAT,
        tests=(
            "assert flatten([1, [2, [3, [4]], 5]]) == [1, 2, 3, 4, 5]\n"
            "assert flatten([]) == []\n"
            "assert flatten([[], [[]], 'ab']) == ['ab']\n"
        ),
        reference=(
            "def flatten(nested):\n"
            "    out = []\n"
            "    for item in nested:\n"
            "        if isinstance(item, list):\n"
            "            out.extend(flatten(item))\n"
            "        else:\n"
            "            out.append(item)\n"
            "    return out\n"
        ),
    ),
)

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(reply: str, function: str) -> str | None:
    """The code in ``reply`` that defines ``function``: the first fenced block that does, else the
    first ``python`` block, else the whole reply if it defines the function; ``None`` otherwise."""
    blocks: list[tuple[str, str]] = [(str(m[0]).lower(), str(m[1])) for m in _FENCE.findall(reply)]
    defines = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(function)}\s*\(", re.MULTILINE)
    for _lang, body in blocks:
        if defines.search(body):
            return body
    for lang, body in blocks:
        if lang in ("python", "py", "python3"):
            return body
    if defines.search(reply):
        return reply
    return None


def grade(task: QualityTask, reply: str, *, timeout_s: float = 10.0) -> tuple[bool, str, str]:
    """(passed, reason, output tail) for ``reply`` to ``task``. Blocking: use a thread."""
    code = extract_code(reply, task.function)
    if code is None:
        return False, "no code in reply", ""
    result = run_tests(code, task.tests, timeout_s=timeout_s)
    return result.passed, result.reason, result.output_tail
