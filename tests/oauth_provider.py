"""A pretend Google-or-GitHub for the OAuth tests: authorize, token and user endpoints.

It approves every sign-in at once and checks what a real provider checks:
the client's id and secret, the redirect URI, and the PKCE verifier against
the challenge it was shown. `tamper_state` makes it send back a wrong state.
"""

import base64
import hashlib
import secrets
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from oauth import Provider

CLIENT_ID = "privia-test-client"
CLIENT_SECRET = "privia-test-secret"
ACCESS_TOKEN = "provider-access-token"
ACCOUNT = {"id": 4242, "login": "octoada", "name": "Ada from GitHub"}
EMAILS = [
    {"email": "ada-secondary@example.com", "verified": True, "primary": False},
    {"email": "Ada@Example.com", "verified": True, "primary": True},
]


def challenge_of(verifier):
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class PretendProvider:
    def __init__(self):
        self.codes = {}
        self.tamper_state = False
        self.token_requests = []
        self.app = Starlette(
            routes=[
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/user", self.user),
                Route("/user/emails", self.emails),
            ]
        )

    def provider(self, url):
        return Provider(
            "github",
            "GitHub",
            f"{url}/authorize",
            f"{url}/token",
            f"{url}/user",
            "read:user user:email",
            emails_url=f"{url}/user/emails",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
        )

    async def authorize(self, request: Request):
        params = request.query_params
        assert params["client_id"] == CLIENT_ID
        assert params["response_type"] == "code"
        assert params["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = (params["code_challenge"], params["redirect_uri"])
        state = "forged-state" if self.tamper_state else params["state"]
        query = urlencode({"code": code, "state": state})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

    async def token(self, request: Request):
        form = await request.form()
        self.token_requests.append(dict(form))
        expected = (
            "Basic "
            + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        )
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        challenge, redirect_uri = self.codes.pop(form.get("code"), (None, None))
        if challenge is None or form.get("redirect_uri") != redirect_uri:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if challenge_of(form.get("code_verifier", "")) != challenge:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse({"access_token": ACCESS_TOKEN, "token_type": "bearer"})

    def authorized(self, request):
        return request.headers.get("authorization") == f"Bearer {ACCESS_TOKEN}"

    async def user(self, request: Request):
        if not self.authorized(request):
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(ACCOUNT)

    async def emails(self, request: Request):
        if not self.authorized(request):
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(EMAILS)
