"""The built-in prompt sets, one per category, and choosing among them.

Owns the prompts the speed benchmark sends (at least six per category; the seed's Snake game is
``coding/snake``) and merging the user's own sets from the config's ``[bench.prompts]`` table (a
list of prompts per category; a new name makes a new category). The quality tasks, which come with
unit tests, are ``quality.py``'s. Prompts are fixed text so runs months apart measure the same work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from coder_tui.core.errors import UserError


@dataclass(frozen=True)
class BenchPrompt:
    """One prompt: ``id`` is ``category/name`` and stays stable across versions."""

    id: str
    category: str
    text: str


CATEGORY_TITLES: dict[str, str] = {
    "coding": "Coding Tasks",
    "writing": "Technical Writing",
    "debugging": "Debugging",
    "reasoning": "Reasoning",
}
"""Category -> the row title of the seed's table."""

_SETS: dict[str, tuple[tuple[str, str], ...]] = {
    "coding": (
        (
            "snake",
            "Write a complete Snake game in JavaScript with an HTML5 canvas, score tracking, "
            "collision detection and a responsive layout. Reply with one HTML file.",
        ),
        (
            "lru_cache",
            "Write a Python class LRUCache with get(key) and put(key, value) in O(1), "
            "with type hints and docstrings.",
        ),
        (
            "fix_bug",
            "Fix the bug in this Python function and explain the fix:\n\n"
            "def average(xs):\n    total = 0\n    for x in xs:\n        total += x\n"
            "    return total / len(xs) - 1\n",
        ),
        (
            "write_tests",
            "Write pytest unit tests for a function slugify(text: str) -> str that lowercases, "
            "replaces runs of non-alphanumeric characters with one hyphen and trims hyphens.",
        ),
        (
            "rest_api",
            "Write a minimal REST API in Python with FastAPI for a todo list: create, list, "
            "update and delete items, stored in memory.",
        ),
        (
            "sql_query",
            "Given tables orders(id, customer_id, total, created_at) and customers(id, name), "
            "write a SQL query for the top 5 customers by total spend in 2024, with their names.",
        ),
        (
            "css_layout",
            "Write HTML and CSS for a responsive pricing page with three cards that stack on "
            "screens narrower than 700 px.",
        ),
    ),
    "writing": (
        (
            "explain_moe",
            "Explain to a software engineer how a Mixture of Experts language model routes each "
            "token to a few experts, and why that makes it fast.",
        ),
        (
            "readme",
            "Write a README section that documents the command-line options of a tool that "
            "benchmarks local language model servers.",
        ),
        (
            "docstring",
            "Write a thorough docstring for a Python function retry(fn, attempts, backoff_s) "
            "that retries a callable with exponential backoff.",
        ),
        (
            "explain_kv_cache",
            "Explain what the KV cache of a transformer is, what it costs in memory, and how "
            "quantizing it to 4 bits changes that.",
        ),
        (
            "adr",
            "Write an architecture decision record choosing SQLite over PostgreSQL for a "
            "desktop application's local history.",
        ),
        (
            "changelog",
            "Write release notes for version 2.0 of a command-line tool that adds a plugin "
            "system, drops Python 3.8 and renames the --out option to --output.",
        ),
    ),
    "debugging": (
        (
            "race",
            "This Python code sometimes prints a count below 100000. Why, and how do you fix it?"
            "\n\nimport threading\ncount = 0\ndef work():\n    global count\n"
            "    for _ in range(50000):\n        count += 1\n"
            "ts = [threading.Thread(target=work) for _ in range(2)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\nprint(count)\n",
        ),
        (
            "off_by_one",
            "Find the bug: def last_n(xs, n): return xs[len(xs) - n - 1:]",
        ),
        (
            "mutable_default",
            "Why does this function remember items between calls, and how do you fix it?\n\n"
            "def add(item, items=[]):\n    items.append(item)\n    return items\n",
        ),
        (
            "js_this",
            "In JavaScript, why does `this.count` become NaN inside setInterval(function() "
            "{ this.count++ }, 1000) in a class method, and what are two ways to fix it?",
        ),
        (
            "slow_query",
            "A query SELECT * FROM events WHERE user_id = ? ORDER BY created_at DESC LIMIT 20 "
            "takes 3 seconds on 50 million rows. Diagnose it and propose a fix.",
        ),
        (
            "memory_leak",
            "A long-running Python service grows by 100 MB an hour. It caches responses in a "
            "dict keyed by request URL. Explain the likely leak and how to find and fix it.",
        ),
    ),
    "reasoning": (
        (
            "architecture",
            "A team must choose between a monolith and microservices for a 5-person startup "
            "building a B2B invoicing product. Reason step by step and recommend one.",
        ),
        (
            "puzzle",
            "Three boxes are labelled apples, oranges and mixed, and every label is wrong. You "
            "may take one fruit from one box. How do you relabel all boxes correctly?",
        ),
        (
            "estimate",
            "Estimate how many tokens per second a model can generate if each token must read "
            "12 GB of weights from memory with 900 GB/s bandwidth. Show the steps.",
        ),
        (
            "tradeoff",
            "Compare optimistic and pessimistic locking for an inventory service with frequent "
            "concurrent updates to the same items. Which would you choose and why?",
        ),
        (
            "scheduling",
            "Tasks A (3 h), B (2 h, after A), C (4 h), D (1 h, after B and C) run on two "
            "workers. What is the shortest schedule? Explain.",
        ),
        (
            "caching",
            "Should a read-heavy API with data that changes every few minutes use a write-through "
            "cache, a TTL cache or no cache? Reason about consistency and load.",
        ),
    ),
}

PROMPTS: dict[str, tuple[BenchPrompt, ...]] = {
    category: tuple(BenchPrompt(f"{category}/{name}", category, text) for name, text in items)
    for category, items in _SETS.items()
}
"""Category -> its prompts, in a fixed order."""

CATEGORIES: tuple[str, ...] = tuple(PROMPTS)
WARMUP_PROMPT = "Say hello."


def prompt_sets(
    user: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, tuple[BenchPrompt, ...]]:
    """The built-in sets plus the user's: their prompts follow the built-in ones of a category."""
    sets = dict(PROMPTS)
    for category, texts in (user or {}).items():
        own = tuple(
            BenchPrompt(f"{category}/user-{i + 1}", category, text) for i, text in enumerate(texts)
        )
        sets[category] = (*sets.get(category, ()), *own)
    return sets


def parse_categories(
    text: str | None, user: Mapping[str, Sequence[str]] | None = None
) -> tuple[str, ...]:
    """``coding,writing`` -> the categories, in the order given; ``None`` or empty means all."""
    sets = prompt_sets(user)
    known = (*CATEGORIES, *(c for c in sets if c not in CATEGORIES))
    if not text:
        return known
    out: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        if name not in sets:
            raise UserError(f"unknown bench category {name!r}; categories: {', '.join(known)}")
        if name not in out:
            out.append(name)
    if not out:
        raise UserError(f"no bench category given; categories: {', '.join(known)}")
    return tuple(out)


def select_prompts(
    categories: Sequence[str],
    per_category: int | None = None,
    user: Mapping[str, Sequence[str]] | None = None,
) -> tuple[BenchPrompt, ...]:
    """The first ``per_category`` prompts (all when ``None``) of each category, in order."""
    if per_category is not None and per_category < 1:
        raise UserError("--prompts-per-category must be at least 1")
    sets = prompt_sets(user)
    out: list[BenchPrompt] = []
    for category in categories:
        if category not in sets:
            raise UserError(f"unknown bench category {category!r}")
        out.extend(sets[category][:per_category])
    return tuple(out)
