"""A whole chat turn against the real llama-server on the demo model, headless: the turn
(``core/chat/session.py``) runs in a fresh interpreter where Textual and Rich cannot be imported,
and what it stored is read back here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from coder_tui.core.config.identity import profile_identity
from coder_tui.core.config.loader import Config
from coder_tui.core.demo.build import DemoResult
from coder_tui.core.server.process import ServerManager
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.schema import DecodeOwner

SCRIPT = Path(__file__).with_name("headless_turn.py")
_BLOCK = (
    "import sys, runpy, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('textual', 'rich'):\n"
    "            raise ImportError(f'blocked: {name}')\n"
    "        return None\n"
    "sys.meta_path.insert(0, Block())\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _check_order(events: list[dict[str, Any]]) -> None:
    """Prompt, the context counted, reply started, the pace at the first token, then text, one
    end, last."""
    kinds = [e["event"] for e in events]
    assert kinds[:4] == ["PromptSaved", "ContextFitted", "ReplyStarted", "PaceChanged"], kinds
    assert kinds.count("TurnEnded") == 1 and kinds[-1] == "TurnEnded", kinds
    assert set(kinds[4:-1]) <= {"ReplyText", "PaceChanged"} and "ReplyText" in kinds, kinds


async def test_a_whole_turn_runs_headless_and_is_stored(
    demo: DemoResult, demo_config: Config, tmp_path: Path
) -> None:
    db = tmp_path / "history.sqlite3"
    mgr = ServerManager(demo_config.server, log_dir=tmp_path)
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        url = mgr.url
        out = subprocess.run(
            [sys.executable, "-c", _BLOCK, str(SCRIPT), str(demo.config_path), mgr.url, str(db)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        await mgr.stop()
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[-1] == {"event": "modules", "ui": []}
    first = [e for e in lines if e.get("turn") == 0]
    second = [e for e in lines if e.get("turn") == 1]
    _check_order(first)
    _check_order(second)
    done, cancelled = first[-1], second[-1]
    assert done["status"] == "complete" and done["completion_tokens"] == 48
    assert done["content"] == "".join(e["text"] for e in first if e["event"] == "ReplyText")
    assert cancelled["status"] == "cancelled" and cancelled["end"] == "cancelled"
    shown = "".join(e["text"] for e in second if e["event"] == "ReplyText")
    assert shown and cancelled["content"].startswith(shown)

    with HistoryStore(db) as store:
        conv = store.last_conversation()
        assert conv is not None and conv.id == first[0]["conversation"] == second[0]["conversation"]
        msgs = store.messages(conv.id)
        assert [(m.role, m.status) for m in msgs] == [
            ("user", "complete"),
            ("assistant", "complete"),
            ("user", "complete"),
            ("assistant", "cancelled"),
        ]
        reply = msgs[1]
        assert reply.content == done["content"] and reply.profile == "q4_k_m"
        assert reply.completion_tokens == 48 and reply.predicted_per_second
        assert reply.ttft_s is not None and reply.finish_reason == "length"
        assert msgs[3].content == cancelled["content"]
        run = store.last_decode(DecodeOwner(profile_identity(demo_config.profile("q4_k_m")), url))
        assert run is not None and not run.quiet and run.tokens_per_second > 0
