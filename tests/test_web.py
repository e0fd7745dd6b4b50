"""The web app's server side: pages and their guard, the session cookie, headers."""

import pytest
from starlette.testclient import TestClient

from conftest import PASSWORD, AuthActions
from oauth import flow_token
from web_files import WEB_DIR

OURS = {"Origin": "http://testserver"}


def sign_in(client, email="ada@example.com", password=PASSWORD):
    body = {"email": email, "password": password}
    return client.post("/auth/sign-in", json=body, headers=OURS)


@pytest.mark.parametrize("path", ["/", "/login", "/signup"])
def test_signed_out_pages_are_served_with_a_strict_csp(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "http" not in csp and "unsafe" not in csp
    assert response.headers["cache-control"] == "no-store"


def test_the_workspace_sends_a_signed_out_visitor_to_login(client):
    response = client.get("/app", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


@pytest.mark.parametrize("path", ["/", "/login", "/signup"])
def test_a_signed_in_visitor_goes_to_the_workspace(client, auth, path):
    auth.signup()
    assert sign_in(client).status_code == 200
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/app"
    assert client.get("/app").status_code == 200


def test_a_stale_cookie_is_dropped_on_the_way_to_login(client):
    client.cookies.set("auth-token", "not-a-token")
    response = client.get("/app", follow_redirects=False)
    assert response.headers["location"] == "/login"
    assert 'auth-token=""' in response.headers["set-cookie"]
    assert client.get("/login").status_code == 200


def test_sign_in_sets_an_httponly_lax_cookie_that_the_api_accepts(client, auth):
    user = auth.signup()
    response = sign_in(client)

    assert response.status_code == 200
    assert response.json() == {"user": user}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("auth-token=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    assert "access_token" not in response.text
    assert client.get("/api/auth/me").json()["email"] == "ada@example.com"


def test_the_cookie_is_secure_over_https(app):
    with TestClient(app, base_url="https://testserver") as client:
        AuthActions(client).signup()
        body = {"email": "ada@example.com", "password": PASSWORD}
        response = client.post(
            "/auth/sign-in", json=body, headers={"Origin": "https://testserver"}
        )
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_password_is_the_usual_400(client, auth):
    auth.signup()
    response = sign_in(client, password="not the password")
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid email or password"}
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://evil.example"}])
def test_sign_in_and_out_must_come_from_our_pages(client, auth, headers):
    auth.signup()
    body = {"email": "ada@example.com", "password": PASSWORD}
    response = client.post("/auth/sign-in", json=body, headers=headers)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert client.post("/auth/sign-out", headers=headers).status_code == 403


def test_sign_out_clears_the_cookie(client, auth):
    auth.signup()
    sign_in(client)
    response = client.post("/auth/sign-out", headers=OURS)
    assert response.status_code == 204
    assert 'auth-token=""' in response.headers["set-cookie"]
    assert client.get("/api/auth/me").status_code == 401
    assert client.get("/app", follow_redirects=False).headers["location"] == "/login"


def test_bearer_login_keeps_its_contract(client, auth):
    auth.signup()
    body = {"email": "ada@example.com", "password": PASSWORD}
    response = client.post("/api/auth/login", json=body)
    assert set(response.json()) == {"access_token", "token_type", "user"}
    assert "set-cookie" not in response.headers


def test_static_files_are_cached_with_revalidation(client):
    response = client.get("/static/js/app.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    assert "etag" in response.headers
    revalidate = {"If-None-Match": response.headers["etag"]}
    again = client.get("/static/js/app.js", headers=revalidate)
    assert again.status_code == 304


def test_the_markdown_library_is_vendored_with_its_licence(client):
    assert client.get("/static/vendor/markdown-it/markdown-it.js").status_code == 200
    licence = (WEB_DIR / "static/vendor/markdown-it/LICENSE.txt").read_text()
    assert "markdown-it@15.0.3" in licence and "Permission is hereby granted" in licence
    for page in WEB_DIR.glob("*.html"):
        assert "://" not in page.read_text(), f"{page.name} loads from elsewhere"


def test_no_provider_is_listed_or_startable_when_none_is_configured(client):
    assert client.get("/auth/providers").json() == []
    response = client.get("/auth/github", follow_redirects=False)
    assert response.status_code == 404
    assert response.json() == {"detail": "This sign-in provider is not configured"}


@pytest.fixture
def github(app):
    from oauth_provider import PretendProvider

    app.state.oauth_providers = {
        "github": PretendProvider().provider("http://127.0.0.1:9")
    }


def test_starting_a_sign_in_sends_state_and_pkce_challenge(client, github):
    response = client.get("/auth/github", follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:9/authorize?")
    assert "state=" in location and "code_challenge_method=S256" in location
    assert "redirect_uri=http%3A%2F%2Ftestserver%2Fauth%2Fgithub%2Fcallback" in location
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("oauth-flow=") and "HttpOnly" in cookie
    assert "Path=/auth/" in cookie


@pytest.mark.parametrize(
    "query, error",
    [
        ("?code=c&state=s", "oauth_state"),
        ("?error=access_denied&state=s", "oauth_denied"),
    ],
)
def test_a_callback_that_does_not_check_out_goes_back_to_login(
    client, github, query, error
):
    response = client.get(f"/auth/github/callback{query}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?error={error}"
    assert "auth-token" not in response.headers.get("set-cookie", "")


def test_a_flow_cookie_is_no_access_token(client, settings):
    flow = flow_token("github", "state", "verifier", settings.secret_key)
    response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {flow}"})
    assert response.status_code == 401
