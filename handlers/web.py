"""The web app's routes: the pages (/, /login, /signup, /app), the browser
session (/auth/sign-in, /auth/sign-out) and sign-in with Google or GitHub
(/auth/providers, /auth/{provider}, /auth/{provider}/callback).

Whether someone is signed in is decided here, on the server, from the
auth-token cookie, so the workspace never reaches a signed-out visitor.
"""

import logging
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

import oauth
from handlers.auth import (
    check_password,
    get_user,
    normalize_email,
    public_user,
    require_same_origin,
    upsert_oauth_user,
    user_id_from_token,
    user_token,
)
from web_files import PAGE_HEADERS, page_path
from web_session import TOKEN_COOKIE, clear_session_cookie, set_session_cookie

log = logging.getLogger("privia.web")

FLOW_COOKIE = "oauth-flow"
FLOW_COOKIE_PATH = "/auth/"


async def signed_in(request: Request) -> bool:
    """True when the cookie holds a good token for a user who still exists."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return False
    try:
        user_id = user_id_from_token(request, token)
    except HTTPException:
        return False
    return await request.app.state.db.run(get_user, user_id) is not None


def page(name: str) -> FileResponse:
    return FileResponse(page_path(name), media_type="text/html", headers=PAGE_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


# Pages


async def show_landing(request: Request) -> Response:
    """The landing page; the workspace for someone already signed in."""
    return redirect("/app") if await signed_in(request) else page("index")


async def show_login(request: Request) -> Response:
    """The sign-in page; the workspace for someone already signed in."""
    return redirect("/app") if await signed_in(request) else page("login")


async def show_signup(request: Request) -> Response:
    """The sign-up page; the workspace for someone already signed in."""
    return redirect("/app") if await signed_in(request) else page("signup")


async def show_workspace(request: Request) -> Response:
    """The chat workspace; the sign-in page for anyone signed out."""
    if await signed_in(request):
        return page("app")
    response = redirect("/login")
    if TOKEN_COOKIE in request.cookies:
        # The token is stale or its user is gone: drop it so pages stop trying it.
        clear_session_cookie(response, request)
    return response


# The browser session


async def sign_in(request: Request) -> JSONResponse:
    """Check an email and password and keep the session in an HttpOnly cookie."""
    # Without this, another site could sign a visitor into an account it controls.
    require_same_origin(request)
    # The login throttles live in check_password, so guessing here counts too.
    user = await check_password(request)

    body = {"user": public_user(user)}
    response = JSONResponse(body, headers={"Cache-Control": "no-store"})
    ttl = request.app.state.settings.token_ttl_seconds
    set_session_cookie(response, request, user_token(request, user), ttl)
    log.info("user %s signed in to the web app", user["id"])
    return response


async def sign_out(request: Request) -> Response:
    """Forget the browser's session."""
    require_same_origin(request)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    clear_session_cookie(response, request)
    return response


# Google and GitHub


async def list_providers(request: Request) -> JSONResponse:
    """The sign-in providers the operator has configured, for the buttons."""
    providers = request.app.state.oauth_providers.values()
    return JSONResponse([{"name": p.name, "label": p.label} for p in providers])


def provider_or_404(request: Request) -> oauth.Provider:
    provider = request.app.state.oauth_providers.get(request.path_params["provider"])
    if provider is None:
        raise HTTPException(404, "This sign-in provider is not configured")
    return provider


async def start_oauth(request: Request) -> Response:
    """Send the browser to the provider, remembering state and PKCE verifier."""
    provider = provider_or_404(request)
    callback = str(request.url_for("finish_oauth", provider=provider.name))

    url, state, verifier = await oauth.authorization_url(provider, callback)
    secret = request.app.state.secret_key
    flow = oauth.flow_token(provider.name, state, verifier, secret)

    response = redirect(url)
    response.set_cookie(
        FLOW_COOKIE,
        flow,
        max_age=oauth.FLOW_SECONDS,
        path=FLOW_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def login_with_error(error: str) -> RedirectResponse:
    """Back to the sign-in page, which shows the error, with the flow forgotten."""
    response = redirect("/login?" + urlencode({"error": error}))
    response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    return response


async def finish_oauth(request: Request) -> Response:
    """Check the state, trade the code for the account, then sign that user in."""
    provider = provider_or_404(request)
    params = request.query_params
    if "error" in params:
        return login_with_error("oauth_denied")

    try:
        flow = oauth.read_flow_token(
            request.cookies.get(FLOW_COOKIE, ""), request.app.state.secret_key
        )
    except oauth.OAuthError:
        return login_with_error("oauth_state")
    # The state ties this callback to the browser that started the flow.
    if flow["provider"] != provider.name or flow["state"] != params.get("state"):
        log.info("%s sign-in refused: the state did not match", provider.name)
        return login_with_error("oauth_state")
    code = params.get("code")
    if not code:
        return login_with_error("oauth_failed")

    callback = str(request.url_for("finish_oauth", provider=provider.name))
    try:
        account = await oauth.fetch_account(provider, callback, code, flow["verifier"])
    except oauth.OAuthError as error:
        log.info("%s sign-in failed: %s", provider.name, error)
        return login_with_error("oauth_failed")

    user = await request.app.state.db.write(
        upsert_oauth_user,
        provider.name,
        account.account_id,
        normalize_email(account.email),
        account.full_name,
        account.avatar_url,
    )
    response = redirect("/app")
    response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    ttl = request.app.state.settings.token_ttl_seconds
    set_session_cookie(response, request, user_token(request, user), ttl)
    log.info("user %s signed in to the web app through %s", user["id"], provider.name)
    return response
