"""Accounts and sign-in: /api/auth/signup, /login, /me and /oauth.

Also the two checks every other area starts with: `authenticated_user_id`
reads the caller's token, `require_user` makes sure that user still exists.
"""

import hmac
import logging
import re
import sqlite3
import uuid

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

from database import write_transaction
from handlers.body import invalid, read_json_object, text_field
from limits import RateLimit
from tokens import TokenError, decode_token, issue_token
from web_session import TOKEN_COOKIE, needs_origin_check, origin_allowed

log = logging.getLogger("privia.auth")

EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
MIN_PASSWORD_LENGTH = 8
# PBKDF2 pre-hashes long passwords, so this only bounds the request, not the work.
MAX_PASSWORD_LENGTH = 1024
OAUTH_PROVIDERS = ("google", "github")
NO_STORE = {"Cache-Control": "no-store"}
USER_COLUMNS = "id, email, full_name, role, provider, avatar_url"
TOO_MANY_FAILURES = "Too many failed sign-ins; try again later"
TOO_MANY_SIGNUPS = "Too many signups from this address; try again later"


# Queries


def get_user(conn: sqlite3.Connection, user_id: str) -> sqlite3.Row | None:
    """Return the user's public fields, or None."""
    return conn.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,)
    ).fetchone()


def get_user_by_email(conn: sqlite3.Connection, email: str) -> sqlite3.Row | None:
    """Return the user's public fields, or None."""
    return conn.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE email = ?", (email,)
    ).fetchone()


def get_login(conn: sqlite3.Connection, email: str) -> tuple[sqlite3.Row, str] | None:
    """Return the user's public fields and password hash, or None."""
    row = conn.execute(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?", (email,)
    ).fetchone()
    if row is None:
        return None
    return get_user(conn, row["id"]), row["password_hash"]


def insert_user(
    conn: sqlite3.Connection, email: str, password_hash: str, full_name: str | None
) -> sqlite3.Row:
    """Create a member with a password; raises IntegrityError if the email is taken."""
    user_id = str(uuid.uuid4())
    with write_transaction(conn):
        conn.execute(
            """
            INSERT INTO users (id, email, full_name, password_hash)
            VALUES (?, ?, ?, ?)
            """,
            (user_id, email, full_name, password_hash),
        )
    return get_user(conn, user_id)


def update_password_hash(conn: sqlite3.Connection, user_id: str, new_hash: str) -> None:
    """Replace a user's password hash (after a login proved the password)."""
    with write_transaction(conn):
        conn.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (new_hash, user_id)
        )


def upsert_oauth_user(
    conn: sqlite3.Connection,
    provider: str,
    account_id: str,
    email: str,
    full_name: str | None,
    avatar_url: str | None,
) -> sqlite3.Row:
    """Find the user by provider account, else by email (linking it), else create one."""
    with write_transaction(conn):
        row = conn.execute(
            "SELECT id FROM users WHERE provider = ? AND provider_account_id = ?",
            (provider, account_id),
        ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT id FROM users WHERE email = ?", (email,)
            ).fetchone()
        if row is None:
            user_id = str(uuid.uuid4())
            conn.execute(
                """
                INSERT INTO users
                    (id, email, full_name, provider, provider_account_id, avatar_url)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                (user_id, email, full_name, provider, account_id, avatar_url),
            )
            log.info("user %s created through %s", user_id, provider)
        else:
            user_id = row["id"]
            conn.execute(
                """
                UPDATE users
                SET provider = ?,
                    provider_account_id = ?,
                    full_name = COALESCE(full_name, ?),
                    avatar_url = COALESCE(?, avatar_url)
                WHERE id = ?
                """,
                (provider, account_id, full_name, avatar_url, user_id),
            )
    return get_user(conn, user_id)


# Helpers for every area


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def request_token(conn: HTTPConnection) -> str | None:
    """The caller's token: the Authorization bearer, else the auth-token cookie.

    A cookie rides along on requests other sites make, so when it is all the
    caller has, a request that can change state must come from our origin.
    """
    scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = conn.cookies.get(TOKEN_COOKIE) or None
    if token is not None and needs_origin_check(conn):
        require_same_origin(conn)
    return token


def require_same_origin(conn: HTTPConnection) -> None:
    """Raise 403 unless the request's Origin is ours or one allowed for CORS."""
    if not origin_allowed(conn, conn.app.state.settings.allowed_origins):
        raise HTTPException(403, "This request must come from a Privia page")


def user_id_from_token(conn: HTTPConnection, token: str | None) -> str:
    """Return the user id the token names; raises 401 when it does not check out."""
    if token is None:
        raise unauthorized("Not authenticated")
    try:
        claims = decode_token(token, conn.app.state.secret_key)
    except TokenError:
        raise unauthorized("Invalid or expired token") from None
    return claims["sub"]


def authenticated_user_id(request: HTTPConnection) -> str:
    """Return the caller's user id from their token; raises 401 without a good one."""
    return user_id_from_token(request, request_token(request))


def require_user(conn: sqlite3.Connection, user_id: str) -> sqlite3.Row:
    """Return the token's user; a token for a deleted user is a 401."""
    user = get_user(conn, user_id)
    if user is None:
        raise unauthorized("User no longer exists")
    return user


def public_user(user: sqlite3.Row) -> dict:
    return {
        "id": user["id"],
        "email": user["email"],
        "full_name": user["full_name"],
        "role": user["role"],
    }


def normalize_email(email: str) -> str:
    return email.strip().lower()


def email_field(body: dict, name: str = "email") -> str:
    email = normalize_email(text_field(body, name, max_length=254))
    if not EMAIL_PATTERN.fullmatch(email):
        raise invalid(f"Field '{name}' is not a valid email address")
    return email


def user_token(request: Request, user: sqlite3.Row) -> str:
    """A fresh access token for the user."""
    settings = request.app.state.settings
    return issue_token(
        user["id"],
        user["email"],
        request.app.state.secret_key,
        settings.token_ttl_seconds,
    )


def token_response(request: Request, user: sqlite3.Row) -> JSONResponse:
    """The answer to a successful sign-in: a token and who it is for."""
    token = user_token(request, user)
    body = {"access_token": token, "token_type": "bearer", "user": public_user(user)}
    return JSONResponse(body, headers=NO_STORE)


async def read_credentials(request: Request) -> tuple[str, str]:
    """Email and password from a form (username, password) or JSON (email, password)."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(
        ("multipart/form-data", "application/x-www-form-urlencoded")
    ):
        async with request.form(max_files=0) as form:
            body = {key: value for key, value in form.items() if isinstance(value, str)}
    else:
        body = await read_json_object(request)
    name = "email" if "email" in body else "username"
    email = normalize_email(text_field(body, name, max_length=254))
    password = text_field(body, "password", strip=False, max_length=MAX_PASSWORD_LENGTH)
    return email, password


def client_address(request: Request) -> str:
    """The caller's address: the socket's, or the proxy's word when uvicorn trusts it."""
    return request.client.host if request.client else "unknown"


def refuse_if_limited(limit: RateLimit, key: str, message: str) -> None:
    """Raise 429 with Retry-After when key has used up its limit."""
    retry_after = limit.retry_after(key)
    if retry_after is not None:
        raise HTTPException(
            429, message, headers={"Retry-After": str(retry_after)} | NO_STORE
        )


# Routes


async def signup(request: Request) -> JSONResponse:
    """Create an account with an email and a password."""
    body = await read_json_object(request)
    email = email_field(body)
    password = text_field(
        body,
        "password",
        strip=False,
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
    )
    full_name = text_field(body, "full_name", required=False, max_length=200)
    state = request.app.state

    address = client_address(request)
    refuse_if_limited(state.signups, address, TOO_MANY_SIGNUPS)
    state.signups.add(address)

    # Refuse a taken email before spending a hash on it; the insert still
    # decides when two signups race.
    if await state.db.run(get_user_by_email, email) is not None:
        raise HTTPException(400, "Email already registered")
    password_hash = await state.hasher.hash_in_worker(password)
    try:
        user = await state.db.write(insert_user, email, password_hash, full_name)
    except sqlite3.IntegrityError:
        raise HTTPException(400, "Email already registered") from None

    log.info("user %s signed up", user["id"])
    return JSONResponse(public_user(user), status_code=201, headers=NO_STORE)


async def check_password(request: Request) -> sqlite3.Row:
    """Return the user whose email and password the request holds; 400 if none."""
    email, password = await read_credentials(request)
    state = request.app.state

    # Checked before any hashing, so a guessing run costs the server nothing
    # once it is refused. Unknown emails count too, or the 429 would tell
    # which accounts exist. Each attempt counts as a failure until its hash
    # says otherwise: counted afterwards, a burst of parallel guesses would
    # all pass the check while the first hashes were still running.
    address = client_address(request)
    refuse_if_limited(state.login_failures_by_account, email, TOO_MANY_FAILURES)
    refuse_if_limited(state.login_failures_by_address, address, TOO_MANY_FAILURES)
    state.login_failures_by_account.add(email)
    state.login_failures_by_address.add(address)

    found = await state.db.run(get_login, email)
    if found is None:
        await state.hasher.dummy_verify_in_worker()
        matches, new_hash = False, None
    else:
        user, stored_hash = found
        matches, new_hash = await state.hasher.verify_in_worker(password, stored_hash)
    if not matches:
        log.info("failed sign-in from %s", address)
        raise HTTPException(400, "Invalid email or password", headers=NO_STORE)
    state.login_failures_by_account.reset(email)
    state.login_failures_by_address.undo(address)

    if new_hash is not None:
        await state.db.write(update_password_hash, user["id"], new_hash)
        log.info(
            "user %s password hash upgraded to %d rounds",
            user["id"],
            state.hasher.rounds,
        )
    return user


async def login(request: Request) -> JSONResponse:
    """Exchange an email and password for an access token."""
    user = await check_password(request)
    return token_response(request, user)


async def me(request: Request) -> JSONResponse:
    """Return the signed-in user."""
    user_id = authenticated_user_id(request)
    user = await request.app.state.db.run(require_user, user_id)
    body = public_user(user) | {
        "provider": user["provider"],
        "avatar_url": user["avatar_url"],
    }
    return JSONResponse(body, headers=NO_STORE)


async def oauth_sign_in(request: Request) -> JSONResponse:
    """Sign in a user whom the web frontend has signed in with Google or GitHub."""
    expected = request.app.state.settings.oauth_secret
    if not expected:
        raise HTTPException(
            403,
            "OAuth sign-in is disabled: set PRIVIA_OAUTH_SECRET on the server and "
            "send the same value in the X-Privia-OAuth-Secret header",
        )
    given = request.headers.get("x-privia-oauth-secret", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "Invalid X-Privia-OAuth-Secret header")

    body = await read_json_object(request)
    provider = text_field(body, "provider", min_length=1).lower()
    if provider not in OAUTH_PROVIDERS:
        raise invalid(f"Field 'provider' must be one of: {', '.join(OAUTH_PROVIDERS)}")
    # GitHub account ids are numbers; keep them as text like every other id.
    if isinstance(body.get("provider_account_id"), int) and not isinstance(
        body["provider_account_id"], bool
    ):
        body["provider_account_id"] = str(body["provider_account_id"])
    account_id = text_field(body, "provider_account_id", min_length=1, max_length=255)
    email = email_field(body)
    full_name = text_field(body, "full_name", required=False, max_length=200)
    avatar_url = text_field(body, "avatar_url", required=False, max_length=2048)

    user = await request.app.state.db.write(
        upsert_oauth_user, provider, account_id, email, full_name, avatar_url or None
    )
    return token_response(request, user)
