"""Sign-in with Google or GitHub: the OAuth 2 code flow with state and PKCE.

Authlib builds the authorization URL, makes the PKCE challenge and trades the
code for a token; this module knows each provider's addresses and how to read
the signed-in account from its answer. Handlers keep the flow's state between
the two legs in a short-lived signed cookie (see `flow_token`).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

from settings import Settings

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

FLOW_SECONDS = 600
FLOW_AUDIENCE = "privia-oauth-flow"
HTTP_TIMEOUT_SECONDS = 10.0


class OAuthError(Exception):
    """The provider refused, answered oddly, or vouched for no usable email."""


@dataclass(frozen=True)
class Account:
    """Who the provider says signed in."""

    account_id: str
    email: str
    full_name: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class Provider:
    name: str
    label: str
    authorize_url: str
    token_url: str
    userinfo_url: str
    scope: str
    # GitHub lists the account's emails at a second address; Google has none.
    emails_url: str | None = None
    client_id: str = ""
    client_secret: str = ""


def google_account(profile: dict, emails: list[dict]) -> Account:
    """Read an OpenID Connect userinfo answer; the email must be verified."""
    if not profile.get("email") or profile.get("email_verified") is not True:
        raise OAuthError("Google did not vouch for an email address")
    return Account(
        str(profile["sub"]),
        profile["email"],
        profile.get("name"),
        profile.get("picture"),
    )


def github_account(profile: dict, emails: list[dict]) -> Account:
    """Read GitHub's user answer, taking the primary verified email from its list."""
    verified = [e for e in emails if e.get("verified") and e.get("email")]
    primary = [e for e in verified if e.get("primary")] or verified
    if not primary or "id" not in profile:
        raise OAuthError("GitHub did not vouch for an email address")
    return Account(
        str(profile["id"]),
        primary[0]["email"],
        profile.get("name") or profile.get("login"),
        profile.get("avatar_url"),
    )


ACCOUNT_READERS: dict[str, Callable[[dict, list[dict]], Account]] = {
    "google": google_account,
    "github": github_account,
}


def configured_providers(settings: Settings) -> dict[str, Provider]:
    """The providers whose client id and secret the operator has set."""
    known = [
        Provider(
            "google",
            "Google",
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
            "https://openidconnect.googleapis.com/v1/userinfo",
            "openid email profile",
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
        ),
        Provider(
            "github",
            "GitHub",
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
            "https://api.github.com/user",
            "read:user user:email",
            emails_url="https://api.github.com/user/emails",
            client_id=settings.github_client_id,
            client_secret=settings.github_client_secret,
        ),
    ]
    return {p.name: p for p in known if p.client_id and p.client_secret}


def client_for(provider: Provider, redirect_uri: str) -> "AsyncOAuth2Client":
    # Imported here: Authlib and its HTTP client add some 15 MiB to a process
    # that, without Google or GitHub configured, never signs anyone in this way.
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(
        provider.client_id,
        provider.client_secret,
        scope=provider.scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT_SECONDS,
    )


async def authorization_url(
    provider: Provider, redirect_uri: str
) -> tuple[str, str, str]:
    """Return where to send the browser, the state and the PKCE code verifier."""
    from authlib.common.security import generate_token

    verifier = generate_token(64)
    async with client_for(provider, redirect_uri) as client:
        url, state = client.create_authorization_url(
            provider.authorize_url, code_verifier=verifier
        )
    return url, state, verifier


async def fetch_account(
    provider: Provider, redirect_uri: str, code: str, verifier: str
) -> Account:
    """Trade the code for a token, then ask the provider who signed in."""
    async with client_for(provider, redirect_uri) as client:
        try:
            await client.fetch_token(
                provider.token_url,
                code=code,
                code_verifier=verifier,
                headers={"Accept": "application/json"},
            )
            profile = await get_json(client, provider.userinfo_url)
            emails = []
            if provider.emails_url:
                emails = await get_json(client, provider.emails_url)
        except OAuthError:
            raise
        except Exception as error:
            # Authlib and httpx raise many kinds; to the user they all mean one thing.
            raise OAuthError(f"{provider.label} sign-in failed: {type(error).__name__}")
    if not isinstance(profile, dict) or not isinstance(emails, list):
        raise OAuthError(f"{provider.label} answered in an unexpected shape")
    return ACCOUNT_READERS[provider.name](profile, emails)


async def get_json(client: "AsyncOAuth2Client", url: str):
    response = await client.get(url, headers={"Accept": "application/json"})
    if response.status_code != 200:
        raise OAuthError(f"{url} answered {response.status_code}")
    return response.json()


def flow_token(provider: str, state: str, verifier: str, secret: str) -> str:
    """Sign what the callback must check, so it can live in a cookie."""
    now = int(time.time())
    claims = {
        "aud": FLOW_AUDIENCE,
        "provider": provider,
        "state": state,
        "verifier": verifier,
        "iat": now,
        "exp": now + FLOW_SECONDS,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def read_flow_token(token: str, secret: str) -> dict:
    """Return the flow's claims; raises OAuthError if forged, stale or missing."""
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=FLOW_AUDIENCE,
            options={"require": ["exp", "aud", "state", "verifier", "provider"]},
        )
    except jwt.PyJWTError:
        raise OAuthError("The sign-in took too long or did not start here") from None
