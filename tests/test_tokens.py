import time

import jwt
import pytest

import tokens
from tokens import TokenError, decode_token, issue_token

KEY = "a-test-signing-key-that-is-long-enough"


def test_a_remembered_token_still_expires(monkeypatch):
    token = issue_token("u", "u@example.com", KEY, ttl_seconds=60)
    assert decode_token(token, KEY)["sub"] == "u"

    later = time.time() + 61
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    with pytest.raises(TokenError, match="expired"):
        decode_token(token, KEY)


def test_a_remembered_token_is_not_valid_under_another_key():
    token = issue_token("u", "u@example.com", KEY, ttl_seconds=60)
    decode_token(token, KEY)
    with pytest.raises(TokenError):
        decode_token(token, "another-key-of-sufficient-length!!")


def test_an_exp_given_as_text_is_read_as_a_number():
    claims = {"sub": "u", "exp": str(int(time.time()) - 10)}
    with pytest.raises(TokenError, match="expired"):
        decode_token(jwt.encode(claims, KEY, "HS256"), KEY)


def test_changing_the_claims_returned_does_not_change_the_next_answer():
    token = issue_token("u", "u@example.com", KEY, ttl_seconds=60)
    decode_token(token, KEY)["sub"] = "someone else"
    assert decode_token(token, KEY)["sub"] == "u"
