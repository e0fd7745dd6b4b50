"""An event-stream parser that follows the WHATWG format, for checking Privia's streams."""

import re


def parse_events(text):
    """Return the events in text as (event type, data) pairs, in order.

    Lines end at CRLF, LF or CR; comment lines start with a colon; one space
    after a field's colon is dropped; data lines join with LF; an event whose
    data is empty is not dispatched.
    """
    events = []
    event_type, data = "", []
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data:
                events.append((event_type or "message", "\n".join(data)))
            event_type, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event_type = value
        elif field == "data":
            data.append(value)
    return events
