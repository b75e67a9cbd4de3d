"""Plan before downloading: the layout of a GGUF on an HTTP(S) server from its header alone.

Owns ``is_url``, ``part_urls`` (a split model's ``-0000N-of-0000M.gguf`` parts from any one of
them) and ``read_remote_layout``: for each part, HTTP range requests fetch the first MiB, then more
(doubling) until ``header.header_length`` says the whole header is in hand (a 150k-token vocabulary
makes it 3-8 MB; the 26 GB of weights are never asked for). The header is written to a sparse
stand-in file of the part's full length (``Content-Range`` gives it), so ``layout.read_layout``
reads it exactly as it reads a downloaded file. A server that ignores ``Range`` is read only up
to the header's end, then the response is closed.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import httpx

from coder_tui.core.errors import UserError
from coder_tui.core.gguf.header import Corrupt, header_length
from coder_tui.core.gguf.layout import GgufLayout, read_layout

FIRST_BYTES = 1 << 20
MAX_HEADER_BYTES = 256 << 20
"""Give up on a header that is still not complete after this many bytes."""
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def part_urls(url: str) -> list[str]:
    """Every part's URL of a split model (the query string kept), or ``[url]``."""
    parts = urlsplit(url)
    path = PurePosixPath(parts.path)
    m = _SPLIT_RE.match(path.name)
    if not m:
        return [url]
    count = int(m.group("count"))
    names = [f"{m.group('stem')}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    return [urlunsplit(parts._replace(path=str(path.with_name(n)))) for n in names]


@dataclass(frozen=True)
class RemoteLayout:
    """A remote model's layout and what reading it cost."""

    layout: GgufLayout
    urls: tuple[str, ...]
    fetched_bytes: int
    total_bytes: int


def _get(client: httpx.Client, url: str, start: int, end: int) -> tuple[bytes, int | None]:
    """Bytes ``start..end`` (inclusive) and the file's full length if the server said it."""
    headers = {"Range": f"bytes={start}-{end}"}
    with client.stream("GET", url, headers=headers) as resp:
        if resp.status_code == 206:
            m = _RANGE_RE.match(resp.headers.get("content-range", ""))
            total = int(m.group(3)) if m and m.group(3) != "*" else None
            if m is None or int(m.group(1)) != start:
                raise UserError(f"{url}: the server answered a different range than asked")
            return resp.read(), total
        if resp.status_code == 200:  # no range support: read the start only, then hang up
            length = resp.headers.get("content-length")
            data = bytearray()
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > end:
                    break
            return bytes(data[start : end + 1]), int(length) if length else None
        if resp.status_code == 416:
            return b"", None
        raise UserError(f"{url}: HTTP {resp.status_code} {resp.reason_phrase}")


def fetch_header(client: httpx.Client, url: str) -> tuple[bytes, int, int]:
    """(the header's bytes, the file's length, bytes fetched) in as few range requests as it
    takes."""
    data = b""
    total: int | None = None
    want = FIRST_BYTES
    while True:
        chunk, size = _get(client, url, len(data), want - 1)
        total = size if size is not None else total
        data += chunk
        try:
            end = header_length(data)
        except Corrupt as exc:
            raise UserError(f"{url}: not a GGUF file: {exc}") from None
        if end is not None:
            break
        if not chunk or (total is not None and len(data) >= total):
            raise UserError(f"{url}: the file ends inside its header ({len(data)} bytes)")
        if want >= MAX_HEADER_BYTES:
            raise UserError(f"{url}: no end of the GGUF header in {MAX_HEADER_BYTES} bytes")
        want *= 2
    if total is None:
        raise UserError(f"{url}: the server did not say the file's length (Content-Range)")
    return data[:end], total, len(data)


def read_remote_layout(url: str, *, client: httpx.Client | None = None) -> RemoteLayout:
    """The layout of the model at ``url`` (all parts of a split one) from the headers alone."""
    from coder_tui.core.connections import shared_tls

    urls = part_urls(url)
    own = client is None
    http = client or httpx.Client(follow_redirects=True, timeout=60.0, verify=shared_tls())
    fetched = total = 0
    try:
        with tempfile.TemporaryDirectory(prefix="coder-tui-remote-") as tmp:
            paths = []
            for u in urls:
                try:
                    data, size, n_fetched = fetch_header(http, u)
                except httpx.HTTPError as exc:
                    raise UserError(f"{u}: {type(exc).__name__}: {exc}") from None
                name = PurePosixPath(urlsplit(u).path).name or "model.gguf"
                path = Path(tmp) / name
                with path.open("wb") as fh:  # the header, then a sparse hole to the real length
                    fh.write(data)
                    fh.truncate(size)
                paths.append(path)
                fetched += n_fetched
                total += size
            layout = read_layout(paths[0])
    finally:
        if own:
            http.close()
    return RemoteLayout(layout, tuple(urls), fetched, total)
