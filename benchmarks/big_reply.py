"""Big replies: what a huge reply costs the chat while it streams, and reopening a chat holding it.

Streams from ``benchmarks/sse_source.py`` (its own process, loopback) as fast as the socket takes
the tokens, into the chat pane of ``chat_render.py`` (``ChatView`` in a small app whose driver
renders real terminal frames), through a real chat turn (``ChatTurn``, ``TurnRenderer``): saving,
coalescing and the widgets are the app's, nothing patched. Two replies:

- ``lines``: 50,000 one-line paragraphs (about 0.5 MB);
- ``bigcode``: one code block of 100,000 lines of 100 bytes (10 MB).

Measured per reply: CPU-seconds of this process from the request to the reply stored (the source
runs elsewhere), the peak RSS, and key echo: a key typed into the prompt every 100 ms while the
reply streams, from the key to the frame that shows it. Then reopening: a fresh pane shows the
conversation holding the reply (``ChatView.show_conversation`` of the stored messages) and the
time until its first frame with the prompt.

Targets (issue 21): ``lines`` under 5 CPU-seconds with key echo p95 under 100 ms; ``bigcode``
under 20 CPU-seconds and 300 MiB RSS; reopening either shows the prompt in under 1 s.

    python3 benchmarks/big_reply.py [--only lines|bigcode]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

from chat_render import ChatPane, source_process
from harness import table
from harness.stand_in import stand_in_driver
from harness.stats import percentile
from textual import events
from textual.driver import Driver

from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn
from coder_tui.core.chat.turn_events import TurnEnded
from coder_tui.core.config.schema import ChatSettings
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.widgets.chat_turn import TurnRenderer
from coder_tui.ui.widgets.chat_view import ChatView

REPLIES = {"lines": 50_000, "bigcode": 100_000}
CPU_TARGET_S = {"lines": 5.0, "bigcode": 20.0}
ECHO_P95_MS = 100.0
RSS_TARGET_MIB = {"bigcode": 300.0}
REOPEN_TARGET_S = 1.0
KEY_EVERY_S = 0.1


@dataclass(frozen=True)
class Result:
    name: str
    size_bytes: int
    cpu_s: float
    wall_s: float
    echo_p95_ms: float
    echo_max_ms: float
    keys: int
    rss_mib: float
    reopen_s: float


class Frames:
    """When a stand-in terminal was sent each frame (Textual renders them to terminal bytes as
    for a real one); keeps no bytes, so that they add nothing to the RSS measured."""

    def __init__(self) -> None:
        self.times: list[float] = []

    @property
    def count(self) -> int:
        return len(self.times)

    def driver(self) -> type[Driver]:
        return stand_in_driver(lambda data: self.times.append(time.monotonic()))


def _rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _type_keys(
    app: ChatPane, frames: Frames, stop: asyncio.Event, echoes: list[float]
) -> None:
    """A key into the prompt every ``KEY_EVERY_S``; each echo is the time from the key to the
    first frame written after the prompt took it (after the last look that did not see it yet,
    2 ms apart)."""
    chat = app.query_one(ChatView)
    while not stop.is_set():
        await asyncio.sleep(KEY_EVERY_S)
        want = len(chat.prompt.text) + 1
        sent = not_yet = time.monotonic()
        app.post_message(events.Key("x", "x"))
        while len(chat.prompt.text) < want and not stop.is_set():
            not_yet = time.monotonic()
            await asyncio.sleep(0.002)
        shown: float | None = None
        while shown is None and not stop.is_set():
            shown = next((t for t in frames.times[-100:] if t > not_yet), None)
            await asyncio.sleep(0.002)
        if not stop.is_set() and shown is not None:
            echoes.append((shown - sent) * 1000)


async def run_reply(url: str, name: str) -> Result:
    frames = Frames()
    settings = ChatSettings()
    with tempfile.TemporaryDirectory() as tmp, HistoryStore(Path(tmp) / "h.sqlite3") as store:
        app = ChatPane(driver_class=frames.driver())
        async with app.run_test(headless=False, size=(160, 50)) as pilot:
            await pilot.pause(0.2)
            turn = ChatTurn(
                store,
                settings,
                server_url=url,
                profile=None,
                conversation=None,
                prompt="go",
                pace=BusyPace(settings.busy_refresh_s),
                extra={"bench": {"rate": 0, "tokens": REPLIES[name], "mode": name}},
            )
            renderer = TurnRenderer(app.query_one(ChatView), turn)
            stop, echoes = asyncio.Event(), []
            typist = asyncio.create_task(_type_keys(app, frames, stop, echoes))
            cpu, wall = time.process_time(), time.monotonic()
            async with aclosing(renderer.run()) as turn_events:
                async for event in turn_events:
                    if isinstance(event, TurnEnded) and event.status != "complete":
                        raise RuntimeError(f"the reply ended {event.status}: {event.end}")
            await pilot.pause(0.1)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            stop.set()
            await typist
            rss = _rss_peak_mib()
            conv = store.last_conversation()
            assert conv is not None
            size = len(store.messages(conv.id)[-1].content.encode())
        reopen = await reopen_s(store, conv.id)
    return Result(
        name,
        size,
        cpu,
        wall,
        percentile(echoes, 95) if echoes else float("nan"),
        max(echoes) if echoes else float("nan"),
        len(echoes),
        rss,
        reopen,
    )


async def reopen_s(store: HistoryStore, conv_id: int) -> float:
    """A fresh pane showing the stored conversation: seconds to its first frame with the prompt."""
    frames = Frames()
    app = ChatPane(driver_class=frames.driver())
    async with app.run_test(headless=False, size=(160, 50)) as pilot:
        await pilot.pause(0.2)
        written = frames.count
        start = time.monotonic()
        await app.query_one(ChatView).show_conversation(store.messages(conv_id))
        while frames.count == written:
            await asyncio.sleep(0.002)
        return time.monotonic() - start


def _holds(r: Result) -> tuple[str, str]:
    names = [f"CPU < {CPU_TARGET_S[r.name]:g} s", f"reopen < {REOPEN_TARGET_S:g} s"]
    holds = [r.cpu_s < CPU_TARGET_S[r.name], r.reopen_s < REOPEN_TARGET_S]
    if r.name == "lines":
        names.append(f"echo p95 < {ECHO_P95_MS:g} ms")
        holds.append(r.echo_p95_ms < ECHO_P95_MS)
    if r.name in RSS_TARGET_MIB:
        names.append(f"RSS < {RSS_TARGET_MIB[r.name]:g} MiB")
        holds.append(r.rss_mib < RSS_TARGET_MIB[r.name])
    return ", ".join(names), "yes" if all(holds) else "no"


def report(results: list[Result]) -> str:
    header = [
        "reply",
        "size",
        "CPU-s",
        "wall s",
        "key echo p95",
        "echo max",
        "keys",
        "peak RSS",
        "reopen",
        "target",
        "holds",
    ]
    rows = [
        [
            r.name,
            f"{r.size_bytes / 2**20:.2f} MiB",
            f"{r.cpu_s:.2f}",
            f"{r.wall_s:.1f}",
            f"{r.echo_p95_ms:.0f} ms",
            f"{r.echo_max_ms:.0f} ms",
            r.keys,
            f"{r.rss_mib:.0f} MiB",
            f"{r.reopen_s:.2f} s",
            *_holds(r),
        ]
        for r in results
    ]
    return table.render("Big replies (big_reply.py)", header, rows)


async def main_async(args: argparse.Namespace) -> list[Result]:
    results = []
    with source_process() as url:
        for name in args.only or list(REPLIES):
            print(f"{name}…", file=sys.stderr)
            results.append(await run_reply(url, name))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(REPLIES))
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(report(results))


if __name__ == "__main__":
    main()
