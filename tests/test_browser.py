"""The web app in a real browser: Debian's Chromium driven by Playwright.

Each test serves a fresh Privia from a thread and writes a screenshot of each
step to test-screenshots/<test name>/, so a person can look at what it saw.
"""

import re
import sqlite3

import pytest
from playwright.sync_api import expect, sync_playwright

from browser import CHROMIUM, CHROMIUM_ARGS, Screenshots, serve_in_thread
from engines.stub import STUB_REPLY, StubEngine
from fakes import ScriptedEngine
from live import LiveServer
from oauth_provider import PretendProvider
from privia import create_app
from settings import Settings

# Generous waits: CI shares two cores with the server, the browser and the tests.
expect.set_options(timeout=15_000)

PASSWORD = "correct horse battery"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def engine():
    # Slow enough to watch the reply arrive word by word.
    return StubEngine(delay=0.06)


@pytest.fixture
def server(tmp_path, engine):
    settings = Settings(
        database=tmp_path / "privia.db",
        secret_key="a-browser-test-signing-key-long-enough",
        password_rounds=1000,
        conversation_cooldown_seconds=0,
    )
    server = serve_in_thread(create_app(settings, engine)).start()
    server.app = server.server.config.app
    server.database = settings.database
    yield server
    server.stop()


def new_page(browser, server, viewport=LAPTOP):
    context = browser.new_context(base_url=server.url, viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch_for_script_errors(page)
    return page


@pytest.fixture
def page(browser, server):
    page = new_page(browser, server)
    yield page
    page.context.close()
    assert page.script_errors == []


def watch_for_script_errors(page):
    """Collect uncaught exceptions and CSP refusals for the test to check at its end."""
    page.script_errors = []
    page.on("pageerror", lambda error: page.script_errors.append(str(error)))

    def console(message):
        if message.type == "error" and "Content Security Policy" in message.text:
            page.script_errors.append(message.text)

    page.on("console", console)


@pytest.fixture
def shots(request):
    return Screenshots(request.node.name)


def at(path):
    """Match the page URL by its path, whatever the port, query or fragment."""
    return re.compile(rf"^http://127\.0\.0\.1:\d+{re.escape(path)}([?#].*)?$")


def sign_up(page, shots, email="ada@example.com", name="Ada Lovelace"):
    page.goto("/signup")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    shots.take(page, "sign-up-form")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(at("/app"))


def composer(page):
    return page.get_by_label("Message", exact=True)


def send(page, text):
    composer(page).fill(text)
    composer(page).press("Enter")


def wait_for_reply(page):
    expect(page.locator(".message.streaming")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def main_path(page, shots):
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Private chat")
    shots.take(page, "landing")
    page.get_by_role("link", name="Create an account").click()

    sign_up(page, shots)
    expect(page.locator("#user-name")).to_have_text("Ada Lovelace")
    shots.take(page, "signed-up")
    drawer(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(at("/login"))

    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid email or password")
    shots.take(page, "wrong-password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(at("/app"))

    # Send stays disabled while the composer is empty; Shift+Enter adds a line.
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    composer(page).press_sequentially("What is Privia?")
    composer(page).press("Shift+Enter")
    composer(page).press_sequentially("In one line, please.")
    expect(composer(page)).to_have_value("What is Privia?\nIn one line, please.")
    composer(page).press("Enter")

    reply = page.locator(".message.assistant").first
    expect(page.locator(".message.assistant.streaming")).to_have_count(1)
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(reply).to_contain_text("No language model")
    partial = reply.locator(".message-body").inner_text()
    shots.take(page, "streaming")
    expect(page.locator(".conversation-link[aria-current=page]")).to_have_count(1)
    wait_for_reply(page)
    final = reply.locator(".message-body").inner_text()
    # It was seen part-written, then whole: the reply streamed in.
    assert len(partial) < len(final) and final.startswith(partial.rstrip("…"))
    assert final == STUB_REPLY
    title = "What is Privia? In one line, please."
    expect(page.locator("#conversation-title")).to_have_text(title)
    shots.take(page, "first-reply")

    send(page, "And a second question")
    expect(page.locator(".message.user")).to_have_count(2)
    wait_for_reply(page)
    page.reload()
    expect(page.locator(".message")).to_have_count(4)
    expect(page.locator(".message.user .message-body").nth(1)).to_have_text(
        "And a second question"
    )
    expect(page.locator("#conversation-title")).to_have_text(title)
    current = page.locator(".conversation-link[aria-current=page]")
    expect(current).to_have_text(title)
    shots.take(page, "after-reload")

    return title


def drawer(page):
    """Open the conversation drawer when the screen is narrow."""
    button = page.get_by_role("button", name="Open conversations")
    if button.is_visible() and button.get_attribute("aria-expanded") == "false":
        button.click()
        expect(page.locator("#sidebar")).to_be_in_viewport()


def manage_conversations(page, shots, title):
    drawer(page)
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(".message")).to_have_count(0)
    expect(page.locator("#conversation-title")).to_have_text("New conversation")
    drawer(page)
    expect(page.locator(".conversation-link")).to_have_count(2)
    expect(page.locator(".conversation-link[aria-current=page]")).to_have_text(
        "New conversation"
    )
    shots.take(page, "new-chat")

    page.get_by_role("button", name=f"Rename “{title}”").click()
    page.get_by_label("New title").fill("Privia basics")
    shots.take(page, "renaming")
    page.get_by_label("New title").press("Enter")
    expect(page.get_by_role("link", name="Privia basics")).to_be_visible()

    page.get_by_label("Filter conversations by title").fill("basics")
    expect(page.locator(".conversation-link:visible")).to_have_count(1)
    shots.take(page, "filtered")
    page.get_by_label("Filter conversations by title").fill("")

    page.get_by_role("button", name="Delete “Privia basics”").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("“Privia basics” and all its messages")
    shots.take(page, "confirm-delete")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("link", name="Privia basics")).to_have_count(0)
    expect(page.locator(".conversation-link")).to_have_count(1)
    shots.take(page, "deleted")

    drawer(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(at("/login"))
    page.goto("/app")
    expect(page).to_have_url(at("/login"))
    shots.take(page, "signed-out")


def test_a_new_user_takes_the_whole_path(page, server, shots):
    title = main_path(page, shots)
    manage_conversations(page, shots, title)

    with sqlite3.connect(server.database) as conn:
        titles = [row[0] for row in conn.execute("SELECT title FROM conversations")]
    assert titles == ["New conversation"]


def test_the_main_path_works_375_pixels_wide(browser, server, shots):
    page = new_page(browser, server, PHONE)
    title = main_path(page, shots)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    manage_conversations(page, shots, title)
    page.context.close()
    assert page.script_errors == []


def test_a_rate_limited_sign_in_shows_the_wait(page, server, shots):
    # Abuse limits answer 429 with Retry-After; the form must say how long to wait.
    page.route(
        "**/auth/sign-in",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "30"},
            content_type="application/json",
            body='{"detail": "Too many sign-in attempts"}',
        ),
    )
    page.goto("/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text(
        "Too many attempts. Try again in 30 seconds."
    )
    submit = page.locator("button[type=submit]")
    expect(submit).to_be_disabled()
    expect(submit).to_have_text(re.compile(r"Try again in \d+s"))
    shots.take(page, "rate-limited")


def sign_up_quickly(page, shots):
    sign_up(page, shots)
    expect(page.locator("#user-name")).to_have_text("Ada Lovelace")


@pytest.mark.parametrize("engine", [StubEngine(delay=0.25)])
def test_stop_keeps_the_partial_reply_also_after_a_reload(page, server, shots):
    sign_up_quickly(page, shots)
    send(page, "Tell me everything")
    reply = page.locator(".message.assistant .message-body")
    expect(reply).to_contain_text("No language model")
    shots.take(page, "before-stop")

    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".message.assistant .message-note")).to_have_text("Stopped")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    kept = reply.inner_text()
    assert 0 < len(kept) < len(STUB_REPLY) and STUB_REPLY.startswith(kept)
    shots.take(page, "stopped")

    page.reload()
    expect(page.locator(".message")).to_have_count(2)
    expect(reply).to_have_text(kept)
    shots.take(page, "stopped-after-reload")
    with sqlite3.connect(server.database) as conn:
        stored = conn.execute("SELECT content FROM messages WHERE role = 'assistant'")
        # Markdown drops the trailing space of the last word it was given.
        assert [row[0].rstrip() for row in stored] == [kept]


MARKDOWN_REPLY = [
    "# Notes\n\nA list:\n\n- one\n- two\n\n",
    "```python\nprint('hi')\n```\n\n",
    "| a | b |\n| --- | --- |\n| 1 | 2 |\n\n",
    "See [the docs](https://example.com/docs) and [bad](javascript:alert(1)).\n\n",
    "<img src=x onerror=\"window.pwned = 'img'\">\n\n",
    "<script>window.pwned = 'script'</script>\n",
]


@pytest.mark.parametrize("engine", [ScriptedEngine(MARKDOWN_REPLY)])
def test_replies_render_markdown_and_never_run_html(page, server, shots):
    sign_up_quickly(page, shots)
    send(page, "Show me Markdown")
    wait_for_reply(page)
    body = page.locator(".message.assistant .message-body")

    expect(body.locator("h1")).to_have_text("Notes")
    expect(body.locator("ul > li")).to_have_count(2)
    expect(body.locator("pre > code")).to_have_text("print('hi')\n")
    expect(body.locator("table td")).to_have_count(2)
    link = body.get_by_role("link", name="the docs")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(body.get_by_role("link", name="bad")).to_have_count(0)

    # The markup arrives as text and nothing of it runs.
    expect(body.locator("img, script")).to_have_count(0)
    expect(body).to_contain_text("<img src=x onerror=\"window.pwned = 'img'\">")
    expect(body).to_contain_text("<script>window.pwned = 'script'</script>")
    assert page.evaluate("window.pwned") is None
    shots.take(page, "markdown")
    page.reload()
    expect(body.locator("table")).to_have_count(1)
    assert page.evaluate("window.pwned") is None


@pytest.mark.parametrize("engine", [ScriptedEngine(["Half an ", "answer"], fail_at=1)])
def test_an_engine_error_is_shown_in_the_message(page, server, shots):
    sign_up_quickly(page, shots)
    send(page, "Fail please")
    note = page.locator(".message.assistant .message-note.error")
    expect(note).to_have_text("the scripted engine failed on purpose")
    expect(page.locator(".message.assistant .message-body")).to_have_text("Half an")
    shots.take(page, "engine-error")

    # The next question goes on in the same conversation.
    expect(page.locator("#conversation-title")).to_have_text("Fail please")
    send(page, "Try again")
    expect(page.locator(".message.user")).to_have_count(2)
    expect(page.locator(".message-note.error")).to_have_count(2)
    with sqlite3.connect(server.database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone() == (1,)


def test_without_a_websocket_replies_come_over_server_sent_events(page, server, shots):
    # The socket is refused, as a proxy without WebSocket support would.
    page.route_web_socket("**/api/ws/chat", lambda socket: socket.close())
    sign_up_quickly(page, shots)
    with page.expect_response("**/api/stream") as stream:
        send(page, "Over SSE")
    assert stream.value.headers["content-type"].startswith("text/event-stream")
    wait_for_reply(page)
    expect(page.locator(".message.assistant .message-body")).to_have_text(STUB_REPLY)
    expect(page.locator("#conversation-title")).to_have_text("Over SSE")
    shots.take(page, "sse-reply")


@pytest.mark.parametrize("engine", [StubEngine(delay=0.1)])
def test_a_lost_connection_is_shown_with_a_retry(page, server, shots):
    cuts = []

    def cut_after_first_token(socket):
        """Drop the first socket after its first token; later sockets live."""
        upstream = socket.connect_to_server()

        def forward(message):
            socket.send(message)
            if not cuts and '"token"' in message:
                cuts.append(message)
                socket.close()

        upstream.on_message(forward)

    page.route_web_socket("**/api/ws/chat", cut_after_first_token)
    sign_up_quickly(page, shots)
    send(page, "Hello?")
    note = page.locator(".message.assistant .message-note.error")
    expect(note).to_contain_text("connection was lost")
    expect(page.get_by_role("alert")).to_contain_text("Connection lost")
    shots.take(page, "connection-lost")

    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("alert")).to_be_hidden()
    expect(page.locator(".message.user .message-body")).to_have_text("Hello?")
    expect(page.locator("#conversation-title")).to_have_text("Hello?")
    shots.take(page, "after-retry")


@pytest.fixture
def provider(server):
    provider = PretendProvider()
    provider_server = serve_in_thread(provider.app).start()
    github = provider.provider(provider_server.url)
    server.app.state.oauth_providers = {"github": github}
    yield provider
    provider_server.stop()


def test_github_sign_in_runs_the_code_flow_with_pkce(page, server, provider, shots):
    page.goto("/login")
    button = page.get_by_role("link", name="Continue with GitHub")
    expect(button).to_be_visible()
    shots.take(page, "login-with-github")
    button.click()

    expect(page).to_have_url(at("/app"))
    expect(page.locator("#user-name")).to_have_text("Ada from GitHub")
    expect(page.locator("#user-email")).to_have_text("ada@example.com")
    shots.take(page, "signed-in-with-github")
    [token_request] = provider.token_requests
    assert token_request["grant_type"] == "authorization_code"
    assert len(token_request["code_verifier"]) >= 43
    with sqlite3.connect(server.database) as conn:
        users = conn.execute("SELECT email, provider, provider_account_id FROM users")
        assert users.fetchall() == [("ada@example.com", "github", "4242")]
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["auth-token"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert "oauth-flow" not in cookies


def test_github_sign_in_with_a_bad_state_is_refused(page, server, provider, shots):
    provider.tamper_state = True
    page.goto("/login")
    page.get_by_role("link", name="Continue with GitHub").click()

    expect(page).to_have_url(at("/login"))
    expect(page.get_by_role("alert")).to_have_text(
        "That sign-in could not be verified. Please start it again."
    )
    shots.take(page, "bad-state")
    assert provider.token_requests == []
    assert "auth-token" not in {c["name"] for c in page.context.cookies()}
    page.goto("/app")
    expect(page).to_have_url(at("/login"))


def test_sign_in_buttons_are_hidden_when_no_provider_is_configured(page, server):
    page.goto("/login")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#oauth")).to_be_hidden()
    page.goto("/signup")
    expect(page.locator("#oauth")).to_be_hidden()


WAL_REPLY = [
    "In **WAL mode** SQLite writes changes to a separate log, the *write-ahead log*, ",
    "and folds them into the database file later, at a checkpoint.\n\n",
    "Why it helps a small server:\n\n",
    "- readers never wait for the writer, and the writer never waits for readers;\n",
    "- a commit appends to one file, so it is fast;\n",
    "- a crash loses nothing that was committed.\n\n",
    "Turn it on once; the mode is kept in the file:\n\n",
    "```sql\nPRAGMA journal_mode = WAL;\n```\n\n",
    "| journal mode | readers during a write |\n| --- | --- |\n",
    "| `DELETE` (default) | blocked |\n| `WAL` | keep reading |\n\n",
    "See [the SQLite docs](https://sqlite.org/wal.html) for the details.",
]


@pytest.mark.parametrize("engine", [ScriptedEngine(WAL_REPLY)])
def test_the_theme_follows_the_system_and_the_toggle(browser, server, shots):
    context = browser.new_context(
        base_url=server.url, viewport=LAPTOP, color_scheme="dark"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch_for_script_errors(page)
    sign_up_quickly(page, shots)
    for question in [
        "Plan a week of dinners",
        "Backups for a SQLite file",
        "What is WAL mode?",
    ]:
        page.get_by_role("button", name="New chat").click()
        send(page, question)
        wait_for_reply(page)
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "dark")
    shots.take(page, "workspace-dark")

    page.get_by_role("button", name="Switch to light theme").click()
    expect(html).to_have_attribute("data-theme", "light")
    page.reload()
    expect(html).to_have_attribute("data-theme", "light")
    expect(page.get_by_role("button", name="Switch to dark theme")).to_be_visible()
    expect(page.locator(".message")).to_have_count(2)
    page.locator("#composer-input").blur()
    shots.take(page, "workspace-light")
    context.close()
    assert page.script_errors == []


def test_the_readme_way_streams_a_reply_from_python_privia_py(browser, tmp_path, shots):
    # As the README runs it: `python privia.py`, its own uvicorn, the stub engine.
    live = LiveServer(tmp_path, PRIVIA_STUB_DELAY_MS="20").start()
    try:
        page = new_page(browser, live)
        sockets = []
        page.on("websocket", lambda socket: sockets.append(socket.url))
        sign_up_quickly(page, shots)
        send(page, "Hello, Privia")
        wait_for_reply(page)
        expect(page.locator(".message.assistant .message-body")).to_have_text(
            STUB_REPLY
        )
        assert sockets == [live.url.replace("http", "ws") + "/api/ws/chat"]
        shots.take(page, "streamed-reply")
        page.context.close()
        assert page.script_errors == []
    finally:
        live.stop()
