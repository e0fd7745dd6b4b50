"""Access tokens: HS256 JWTs, and the signing key they are made with."""

import functools
import logging
import os
import secrets
import time
from pathlib import Path

import jwt

ALGORITHM = "HS256"
# A generated key is 64 characters; a kept key shorter than this was cut or edited.
MIN_KEPT_KEY_LENGTH = 32
# Tokens whose signature has been checked, kept so a client's every request
# does not pay for the check again; a few hundred bytes each.
VERIFIED_TOKENS_KEPT = 1024

log = logging.getLogger("privia.tokens")


class TokenError(Exception):
    """The token is missing a claim, expired, forged or not a JWT; the API says 401."""


def issue_token(user_id: str, email: str, secret: str, ttl_seconds: int) -> str:
    """Return a signed token naming the user, valid for ttl_seconds."""
    now = int(time.time())
    claims = {"sub": user_id, "email": email, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, secret: str) -> dict:
    """Return the token's claims, or raise TokenError for any fault at all."""
    claims = verified_claims(token, secret)
    # The cache outlives a token's expiry, so expiry is checked on every call,
    # the same way PyJWT checks it.
    if int(claims["exp"]) <= time.time():
        raise TokenError("Signature has expired")
    return dict(claims)


@functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def verified_claims(token: str, secret: str) -> dict:
    """Check the token's signature and claims with PyJWT; remembered per token."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as error:
        raise TokenError(str(error)) from None
    if not isinstance(claims.get("sub"), str):
        raise TokenError("the sub claim is not a string")
    return claims


def checked_key(path: Path, key: str) -> str:
    """Refuse a kept key too short to be safe, such as an emptied file."""
    if len(key) < MIN_KEPT_KEY_LENGTH:
        raise RuntimeError(
            f"the signing key in {path} is {len(key)} characters long; delete the "
            "file to have a new one made (tokens made with the old key stop working)"
        )
    return key


def load_or_create_secret(path: Path) -> str:
    """Return the signing key kept at path, creating it (owner-only) the first time."""
    try:
        return checked_key(path, path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Write a private file, then link it into place: link refuses to replace
    # an existing file, so when two processes start at once both end up with
    # the key of whichever linked first, and nobody reads a half-written one.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        return checked_key(path, path.read_text().strip())
    finally:
        draft.unlink()
    log.info(
        "generated a signing key and kept it in %s (readable by its owner only)", path
    )
    return key
