"""The SSE and NDJSON decoders: the spec's rules, and indifference to where chunks are cut."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttt_magic.backends.wire import (
    NDJSONDecoder,
    NDJSONError,
    SSEDecoder,
    SSEEvent,
    aiter_ndjson,
    aiter_sse,
)


def decode_all(data: bytes, cuts: list[int] | None = None) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    pos = 0
    for cut in sorted(set(cuts or [])):
        events += decoder.feed(data[pos:cut])
        pos = cut
    events += decoder.feed(data[pos:])
    return events + decoder.flush()


# ----------------------------------------------------------------------------- SSE rules


def test_basic_events_and_default_type() -> None:
    events = decode_all(b"data: hello\n\nevent: delta\ndata: world\n\n")
    assert events == [SSEEvent(None, "hello"), SSEEvent("delta", "world")]


def test_multiline_data_joined_with_newline() -> None:
    assert decode_all(b"data: a\ndata:b\ndata:  c\n\n") == [SSEEvent(None, "a\nb\n c")]


def test_comments_and_unknown_fields_ignored() -> None:
    events = decode_all(b": keep-alive\nfoo: bar\ndata: x\n: another\n\n")
    assert events == [SSEEvent(None, "x")]


def test_crlf_and_cr_line_endings() -> None:
    assert decode_all(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n") == [
        SSEEvent(None, "a"),
        SSEEvent(None, "b"),
        SSEEvent(None, "c"),
    ]


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    # "\r" ends one chunk, "\n" starts the next: one line end, not a blank line.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEEvent(None, "a\nb")]


def test_utf8_character_split_across_chunks() -> None:
    data = "data: héllo 🌍\n\n".encode()
    split = data.index("🌍".encode()) + 2
    assert decode_all(data, [split]) == [SSEEvent(None, "héllo 🌍")]


def test_id_persists_retry_only_on_its_event() -> None:
    events = decode_all(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nretry: x1\ndata: c\n\n")
    assert events == [
        SSEEvent(None, "a", "7", 1500),
        SSEEvent(None, "b", "7", None),
        SSEEvent(None, "c", "7"),
    ]


def test_event_without_data_is_not_dispatched_and_type_resets() -> None:
    assert decode_all(b"event: ping\n\ndata: x\n\n") == [SSEEvent(None, "x")]


def test_field_without_colon_and_empty_data() -> None:
    assert decode_all(b"data\n\n") == [SSEEvent(None, "")]


def test_bom_stripped_at_start_only() -> None:
    assert decode_all(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent(None, "x")]


def test_flush_keeps_complete_last_event_without_blank_line() -> None:
    assert decode_all(b"data: [DONE]\n") == [SSEEvent(None, "[DONE]")]


def test_flush_drops_event_cut_inside_a_line() -> None:
    assert decode_all(b'data: {"a": 1}\n\ndata: {"trunc') == [SSEEvent(None, '{"a": 1}')]


def test_event_json_helper() -> None:
    assert SSEEvent(None, '{"x": [1]}').json() == {"x": [1]}


# ----------------------------------------------------------------------------- SSE properties

field_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=20
)
sse_events = st.lists(
    st.tuples(
        st.one_of(st.none(), field_text.filter(lambda s: s != "")),
        st.lists(field_text, min_size=1, max_size=3),
    ),
    max_size=6,
)


def serialize(events: list[tuple[str | None, list[str]]], newline: str, comments: bool) -> bytes:
    out = []
    for etype, lines in events:
        if comments:
            out.append(": ping" + newline)
        if etype is not None:
            out.append(f"event: {etype}{newline}")
        out.extend(f"data: {line}{newline}" for line in lines)
        out.append(newline)
    return "".join(out).encode()


@settings(max_examples=200, deadline=None)
@given(
    events=sse_events,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_split_decodes_to_the_same_events(events, newline, comments, cuts) -> None:
    data = serialize(events, newline, comments)
    expected = [SSEEvent(etype or None, "\n".join(lines)) for etype, lines in events]
    assert decode_all(data) == expected
    assert decode_all(data, [c for c in cuts if c <= len(data)]) == expected


@settings(max_examples=100, deadline=None)
@given(events=sse_events)
def test_byte_at_a_time_equals_whole(events) -> None:
    data = serialize(events, "\r\n", True)
    assert decode_all(data, list(range(len(data)))) == decode_all(data)


# ----------------------------------------------------------------------------- NDJSON


def test_ndjson_lines_and_partial_line() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a": 1}\n{"b"') == [{"a": 1}]
    assert decoder.feed(b": 2}\r\n\n") == [{"b": 2}]
    assert decoder.feed(b'{"c": 3}') == []
    assert decoder.flush() == [{"c": 3}]
    assert decoder.flush() == []


def test_ndjson_malformed_line_raises_value_error_subclass() -> None:
    decoder = NDJSONDecoder()
    with pytest.raises(NDJSONError) as info:
        decoder.feed(b'{"ok": true}\n{not json}\n')
    assert isinstance(info.value, ValueError)
    assert "{not json}" in str(info.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(json_values, max_size=8),
    ascii_only=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
)
def test_ndjson_any_split_same_values(values, ascii_only, cuts) -> None:
    data = "".join(json.dumps(v, ensure_ascii=ascii_only) + "\n" for v in values).encode()
    decoder = NDJSONDecoder()
    out, pos = [], 0
    for cut in sorted({c for c in cuts if c <= len(data)}):
        out += decoder.feed(data[pos:cut])
        pos = cut
    out += decoder.feed(data[pos:]) + decoder.flush()
    assert out == values


# ----------------------------------------------------------------------------- async adapters


class FakeResponse:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def aiter_bytes(self):
        for chunk in self.chunks:
            yield chunk


def test_aiter_helpers() -> None:
    async def collect(agen):
        return [item async for item in agen]

    sse = asyncio.run(collect(aiter_sse(FakeResponse([b"data: a", b"\n\ndata: b\n"]))))
    assert [e.data for e in sse] == ["a", "b"]
    nd = asyncio.run(collect(aiter_ndjson(FakeResponse([b'{"x":', b' 1}\n{"y": 2}']))))
    assert nd == [{"x": 1}, {"y": 2}]
