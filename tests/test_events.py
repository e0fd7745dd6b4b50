from hypothesis import given
from hypothesis import strategies as st

from engines.events import EventStreamParser, ServerEvent


def parse(*pieces):
    parser = EventStreamParser()
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.close()


def test_one_event():
    assert parse(b"data: hello\n\n") == [ServerEvent("message", "hello")]


def test_several_events_in_one_read():
    events = parse(b"data: one\n\ndata: two\n\nevent: error\ndata: three\n\n")
    assert events == [
        ServerEvent("message", "one"),
        ServerEvent("message", "two"),
        ServerEvent("error", "three"),
    ]


def test_an_event_is_given_only_once_its_blank_line_arrives():
    parser = EventStreamParser()
    assert parser.feed(b"data: hel") == []
    assert parser.feed(b"lo\n") == []
    assert parser.feed(b"\n") == [ServerEvent("message", "hello")]


def test_a_character_split_between_reads():
    encoded = "data: 🦊é\n\n".encode()
    fox = encoded.index("🦊".encode())
    pieces = encoded[: fox + 1], encoded[fox + 1 : fox + 3], encoded[fox + 3 :]
    assert parse(*pieces) == [ServerEvent("message", "🦊é")]


def test_comments_and_keep_alives_are_skipped():
    events = parse(b": keep-alive\n\n:\n\ndata: x\n: between\n\n")
    assert events == [ServerEvent("message", "x")]


def test_data_lines_join_with_a_line_feed():
    assert parse(b"data: a\ndata:b\ndata\n\n") == [ServerEvent("message", "a\nb\n")]


def test_only_one_space_after_the_colon_is_dropped():
    assert parse(b"data:  two\n\n") == [ServerEvent("message", " two")]


def test_every_line_ending_is_understood():
    events = parse(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n")
    assert [event.data for event in events] == ["a", "b", "c"]


def test_a_crlf_split_between_reads_is_one_line_ending():
    events = parse(b"data: a\r", b"\n\r", b"\n")
    assert events == [ServerEvent("message", "a")]


def test_a_leading_byte_order_mark_is_dropped():
    assert parse(b"\xef\xbb", b"\xbfdata: a\n\n") == [ServerEvent("message", "a")]


def test_an_unfinished_event_at_the_end_is_dropped():
    assert parse(b"data: a\n\ndata: b\n") == [ServerEvent("message", "a")]


def test_an_invalid_byte_becomes_a_replacement_character():
    assert parse(b"data: a\xffb\n\n") == [ServerEvent("message", "a\ufffdb")]


def test_ids_and_retries_are_ignored():
    assert parse(b"id: 7\nretry: 10\ndata: a\n\n") == [ServerEvent("message", "a")]


STREAM = (
    ': ping\r\n\r\ndata: {"text": "caf\xc3\xa9 \xf0\x9f\xa6\x8a"}\n\n'
    "event: done\ndata: a\ndata: b\r\rdata: [DONE]\r\n\r\n"
).encode("latin-1")


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_split_of_the_stream_gives_the_same_events(cuts):
    cuts = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0] + cuts, cuts + [len(STREAM)])]
    assert parse(*pieces) == parse(STREAM)
    assert len(parse(STREAM)) == 3
