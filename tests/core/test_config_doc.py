"""docs/config-reference.md is generated from the schema's field docs and must not drift."""

from __future__ import annotations

from pathlib import Path

from coder_tui.core.config.reference import field_docs, reference_markdown
from coder_tui.core.config.schema import Profile

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "config-reference.md"


def test_every_profile_field_is_documented() -> None:
    docs = field_docs("Profile")
    missing = [f for f in Profile.__dataclass_fields__ if f != "name" and not docs.get(f)]
    assert missing == []


def test_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == reference_markdown(), (
        "regenerate: python -m coder_tui.core.config.reference > docs/config-reference.md"
    )
