"""The openai engine on its own, against the test model server."""

import asyncio
import json

import httpx
import pytest

from engines import EngineError, Turn
from engines.openai import OpenAIEngine
from live import free_port
from model_server import DONE, MODEL, USAGE, Script, chunk, completion, pieces_of

KEY = "sk-test-key-that-must-never-show"


def make_engine(base_url, **options):
    settings = {"model": "asked-model", "api_key": KEY} | options
    return OpenAIEngine(base_url, **settings)


async def collect(engine, question="Hi", history=()):
    """Read a whole reply: its chunks and the EngineError that ended it, if any."""
    reply = engine.reply(question, history)
    parts, error = [], None
    try:
        async for part in reply:
            parts.append(part)
    except EngineError as failure:
        error = failure
    return reply, parts, error


def ask(base_url, question="Hi", history=(), **options):
    async def run():
        engine = make_engine(base_url, **options)
        try:
            return await collect(engine, question, history)
        finally:
            await engine.aclose()

    return asyncio.run(run())


# What is sent


def test_the_system_prompt_history_and_question_arrive_as_sent(model_server):
    history = [Turn("user", "Earlier question"), Turn("assistant", "Earlier\nanswer")]
    ask(
        model_server.base_url,
        "Now this?",
        history,
        system_prompt="Be brief.",
        temperature=0.2,
        max_tokens=50,
    )

    (request,) = model_server.app.completions()
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "asked-model"
    assert request.body["stream"] is True
    assert request.body["temperature"] == 0.2
    assert request.body["max_tokens"] == 50
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Earlier question"},
        {"role": "assistant", "content": "Earlier\nanswer"},
        {"role": "user", "content": "Now this?"},
    ]
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_unset_options_are_left_to_the_server(model_server):
    ask(model_server.base_url, api_key="")

    (request,) = model_server.app.completions()
    assert request.body["messages"] == [{"role": "user", "content": "Hi"}]
    assert "temperature" not in request.body and "max_tokens" not in request.body
    assert "authorization" not in request.headers


# Reading the stream


def test_the_deltas_come_through_in_order_with_the_metadata(model_server):
    model_server.app.script = Script([completion("Hello", ", ", "world")])
    reply, parts, error = ask(model_server.base_url)

    assert error is None
    assert parts == ["Hello", ", ", "world"]
    (request,) = model_server.app.completions()
    assert not request.hung_up.is_set()
    assert reply.metadata() == {
        "mode": "chat",
        "model": MODEL,
        "sources": [],
        "usage": USAGE,
    }


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
def test_any_split_of_the_stream_gives_the_same_reply(model_server, size):
    body = completion("Grüße ", "🦊 and ", "ＣＪＫ", "\n")
    model_server.app.script = Script(pieces_of(body, size))
    reply, parts, error = ask(model_server.base_url)

    assert error is None
    assert "".join(parts) == "Grüße 🦊 and ＣＪＫ\n"
    assert reply.usage == USAGE


def test_comments_keep_alives_and_role_chunks_are_skipped(model_server):
    body = (
        b": OPENROUTER PROCESSING\n\n"
        + b'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}\n\n'
        + b":\n\n"
        + chunk("only")
        + b": ping\r\n\r\n"
        + chunk(finish_reason="stop")
        + DONE
    )
    model_server.app.script = Script([body])
    reply, parts, error = ask(model_server.base_url)
    assert (parts, error) == (["only"], None)


def test_nothing_after_done_is_read(model_server):
    model_server.app.script = Script([chunk("a"), DONE, chunk("after")])
    _, parts, error = ask(model_server.base_url)
    assert (parts, error) == (["a"], None)


def test_a_finish_reason_without_done_ends_the_reply(model_server):
    model_server.app.script = Script([chunk("a"), chunk(finish_reason="length")])
    _, parts, error = ask(model_server.base_url)
    assert (parts, error) == (["a"], None)


def test_a_stream_that_stops_short_is_an_error(model_server):
    model_server.app.script = Script([chunk("a"), chunk("b")])
    _, parts, error = ask(model_server.base_url)
    assert parts == ["a", "b"]
    assert "ended the stream before the reply was done" in str(error)


def test_without_usage_the_reply_has_none(model_server):
    model_server.app.script = Script([completion("a", usage=None)])
    reply, _, error = ask(model_server.base_url)
    assert error is None
    assert "usage" not in reply.metadata()


def test_a_server_that_does_not_name_the_model_leaves_the_asked_one(model_server):
    choice = {"delta": {"content": "a"}, "finish_reason": "stop"}
    body = f"data: {json.dumps({'choices': [choice]})}\n\n".encode()
    model_server.app.script = Script([body, DONE])
    reply, parts, error = ask(model_server.base_url)
    assert (parts, error, reply.model) == (["a"], None, "asked-model")


def test_an_unstreamed_completion_is_read_whole(model_server):
    message = {"role": "assistant", "content": "All at once"}
    whole = {
        "model": "whole-model",
        "choices": [{"index": 0, "message": message}],
        "usage": {"total_tokens": 4},
    }
    body = json.dumps(whole).encode()
    model_server.app.script = Script([body], content_type="application/json")
    reply, parts, error = ask(model_server.base_url)
    assert (parts, error) == (["All at once"], None)
    assert (reply.model, reply.usage) == ("whole-model", {"total_tokens": 4})


# Failures


@pytest.mark.parametrize(
    "data",
    [b"data: {not json\n\n", b"data: [1, 2]\n\n", b'data: {"choices": 3}\n\n'],
)
def test_a_malformed_stream_is_an_error(model_server, data):
    model_server.app.script = Script([chunk("a"), data, DONE])
    _, parts, error = ask(model_server.base_url)
    assert parts == ["a"]
    assert "malformed" in str(error)


def test_an_error_sent_in_the_stream_is_passed_on(model_server):
    error_chunk = b'data: {"error": {"message": "model crashed: out of memory"}}\n\n'
    model_server.app.script = Script([chunk("a"), error_chunk])
    _, parts, error = ask(model_server.base_url)
    assert parts == ["a"]
    assert str(error) == (
        "The model server reported an error: model crashed: out of memory"
    )


@pytest.mark.parametrize(
    "status, words",
    [
        (401, "refused the API key (401)"),
        (403, "refused the API key (403)"),
        (404, "no model 'asked-model' (404)"),
        (429, "rate limiting requests or out of quota (429); try again in 7 seconds"),
        (400, "rejected the request (400): context too long"),
        (500, "failed (500): context too long"),
        (503, "failed (503): context too long"),
    ],
)
def test_each_refusal_is_named_without_the_key(model_server, status, words):
    body = b'{"error": {"message": "context too long", "key": "%s"}}' % KEY.encode()
    headers = {"retry-after": "7"}
    model_server.app.script = Script([body], status, "application/json", headers)
    _, parts, error = ask(model_server.base_url)

    assert parts == []
    assert words in str(error)
    assert KEY not in str(error)


def test_an_upstream_message_quoting_the_key_is_redacted(model_server):
    body = b'{"error": {"message": "bad key %s"}}' % KEY.encode()
    model_server.app.script = Script([body], 400, "application/json")
    _, _, error = ask(model_server.base_url)
    assert str(error) == (
        "The model server rejected the request (400): bad key [redacted]"
    )


def test_a_refused_connection_is_an_error():
    _, parts, error = ask(f"http://127.0.0.1:{free_port()}/v1")
    assert parts == []
    assert str(error).startswith("Cannot connect to the model server")


def test_a_stalled_server_times_out(model_server):
    model_server.app.script = Script([chunk("a")], then="stall")
    _, parts, error = ask(model_server.base_url, read_timeout=1)
    assert parts == ["a"]
    assert str(error) == "The model server sent nothing for 1s and was given up on"


def test_a_connection_dropped_mid_stream_is_an_error(model_server):
    model_server.app.script = Script([chunk("a"), chunk("b")], then="drop")
    _, parts, error = ask(model_server.base_url)
    assert parts == ["a", "b"]
    assert "dropped the connection" in str(error)


def test_a_connect_timeout_is_named():
    # A connect timeout needs an address that swallows packets; none is reliably
    # at hand on a test machine, so the wording is checked on its own.
    engine = make_engine("http://127.0.0.1:9/v1", connect_timeout=2.5)
    message = engine.describe_failure(httpx.ConnectTimeout("timed out"))
    assert message == "The model server did not accept a connection within 2.5s"


# Stopping


async def hung_up(model_server):
    """Whether the server saw its one completion request end early (within 5 s)."""
    (request,) = model_server.app.completions()
    return await asyncio.to_thread(request.hung_up.wait, 5)


def test_closing_a_reply_ends_the_upstream_request(model_server):
    model_server.app.script = Script([chunk("first")], then="stall")

    async def run():
        engine = make_engine(model_server.base_url)
        try:
            reply = engine.reply("Hi", [])
            first = await reply.__aiter__().__anext__()
            await reply.aclose()
            # Checked before the engine closes its pool, which would end it anyway.
            return first, await hung_up(model_server)
        finally:
            await engine.aclose()

    assert asyncio.run(run()) == ("first", True)


def test_cancelling_the_reading_task_ends_the_upstream_request(model_server):
    model_server.app.script = Script([chunk("first")], then="stall")

    async def run():
        engine = make_engine(model_server.base_url)
        reply = engine.reply("Hi", [])
        parts = []

        async def read():
            async for part in reply:
                parts.append(part)

        try:
            task = asyncio.create_task(read())
            while not parts:
                await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return parts, await hung_up(model_server)
        finally:
            await engine.aclose()

    assert asyncio.run(run()) == (["first"], True)


def test_concurrent_replies_keep_their_own_text_and_metadata(model_server):
    model_server.app.scripts = {
        "one": Script(pieces_of(completion("a1", "a2", "a3"), 40), pause=0.01),
        "two": Script([completion("b1", "b2", usage=None)], pause=0.01),
    }

    async def run():
        engine = make_engine(model_server.base_url)
        try:
            return await asyncio.gather(collect(engine, "one"), collect(engine, "two"))
        finally:
            await engine.aclose()

    (one, one_parts, one_error), (two, two_parts, two_error) = asyncio.run(run())
    assert (one_parts, one_error, one.usage) == (["a1", "a2", "a3"], None, USAGE)
    assert (two_parts, two_error, two.usage) == (["b1", "b2"], None, None)


# Settings and health


@pytest.mark.parametrize(
    "base_url, model, words",
    [
        ("", "m", "PRIVIA_OPENAI_BASE_URL"),
        ("127.0.0.1:11434/v1", "m", "PRIVIA_OPENAI_BASE_URL"),
        ("ftp://example.com/v1", "m", "PRIVIA_OPENAI_BASE_URL"),
        ("http://127.0.0.1:11434/v1", " ", "PRIVIA_MODEL"),
    ],
)
def test_bad_settings_are_refused_at_start(base_url, model, words):
    with pytest.raises(ValueError, match=words):
        OpenAIEngine(base_url, model)


def test_the_key_stays_out_of_the_engines_repr():
    engine = make_engine("http://user:password@127.0.0.1:11434/v1")
    assert repr(engine) == (
        "OpenAIEngine(base_url='http://127.0.0.1:11434/v1', model='asked-model')"
    )
    assert KEY not in repr(engine)


@pytest.mark.parametrize(
    "models_status, expected",
    [
        (200, {"status": "ok"}),
        (500, {"status": "failing", "detail": "GET /models answered 500"}),
    ],
)
def test_the_probe_asks_for_the_model_list(model_server, models_status, expected):
    model_server.app.models_status = models_status

    async def run():
        engine = make_engine(model_server.base_url)
        try:
            return await engine.probe()
        finally:
            await engine.aclose()

    result = asyncio.run(run())
    assert result.pop("checked_at")
    assert result == expected
    (request,) = model_server.app.requests
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_the_probe_of_an_absent_server_says_unreachable():
    async def run():
        engine = make_engine(f"http://127.0.0.1:{free_port()}/v1")
        try:
            return await engine.probe()
        finally:
            await engine.aclose()

    result = asyncio.run(run())
    assert result["status"] == "unreachable"
    assert result["detail"].startswith("Cannot connect")
