"""The web app's files: the pages, the static folder, and the headers they carry."""

import os
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).with_name("web")

# Pages load nothing from other origins and run no inline script, so a reply
# that smuggles markup past the renderer still cannot run or phone home.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # Pages depend on who is signed in, so no cache may keep one.
    "Cache-Control": "no-store",
}
# Files are not fingerprinted, so a browser may keep them but must check the
# ETag before reuse; an upgrade then shows at the next load.
STATIC_CACHE_CONTROL = "no-cache"


def page_path(name: str) -> Path:
    return WEB_DIR / f"{name}.html"


class CachedStaticFiles(StaticFiles):
    """Starlette's static files, with the cache policy above and the page CSP."""

    def file_response(
        self,
        full_path: str | os.PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = STATIC_CACHE_CONTROL
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def static_files() -> CachedStaticFiles:
    # html=False: pages are served by the page routes, which check the session.
    return CachedStaticFiles(directory=WEB_DIR / "static")
