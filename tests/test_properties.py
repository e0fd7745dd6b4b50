"""Property tests (hypothesis) for the pieces with rules: SSE frames, titles,
email normalisation and settings parsing."""

import os
import string
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.auth import email_field, normalize_email
from handlers.chat import TITLE_LENGTH, sse_frame, title_from
from settings import Settings, load_settings
from sse import parse_events

event_names = st.text(string.ascii_letters + "_", min_size=1, max_size=12)


def as_received(text):
    """What an event-stream client gets back: every line break becomes LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@given(st.text())
def test_an_sse_frame_carries_any_text_back(text):
    assert parse_events(sse_frame(text)) == [("message", as_received(text))]


@given(st.lists(st.tuples(st.text(), st.none() | event_names)))
def test_a_stream_of_frames_parses_to_the_same_events(frames):
    stream = "".join(sse_frame(data, event) for data, event in frames)
    expected = [(event or "message", as_received(data)) for data, event in frames]
    assert parse_events(stream) == expected


@given(st.text())
def test_a_title_is_short_single_spaced_and_drawn_from_the_question(question):
    title = title_from(question)
    words = " ".join(question.split())
    cut = len(words) > TITLE_LENGTH
    body = title.removesuffix("...") if cut else title

    assert words.startswith(body)
    assert len(body) <= TITLE_LENGTH
    assert body == " ".join(body.split())
    assert title_from(title) == title or cut
    if not cut:
        assert title == words


@given(st.text())
def test_normalizing_an_email_twice_changes_nothing(email):
    once = normalize_email(email)
    assert normalize_email(once) == once
    assert once == once.strip()


@given(
    st.emails(),
    st.sampled_from([str.upper, str.lower, str.title, str]),
    st.text(" \t\n", max_size=3),
)
def test_case_and_surrounding_space_name_the_same_account(email, change, space):
    plain = email_field({"email": email})
    assert email_field({"email": space + change(email) + space}) == plain
    assert plain == plain.lower()


INT_SETTINGS = {
    "PORT": "port",
    "PRIVIA_TOKEN_TTL_SECONDS": "token_ttl_seconds",
    "PRIVIA_HISTORY_MESSAGES": "history_messages",
    "PRIVIA_PASSWORD_ROUNDS": "password_rounds",
    "PRIVIA_MAX_QUESTION_CHARS": "max_question_chars",
    "PRIVIA_LOGIN_MAX_FAILURES": "login_max_failures",
    "PRIVIA_LOGIN_MAX_FAILURES_PER_ADDRESS": "login_max_failures_per_address",
    "PRIVIA_SIGNUPS_PER_HOUR": "signups_per_hour",
    "PRIVIA_MAX_BODY_BYTES": "max_body_bytes",
}
NO_ENV_FILE = "no-such-file.env"


def load_with(environ, env_file=NO_ENV_FILE):
    names = set(INT_SETTINGS) | {
        "PRIVIA_ALLOWED_ORIGINS",
        "PRIVIA_LOGIN_WINDOW_SECONDS",
    }
    clean = {key: value for key, value in os.environ.items() if key not in names}
    with mock.patch.dict(os.environ, clean | environ, clear=True):
        return load_settings(env_file)


@given(st.dictionaries(st.sampled_from(sorted(INT_SETTINGS)), st.integers(0, 10**9)))
def test_integer_settings_are_read_and_the_rest_keep_defaults(values):
    loaded = load_with({name: str(value) for name, value in values.items()})
    defaults = Settings()
    for name, field in INT_SETTINGS.items():
        assert getattr(loaded, field) == values.get(name, getattr(defaults, field))


@given(st.floats(0, 10**6, allow_nan=False))
def test_the_login_window_takes_a_fraction(seconds):
    loaded = load_with({"PRIVIA_LOGIN_WINDOW_SECONDS": repr(seconds)})
    assert loaded.login_window_seconds == seconds


origins = st.from_regex(
    r"https?://[a-z0-9]{1,10}(\.[a-z]{2,5})?(:[0-9]{2,5})?", fullmatch=True
)


@given(st.lists(origins, min_size=1, max_size=5), st.text(" ", max_size=2))
def test_allowed_origins_split_on_commas_and_drop_spaces(values, space):
    raw = ",".join(space + value + space for value in values)
    assert load_with({"PRIVIA_ALLOWED_ORIGINS": raw}).allowed_origins == tuple(values)


@given(st.text(string.ascii_letters + "-.", min_size=1))
def test_a_setting_that_is_not_a_number_is_refused_by_name(value):
    with pytest.raises(ValueError, match="PRIVIA_LOGIN_MAX_FAILURES"):
        load_with({"PRIVIA_LOGIN_MAX_FAILURES": value})


@settings(max_examples=25)
@given(st.integers(0, 1000), st.integers(0, 1000))
def test_the_environment_wins_over_the_env_file(from_file, from_environment):
    with tempfile.TemporaryDirectory() as folder:
        env_file = Path(folder) / ".env"
        env_file.write_text(f"PRIVIA_SIGNUPS_PER_HOUR={from_file}\n")
        assert load_with({}, env_file).signups_per_hour == from_file
        environ = {"PRIVIA_SIGNUPS_PER_HOUR": str(from_environment)}
        assert load_with(environ, env_file).signups_per_hour == from_environment


def test_every_setting_has_its_environment_variable():
    import dataclasses

    from settings import ENVIRONMENT, Settings

    assert set(ENVIRONMENT) == {field.name for field in dataclasses.fields(Settings)}
