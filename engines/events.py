"""Reading a text/event-stream (Server-Sent Events) as it arrives over the network.

The bytes come in pieces of any size: an event may be split across reads, one
read may hold several events, and a multi-byte UTF-8 character may be cut in
two. `EventStreamParser` takes the pieces in order and hands back each event
once its closing blank line has arrived, following the WHATWG format.
"""

import codecs
import re
from dataclasses import dataclass

LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ServerEvent:
    """One dispatched event: its type ("message" unless named) and its data."""

    event: str
    data: str


class EventStreamParser:
    """Feed it the stream's bytes in order; it returns the events they complete."""

    def __init__(self) -> None:
        # A bad byte becomes U+FFFD rather than failing the whole reply.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = False
        self._event = ""
        self._data: list[str] = []

    def feed(self, piece: bytes) -> list[ServerEvent]:
        """Take the next piece of the stream; return the events it completed."""
        return self._read(self._decoder.decode(piece), final=False)

    def close(self) -> list[ServerEvent]:
        """The stream has ended; return any event its last bytes completed.

        An event without its closing blank line is dropped, as the format says.
        """
        return self._read(self._decoder.decode(b"", final=True), final=True)

    def _read(self, text: str, final: bool) -> list[ServerEvent]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if not final and "\n" not in text and "\r" not in text:
            # No line ends here: skip rescanning what is pending, as tiny reads would.
            self._pending += text
            return []
        text = self._pending + text

        events = []
        position = 0
        for match in LINE_END.finditer(text):
            # A CR at the very end may be the first half of a CRLF still on its way.
            if match.group() == "\r" and match.end() == len(text) and not final:
                break
            event = self._line(text[position : match.start()])
            if event is not None:
                events.append(event)
            position = match.end()
        self._pending = text[position:]
        return events

    def _line(self, line: str) -> ServerEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None

        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # "id" and "retry" matter only to a client that reconnects, which this is not.
        return None

    def _dispatch(self) -> ServerEvent | None:
        event = None
        if self._data:
            event = ServerEvent(self._event or "message", "\n".join(self._data))
        self._event = ""
        self._data = []
        return event
