"""A synthetic OpenAI-compatible streaming server for the chat benchmarks (loopback only).

Run as its own process (``python benchmarks/sse_source.py``): it binds ``127.0.0.1`` on a free port,
prints ``PORT <n>`` on stdout and serves until stdin closes (the parent went away) or
``--max-seconds`` pass. It answers:

- ``GET /health``: 200, so the app's attach mode sees a ready server;
- ``POST /v1/chat/completions``: an SSE stream of ``chat.completion.chunk`` events, one token per
  event at a fixed rate, then a chunk with ``finish_reason`` and ``timings``, then ``data: [DONE]``.
  The request's ``bench`` object (``chat_render.py`` and ``big_reply.py`` send it in the chat
  turn's ``extra`` request fields) sets
  ``rate`` (tokens/s; 0: as fast as the socket takes them), ``tokens``, ``mode`` (``prose``,
  ``code``: one growing code block, ``mixed``: prose and code blocks in turn, ``lines``: a line a
  token, ``bigcode``: one huge code block), ``delay_s`` before the first token, and
  ``pause_every``/``pause_s``: a pause of ``pause_s`` after every ``pause_every`` tokens;
- ``GET /sent``: the ``time.time()`` at which each token of the last stream was written, so the
  benchmark can measure token-to-screen delay on the same clock;
- anything else: 404.

Every token carries a marker ``t<i>`` and ``tokens_for`` builds the exact texts, so the benchmark
knows where each token ends in the reply without parsing it back out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
from typing import Any

HOST = "127.0.0.1"
PARAGRAPH_EVERY = 40  # prose: a blank line every 40 tokens, as real replies have paragraphs
CODE_LINE_EVERY = 8  # code: a newline every 8 tokens inside the fence
MIXED_BLOCK = 400  # mixed: 160 tokens of prose, then a 240-token (30-line) code block, repeated


CODE_LINE_BYTES = 100
"""``bigcode``: bytes a line (and a token) of the huge code block."""


def tokens_for(n: int, mode: str) -> list[str]:
    """The ``n`` token texts of a synthetic reply; token ``i`` contains the marker ``t<i>``.

    ``lines``: one short line a token (a 50,000-line reply); ``bigcode``: one code block of
    ``n`` lines of ``CODE_LINE_BYTES`` bytes, a token a line (10 MB at 100,000 tokens)."""
    if mode == "lines":
        return [f"t{i} ok\n" for i in range(n)]
    if mode == "bigcode":
        lines = [f"x{i} = f({i})  # t{i} ".ljust(CODE_LINE_BYTES - 1, "=") + "\n" for i in range(n)]
        lines[0] = "Here is the data:\n\n```python\n" + lines[0]
        lines[-1] += "```\n"
        return lines
    out = []
    for i in range(n):
        if mode == "mixed":
            out.append(_mixed_token(i, n))
            continue
        if mode == "code":
            text = f"t{i}\n" if (i + 1) % CODE_LINE_EVERY == 0 else f"t{i} "
            if i == 0:
                text = "Here is the code:\n\n```python\n" + text
            if i == n - 1:
                text = text.rstrip() + "\n```\n"
        else:
            text = f"t{i}\n\n" if (i + 1) % PARAGRAPH_EVERY == 0 else f"t{i} "
        out.append(text)
    return out


def _mixed_token(i: int, n: int) -> str:
    """Prose paragraphs and ```python blocks in turn, as a long coding reply has."""
    k = i % MIXED_BLOCK
    prose = MIXED_BLOCK * 2 // 5
    if k < prose:
        text = f"t{i}\n\n" if (k + 1) % PARAGRAPH_EVERY == 0 else f"t{i} "
    else:
        text = f"t{i}\n" if (k - prose + 1) % CODE_LINE_EVERY == 0 else f"t{i} "
        if k == prose:
            text = "```python\n" + text
        if k == MIXED_BLOCK - 1 or i == n - 1:
            text = text.rstrip() + "\n```\n\n"
    return text


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


class Source:
    """The server's state: the send times of the last stream."""

    def __init__(self) -> None:
        self.sent: list[float] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; True to keep the connection for another."""
        line = await reader.readline()
        if not line:
            return False
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        for _ in range(100):
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            key, _, value = raw.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        if method == "GET" and path == "/health":
            await self._reply(writer, 200, {"status": "ok"})
            return True
        if method == "GET" and path == "/sent":
            await self._reply(writer, 200, {"sent": self.sent})
            return True
        if method == "POST" and path == "/v1/chat/completions":
            request = json.loads(body or b"{}")
            await self._stream(writer, request.get("bench") or {})
            return False
        await self._reply(writer, 404, {"error": {"message": f"no {path}"}})
        return True

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter, bench: dict[str, Any]) -> None:
        rate = float(bench.get("rate", 100))
        texts = tokens_for(int(bench.get("tokens", 200)), str(bench.get("mode", "prose")))
        self.sent = []
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
        )
        writer.write(_chunk({"role": "assistant", "content": None}))
        await writer.drain()
        loop = asyncio.get_running_loop()
        await asyncio.sleep(float(bench.get("delay_s", 0.2)))
        pause_every = int(bench.get("pause_every", 0))
        pause_s = float(bench.get("pause_s", 0.0))
        start = loop.time()
        for i, text in enumerate(texts):
            paused = pause_s * (i // pause_every) if pause_every else 0.0
            wait = start + i / rate + paused - loop.time() if rate > 0 else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
            self.sent.append(time.time())
            writer.write(_chunk({"content": text}))
            await writer.drain()
        elapsed_ms = (loop.time() - start) * 1000
        timings = {
            "prompt_n": 12,
            "prompt_ms": 10.0,
            "prompt_per_second": 1200.0,
            "predicted_n": len(texts),
            "predicted_ms": elapsed_ms,
            "predicted_per_second": len(texts) / max(elapsed_ms / 1000, 1e-9),
            "cache_n": 0,
        }
        writer.write(_chunk({}, "stop", timings=timings))
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()


async def _serve(port: int, max_seconds: float) -> None:
    source = Source()
    server = await asyncio.start_server(source.handle, HOST, port)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    loop = asyncio.get_running_loop()
    parent_gone = asyncio.Event()

    def watch_stdin() -> None:  # stdin reaches EOF when the parent closes it or dies
        sys.stdin.read()
        loop.call_soon_threadsafe(parent_gone.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with server:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(parent_gone.wait(), max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
