"""Browser tests' machinery: Privia served from a thread, and Debian's Chromium.

The server runs in this process, so a test can hand it an engine that writes
exactly the reply the test needs. Chromium is the system one; no test ever
downloads a browser.
"""

import re
from pathlib import Path

from live import ROOT, ThreadServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-screenshots"


def serve_in_thread(app):
    """Serve app from a thread, as Privia is served: WebSockets and lifespan on."""
    return ThreadServer(app, log_level="warning", ws="websockets-sansio", lifespan="on")


class Screenshots:
    """Numbered screenshots of one test's steps, in test-screenshots/<test>/."""

    def __init__(self, test_name):
        self.folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", test_name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def take(self, page, step):
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path))
        return Path(path)
