"""Remote header fit: a GGUF's layout over HTTP range requests, against a local range server.

The server runs on 127.0.0.1 in a thread and serves a folder of shape-only models; it records the
byte ranges asked for, so the tests check that only the header travelled.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from coder_tui.core.demo.shape_model import RECIPES, SHAPES, write_shape_model
from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import read_layout
from coder_tui.core.gguf.remote import part_urls, read_remote_layout


class _Server:
    def __init__(self, root: Path, *, ranges: bool = True) -> None:
        self.root, self.ranges = root, ranges
        self.served: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = outer.root / self.path.split("?", 1)[0].lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                size = path.stat().st_size
                m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if m and outer.ranges:
                    start = int(m.group(1))
                    end = min(int(m.group(2) or size - 1), size - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    start, end = 0, size - 1
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                with path.open("rb") as fh:
                    fh.seek(start)
                    left = end - start + 1
                    try:
                        while left > 0:
                            chunk = fh.read(min(left, 1 << 16))
                            self.wfile.write(chunk)
                            outer.served.append(len(chunk))
                            left -= len(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[_Server]:
    srv = _Server(tmp_path)
    yield srv
    srv.close()


def test_part_urls_of_a_split_model() -> None:
    url = "https://host/org/repo/resolve/main/M-UD-IQ2_XXS-00002-of-00003.gguf?download=1"
    assert part_urls(url) == [
        f"https://host/org/repo/resolve/main/M-UD-IQ2_XXS-0000{i}-of-00003.gguf?download=1"
        for i in (1, 2, 3)
    ]
    assert part_urls("https://host/m.gguf") == ["https://host/m.gguf"]


def test_remote_layout_equals_the_local_one(served: _Server) -> None:
    local = write_shape_model(
        served.root / "tiny.gguf", SHAPES["qwen3next-tiny"], RECIPES["UD-IQ2_XXS"], mtp=True
    )[0]
    remote = read_remote_layout(f"{served.url}/tiny.gguf")
    want = read_layout(local)
    assert remote.layout.tensors == want.tensors
    assert remote.layout.file_size_bytes == want.file_size_bytes == remote.total_bytes
    assert remote.layout.nextn_layers == 1 and remote.layout.recurrent_layers == (0, 1, 2)
    assert remote.layout.path.name == "tiny.gguf"


def test_a_split_model_reads_every_part_header(served: _Server) -> None:
    parts = write_shape_model(
        served.root / "m.gguf", SHAPES["qwen3next-tiny"], RECIPES["UD-IQ2_XXS"], split=3
    )
    remote = read_remote_layout(f"{served.url}/{parts[1].name}")
    assert len(remote.urls) == 3 and len(remote.layout.parts) == 3
    assert remote.layout.tensors == read_layout(parts[0]).tensors
    assert remote.total_bytes == sum(p.stat().st_size for p in parts)


def test_only_the_header_of_a_26_gb_model_travels(served: _Server) -> None:
    path = write_shape_model(
        served.root / "Qwen3-Coder-Next-UD-IQ2_XXS.gguf", SHAPES["qwen3next"], RECIPES["UD-IQ2_XXS"]
    )[0]
    remote = read_remote_layout(f"{served.url}/{path.name}")
    assert remote.total_bytes == path.stat().st_size > 25_000_000_000
    assert remote.fetched_bytes <= 8 << 20  # the header with a 151,936-token vocabulary
    assert sum(served.served) == remote.fetched_bytes
    assert remote.layout.block_count == 48 and remote.layout.expert_count == 512


def test_a_server_without_ranges_is_read_only_to_the_header(tmp_path: Path) -> None:
    srv = _Server(tmp_path, ranges=False)
    try:
        write_shape_model(tmp_path / "t.gguf", SHAPES["qwen3moe-tiny"], RECIPES["Q8_0"])
        remote = read_remote_layout(f"{srv.url}/t.gguf")
        assert remote.layout.architecture == "qwen3moe"
    finally:
        srv.close()


def test_missing_and_non_gguf_files_are_user_errors(served: _Server) -> None:
    (served.root / "x.gguf").write_bytes(b"not a model" * 100)
    with pytest.raises(UserError, match="404"):
        read_remote_layout(f"{served.url}/nope.gguf")
    with pytest.raises(UserError, match="not a GGUF"):
        read_remote_layout(f"{served.url}/x.gguf")


def test_fit_plans_from_a_url(
    served: _Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import coder_tui.__main__ as cli_main

    monkeypatch.setattr(cli_main, "EXTRA_COMMANDS", ("fit",))
    parts = write_shape_model(
        served.root / "m.gguf", SHAPES["qwen3next-tiny"], RECIPES["UD-IQ2_XXS"], split=2
    )
    argv = ["fit", f"{served.url}/{parts[0].name}", "--vram", "4GiB", "--ram-bw", "50GB/s"]
    assert cli_main.main([*argv, "--ctx", "8192"]) == 0
    out = capsys.readouterr().out
    assert "read 2 header(s) over HTTP" in out
    assert "recurrent state: 3 layers x 4 slots" in out
    assert "llama-fit-params" not in out  # it needs the file
    assert cli_main.main([*argv, "--write-profile", "x"]) == 2  # refused before any request
    assert "download the model first" in capsys.readouterr().err
