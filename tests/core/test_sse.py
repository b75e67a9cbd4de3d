"""The byte-level SSE decoder: each framing rule, any chunking, and malformed input through the client."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coder_tui.core.chat.client import ChatClient, StreamEnd
from coder_tui.core.chat.sse import SSEDecoder, SSEError, SSEEvent


def decode(*chunks: bytes) -> list[SSEEvent]:
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.close()


def test_single_event_lf() -> None:
    assert decode(b"data: hello\n\n") == [SSEEvent("message", "hello")]


def test_crlf_and_cr_line_ends() -> None:
    expected = [SSEEvent("message", "a"), SSEEvent("message", "b")]
    assert decode(b"data: a\r\n\r\ndata: b\r\n\r\n") == expected
    assert decode(b"data: a\r\rdata: b\r\r") == expected
    assert decode(b"data: a\n\rdata: b\r\n\n") == expected


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    # If the CR/LF pair were two line ends, the blank line would dispatch "a" early and lose "b".
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r\n") == [SSEEvent("message", "a\nb")]


def test_cr_then_empty_chunk_then_lf() -> None:
    assert decode(b"data: a\r", b"", b"\n", b"\n") == [SSEEvent("message", "a")]


def test_utf8_split_inside_character() -> None:
    payload = "data: héllo → 🦀\n\n".encode()
    cut = payload.index("🦀".encode()) + 2
    assert decode(payload[:cut], payload[cut:]) == [SSEEvent("message", "héllo → 🦀")]


def test_unicode_line_separators_are_not_line_ends() -> None:
    # httpx's line iterator splits on these (str.splitlines); SSE must not.
    text = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg"
    assert decode(f"data: {text}\n\n".encode()) == [SSEEvent("message", text)]


def test_comments_and_pings_are_counted_not_dispatched() -> None:
    dec = SSEDecoder()
    assert dec.feed(b":\n\n: ping\n\ndata: x\n\n") == [SSEEvent("message", "x")]
    assert dec.comments == 2


def test_multiline_data_joined_with_newline() -> None:
    assert decode(b"data: one\ndata: two\ndata:\n\n") == [SSEEvent("message", "one\ntwo\n")]


def test_event_and_id_fields_and_id_persists() -> None:
    events = decode(b"event: error\nid: 7\ndata: x\n\ndata: y\n\n")
    assert events == [SSEEvent("error", "x", "7"), SSEEvent("message", "y", "7")]


def test_id_with_nul_is_ignored() -> None:
    assert decode(b"id: a\x00b\ndata: x\n\n") == [SSEEvent("message", "x", None)]


def test_field_without_colon_and_space_rules() -> None:
    # "data" alone is an empty data line; only one leading space is stripped; no space is fine.
    assert decode(b"data\n\n") == [SSEEvent("message", "")]
    assert decode(b"data:  two spaces\n\n") == [SSEEvent("message", " two spaces")]
    assert decode(b"data:nospace\n\n") == [SSEEvent("message", "nospace")]
    assert decode(b"data: a:b: c\n\n") == [SSEEvent("message", "a:b: c")]


def test_unknown_fields_and_retry_ignored_and_event_without_data_dropped() -> None:
    assert decode(b"retry: 10\nfoo: bar\n\nevent: x\n\n") == []


def test_bom_at_start_only() -> None:
    assert decode(b"\xef\xbb\xbfdata: a\n\n") == [SSEEvent("message", "a")]
    assert decode(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [SSEEvent("message", "a")]
    # A second BOM is data, and makes "\ufeffdata" an unknown field name.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n") == []


def test_incomplete_event_at_close_is_discarded_unless_asked() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: partial") == []
    assert dec.has_partial_event
    assert dec.close() == []
    dec = SSEDecoder()
    dec.feed(b"data: partial")
    assert dec.close(dispatch_incomplete=True) == [SSEEvent("message", "partial")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: a\xff\xfeb\n\n") == [SSEEvent("message", "a\ufffd\ufffdb")]


def test_overlong_line_raises_sse_error() -> None:
    dec = SSEDecoder(max_line_bytes=16)
    with pytest.raises(SSEError):
        dec.feed(b"data: " + b"x" * 64)


# -- any chunking gives the same events ------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12
)
_eol = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """A valid SSE stream: events of data/event/id lines and comments, mixed line ends."""
    out = []
    if draw(st.booleans()):
        out.append("\ufeff")
    for _ in range(draw(st.integers(0, 5))):
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["data", "data", "event", "id", "comment"]))
            value = draw(_text)
            if kind == "comment":
                out.append(":" + value + draw(_eol))
            else:
                out.append(f"{kind}:{draw(st.sampled_from(['', ' ']))}{value}{draw(_eol)}")
        out.append(draw(_eol))
    return "".join(out).encode()


@given(stream=streams(), data=st.data())
@settings(max_examples=300, deadline=None)
def test_any_chunking_yields_the_same_events(stream: bytes, data: st.DataObject) -> None:
    whole = decode(stream)
    # cut points anywhere: inside UTF-8 characters, between CR and LF, empty chunks
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert decode(*pieces) == whole
    # and byte by byte
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == whole


# -- malformed input through the client never raises ------------------------------------------


def _client_for(body_chunks: list[bytes]) -> ChatClient:
    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            for chunk in body_chunks:
                yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())

    return ChatClient("http://test", transport=httpx.MockTransport(handler))


async def _end_of(body_chunks: list[bytes]) -> StreamEnd:
    async with _client_for(body_chunks) as client:
        events = [e async for e in client.stream_chat([{"role": "user", "content": "hi"}])]
    assert isinstance(events[-1], StreamEnd)
    assert sum(isinstance(e, StreamEnd) for e in events) == 1
    return events[-1]


async def test_invalid_utf8_in_json_is_bad_stream_or_replaced() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}}]}
    raw = b"data: " + json.dumps(chunk).encode().replace(b"ok", b"o\xff") + b"\n\n"
    end = await _end_of([raw, b"data: [DONE]\n\n"])
    assert end.status == "done" and end.text == "o\ufffd"


@given(garbage=st.binary(max_size=200))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
async def test_garbage_never_raises(garbage: bytes) -> None:
    end = await _end_of([garbage[:50], garbage[50:]])
    assert end.status in {"done", "bad_stream", "connection_lost", "server_error"}


async def test_non_json_data_is_bad_stream() -> None:
    end = await _end_of([b"data: <html>oops</html>\n\n"])
    assert end.status == "bad_stream" and "not JSON" in end.message


async def test_json_that_is_not_an_object_is_bad_stream() -> None:
    end = await _end_of([b"data: [1, 2]\n\n"])
    assert end.status == "bad_stream"
