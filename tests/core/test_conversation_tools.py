"""Conversation tools in the store: per-conversation settings, edit and resend, delete a message
or a turn, regenerate with alternatives, FTS5 search, owners, and that all of it survives
reopening the file (a restart). UI-free; the real-server round trip is
``tests/integration/test_conversation_tools_real.py``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from coder_tui.core.store.history import (
    ConversationSettings,
    ConversationTaken,
    HistoryStore,
)
from coder_tui.core.store.notices import other_model_notice, parse_settings
from coder_tui.core.store.schema import MIGRATIONS
from coder_tui.core.store.search import fts_query


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


def _turn(store: HistoryStore, conv_id: int, prompt: str, reply: str) -> tuple[int, int]:
    user = store.add_user_message(conv_id, prompt, "p").id
    msg = store.begin_reply(conv_id, "p", "Demo-Q4_K_M.gguf", quant="Q4_K_M")
    store.finish_reply(msg, reply, "complete")
    return user, msg


def _texts(store: HistoryStore, conv_id: int) -> list[str]:
    return [m.content for m in store.messages(conv_id)]


def test_settings_are_stored_with_the_conversation(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("s")
        settings = ConversationSettings("be terse", 0.2, 0.9, 256)
        store.set_settings(conv.id, settings)
    with HistoryStore(db_path) as again:
        stored = again.conversation(conv.id)
    assert stored is not None
    assert (stored.system_prompt, stored.temperature, stored.top_p, stored.max_tokens) == (
        "be terse",
        0.2,
        0.9,
        256,
    )


def test_regenerate_keeps_the_earlier_answer_as_an_alternative(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("r")
        _, first = _turn(store, conv.id, "q1", "a1")
        _turn(store, conv.id, "q2", "a2")
        again = store.begin_reply(conv.id, "p", "m", quant="IQ3_XXS", replacing=first)
        store.finish_reply(again, "a1 again", "complete")
        assert _texts(store, conv.id) == ["q1", "a1 again", "q2", "a2"]  # in its place
        shown = store.messages(conv.id)[1]
        assert (shown.alternative, shown.alternatives, shown.quant) == (2, 2, "IQ3_XXS")
        assert [m.content for m in store.alternatives(again)] == ["a1", "a1 again"]
        store.choose_alternative(first)
    with HistoryStore(db_path) as reopened:  # the choice survives a restart
        assert _texts(reopened, conv.id) == ["q1", "a1", "q2", "a2"]
        assert reopened.messages(conv.id)[1].alternative == 1


def test_edit_resends_from_the_prompt(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("e")
        first, _ = _turn(store, conv.id, "q1", "a1")
        _turn(store, conv.id, "q2", "a2")
        assert store.edit_message(first, "q1 edited") == 3  # a1, q2, a2
        with pytest.raises(KeyError):
            store.edit_message(first + 1, "x")  # removed with the rest
    with HistoryStore(db_path) as reopened:
        assert _texts(reopened, conv.id) == ["q1 edited"]


def test_edit_refuses_a_reply(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("e")
        _, reply = _turn(store, conv.id, "q1", "a1")
        with pytest.raises(ValueError, match="only a prompt"):
            store.edit_message(reply, "x")


def test_delete_a_message_and_a_turn(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("d")
        _, a1 = _turn(store, conv.id, "q1", "a1")
        q2, _ = _turn(store, conv.id, "q2", "a2")
        _turn(store, conv.id, "q3", "a3")
        alt = store.begin_reply(conv.id, "p", "m", replacing=a1)
        store.finish_reply(alt, "a1b", "complete")
        store.delete_message(alt)  # the other alternative is shown again
        assert _texts(store, conv.id)[:2] == ["q1", "a1"]
        assert store.delete_turn(q2) == 2
        assert _texts(store, conv.id) == ["q1", "a1", "q3", "a3"]
    with HistoryStore(db_path) as reopened:
        assert _texts(reopened, conv.id) == ["q1", "a1", "q3", "a3"]
        assert reopened.search("a2") == []  # deleted text is not found


def test_search_titles_and_text_survives_reopening(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        parser = store.new_conversation("Parser in Rust")
        _turn(store, parser.id, "write a tokenizer", "use a state machine for the lexer")
        other = store.new_conversation("Snake game")
        _turn(store, other.id, "a loop", "requestAnimationFrame")
        streaming = store.begin_reply(other.id, "p", "m")
        store.update_reply(streaming, "lexer words while streaming")  # indexed when finished
        assert [h.conversation.id for h in store.search("lexer")] == [parser.id]
        store.finish_reply(streaming, "lexer words at last", "complete")
    with HistoryStore(db_path) as again:
        hits = again.search("lexer")
        assert {h.conversation.id for h in hits} == {parser.id, other.id}
        assert "[lexer]" in hits[0].snippet
        assert [h.conversation.id for h in again.search("rust")] == [parser.id]  # the title
        assert [h.conversation.id for h in again.search("requestAnim")] == [other.id]  # prefix
        assert again.search('" AND ( NEAR') == []  # FTS5 syntax is only words
        assert again.search("   ") == []


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('a "b') == '"a" """b"*'
    assert fts_query("") is None


def test_migrating_a_v2_history_indexes_it(db_path: Path) -> None:
    db = sqlite3.connect(db_path, isolation_level=None)
    for migrate in MIGRATIONS[:2]:
        migrate(db)
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('old', 1, 1)")
    db.execute(
        "INSERT INTO messages (conversation_id, role, content, status, created_at, updated_at) "
        "VALUES (1, 'user', 'an old haystack', 'complete', 1, 1)"
    )
    db.close()
    with HistoryStore(db_path) as store:
        assert [h.conversation.title for h in store.search("haystack")] == ["old"]
        assert _texts(store, 1) == ["an old haystack"]
    assert (db_path.parent / f"{db_path.name}.v2.bak").exists()


_OWNER = """
import sys, time
from pathlib import Path
from coder_tui.core.store.history import HistoryStore
store = HistoryStore(Path(sys.argv[1]))
conv = store.new_conversation("A's")
print(conv.id, flush=True)
time.sleep(60)
"""


def test_a_conversation_is_written_by_one_instance_at_a_time(db_path: Path) -> None:
    HistoryStore(db_path).close()
    a = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert a.stdout is not None
        conv_id = int(a.stdout.readline())
        with HistoryStore(db_path) as b:
            owner = b.claim(conv_id)
            assert owner is not None and owner.pid == a.pid
            with pytest.raises(ConversationTaken) as info:
                b.add_user_message(conv_id, "into A's conversation")
            assert str(info.value) == (
                f"conversation {conv_id} is open in another coder-tui (pid {a.pid}); "
                "it was not changed here"
            )
            with pytest.raises(ConversationTaken):
                b.delete(conv_id)
            assert b.messages(conv_id) == []
            a.kill()
            a.wait(10)
            assert b.claim(conv_id) is None  # its owner is gone: it can be opened here
            b.add_user_message(conv_id, "now mine")
    finally:
        if a.poll() is None:
            a.kill()
        a.wait(10)


def test_two_stores_in_one_process_are_two_owners(db_path: Path) -> None:
    with HistoryStore(db_path) as a, HistoryStore(db_path) as b:
        conv = a.new_conversation("a")
        assert b.claim(conv.id) is not None
        a.release()
        assert b.claim(conv.id) is None
        with pytest.raises(ConversationTaken):
            a.add_user_message(conv.id, "b has it now")
    with HistoryStore(db_path) as c:  # closing let go of it
        assert c.claim(conv.id) is None


def test_other_model_notice(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("m")
        _turn(store, conv.id, "q", "a")
        msgs = store.messages(conv.id)
    assert other_model_notice(msgs, "p", "Demo-Q4_K_M.gguf") is None
    assert other_model_notice(msgs, "iq3", "Demo-IQ3_XXS.gguf") == (
        "this conversation was written by p · Demo-Q4_K_M.gguf; "
        "replies now come from iq3 · Demo-IQ3_XXS.gguf"
    )
    assert other_model_notice(msgs[:1], "iq3", "x") is None  # no reply yet


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (("", "hot", "", ""), "temperature: 'hot' is not a number"),
        (("", "", "1.5", ""), "top-p: 1.5 is outside 0 to 1"),
        (("", "", "", "12.5"), "max tokens: 12.5 is not a whole number"),
        (("", "", "", "0"), "max tokens: 0 is outside 1 to 1,048,576"),
    ],
)
def test_parse_settings_names_the_field(fields: tuple[str, str, str, str], error: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_settings(*fields)
    assert str(info.value) == error


def test_parse_settings_blank_is_the_config() -> None:
    assert parse_settings("  ", "", "", "") == ConversationSettings()
    assert parse_settings("sys", "0.7", "0.95", "512") == ConversationSettings(
        "sys", 0.7, 0.95, 512
    )


def test_search_indexes_the_start_of_a_huge_reply(db_path: Path) -> None:
    """Only the first 100,000 characters are indexed: a 10 MB reply stays cheap to store."""
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("big")
        _turn(store, conv.id, "q", "early " + "x " * 60_000 + "late")
        assert [h.conversation.id for h in store.search("early")] == [conv.id]
        assert store.search("late") == []
