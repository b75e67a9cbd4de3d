"""The config reference, generated from the schema's field docstrings (``schema.py``) and, for
profile keys, the flag each one passes (the profile-flag table, ``flags.py``).

``docs/config-reference.md`` is this module's output; a test regenerates it and fails when the
two drift apart. Reads the schema's source with ``ast`` (field docstrings are not kept at run
time), so the reference always says what the code says.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

from coder_tui.core.config import schema as config_schema
from coder_tui.core.config.flags import BY_KEY, flag_text

TABLES: tuple[tuple[str, str, str], ...] = (
    ("ServerSettings", "[server]", "How coder-tui runs llama-server, shared by all profiles."),
    ("ChatSettings", "[chat]", "How the chat pane talks to the server."),
    ("Profile", "[profiles.NAME]", "One model and how to serve it; unset keys are not passed."),
    ("Remote", "[[remotes]]", "A llama-server elsewhere, for the dashboard's fleet view."),
    ("BenchSettings", "[bench]", "Additions to the benchmark's built-in prompt sets."),
)


def field_docs(class_name: str) -> dict[str, str]:
    """Each field's docstring (the string literal right after its annotation)."""
    source = Path(inspect.getfile(config_schema)).read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            docs: dict[str, str] = {}
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    if (
                        isinstance(nxt, ast.Expr)
                        and isinstance(nxt.value, ast.Constant)
                        and isinstance(nxt.value.value, str)
                    ):
                        docs[stmt.target.id] = " ".join(nxt.value.value.split())
            return docs
    raise KeyError(class_name)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else "{ ... }"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _default(field: dataclasses.Field[object]) -> str:
    if field.default is not dataclasses.MISSING:
        return "unset" if field.default is None else f"`{_toml(field.default)}`"
    if field.default_factory is not dataclasses.MISSING:
        return f"`{_toml(field.default_factory())}`"
    return "required"


def reference_markdown() -> str:
    out = [
        "# Config reference",
        "",
        "Generated from the field docs in `src/coder_tui/core/config/schema.py` and the flags in",
        "`src/coder_tui/core/config/flags.py` by",
        "`python -m coder_tui.core.config.reference > docs/config-reference.md`; a test keeps the two",
        "in step. `default_profile` (top level) names the profile used when none is given.",
        "",
    ]
    for class_name, table, about in TABLES:
        cls = getattr(config_schema, class_name)
        docs = field_docs(class_name)
        flags = class_name == "Profile"
        out += [
            f"## `{table}`",
            "",
            about,
            "",
            "| key | flag | default | meaning |" if flags else "| key | default | meaning |",
            "| --- | --- | --- | --- |" if flags else "| --- | --- | --- |",
        ]
        for field in dataclasses.fields(cls):
            if field.name == "name" and flags:
                continue
            doc = docs.get(field.name, "").replace("|", "\\|")
            flag = f" {flag_text(BY_KEY[field.name])} |" if flags else ""
            out.append(f"| `{field.name}` |{flag} {_default(field)} | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference_markdown(), end="")
