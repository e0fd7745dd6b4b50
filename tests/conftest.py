import pytest
from starlette.testclient import TestClient

from fakes import ScriptedEngine
from model_server import RunningModelServer
from privia import create_app
from settings import Settings

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(tmp_path):
    """Settings for one test: its own database, a fixed key, cheap hashes."""
    return Settings(
        database=tmp_path / "privia.db",
        secret_key="a-test-signing-key-that-is-long-enough",
        password_rounds=1000,
        conversation_cooldown_seconds=0,
    )


@pytest.fixture
def engine():
    return ScriptedEngine()


@pytest.fixture
def app(settings, engine):
    return create_app(settings, engine)


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


class AuthActions:
    """Sign users up and in through the API."""

    def __init__(self, client):
        self.client = client

    def signup(self, email="ada@example.com", password=PASSWORD, full_name="Ada"):
        body = {"email": email, "password": password, "full_name": full_name}
        response = self.client.post("/api/auth/signup", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def login(self, email="ada@example.com", password=PASSWORD):
        body = {"email": email, "password": password}
        response = self.client.post("/api/auth/login", json=body)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def headers(self, email="ada@example.com"):
        """Sign up `email` and return the Authorization header of its token."""
        self.signup(email=email)
        return {"Authorization": f"Bearer {self.login(email=email)}"}


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def headers(auth):
    return auth.headers()


@pytest.fixture(scope="session")
def running_model_server():
    server = RunningModelServer().start()
    yield server
    server.stop()


@pytest.fixture
def model_server(running_model_server):
    """The test model server, back to its default script with no requests recorded."""
    running_model_server.app.reset()
    return running_model_server
