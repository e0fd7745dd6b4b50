"""The contract: the OpenAPI document matches the routes, and a live server keeps it.

schemathesis generates requests from the document for every operation, a
bounded number per operation, and checks each answer: never a 500, and
status, content type, headers and body all as the document says.
"""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from conftest import PASSWORD
from handlers.openapi import DOCUMENT
from live import LiveServer

CASES_PER_OPERATION = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def app_operations(app):
    """(path, method) for every HTTP route of the app; HEAD comes free with GET."""
    return {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods
        if method != "HEAD"
    }


def documented_operations(document):
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }


def test_the_document_and_the_routes_match_both_ways(app):
    routes = app_operations(app)
    documented = documented_operations(DOCUMENT)
    assert routes - documented == set(), "routes the document does not describe"
    assert documented - routes == set(), "operations the app does not serve"


def test_the_document_is_served_as_openapi_3_1(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert document == DOCUMENT
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


# Signing out only clears the cookie, so it alone is a POST without a body.
TAKE_NO_BODY = {("post", "/auth/sign-out")}


def test_every_operation_says_what_it_answers(client):
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation["responses"], (method, path)
            if (method, path) in TAKE_NO_BODY:
                assert "requestBody" not in operation, (method, path)
            elif method in ("post", "patch") and "requestBody" not in operation:
                pytest.fail(f"{method} {path} has no request body")


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    # No throttles here: schemathesis signs in and up far more often than a person.
    server = LiveServer(
        tmp_path_factory.mktemp("openapi"),
        PRIVIA_LOGIN_MAX_FAILURES="0",
        PRIVIA_LOGIN_MAX_FAILURES_PER_ADDRESS="0",
        PRIVIA_SIGNUPS_PER_HOUR="0",
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live_headers(live_api):
    body = {"email": "contract@example.com", "password": "contract-password"}
    requests.post(f"{live_api.url}/api/auth/signup", json=body).raise_for_status()
    login = requests.post(f"{live_api.url}/api/auth/login", json=body)
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


# The document served is DOCUMENT (tested above); loading it here lets pytest
# list one test per operation before any server is running.
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=CASES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_live_server_keeps_the_contract(case, live_api, live_headers):
    case.call_and_validate(base_url=live_api.url, headers=live_headers, checks=CHECKS)


@schema.parametrize()
@settings(
    max_examples=CASES_PER_OPERATION // 3,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_live_server_keeps_the_contract_signed_out(case, live_api):
    case.call_and_validate(base_url=live_api.url, checks=CHECKS)


@pytest.fixture
def github(app):
    from oauth_provider import PretendProvider

    app.state.oauth_providers = {
        "github": PretendProvider().provider("http://127.0.0.1:9")
    }


def test_the_web_app_keeps_the_contract_where_the_live_run_cannot_go(
    client, auth, github
):
    # Signed in through our Origin, with a provider set up: schemathesis has
    # neither, so it only ever sees these routes' 403s, 404s and signed-out pages.
    auth.signup()
    ours = {"Origin": "http://testserver"}
    credentials = {"email": "ada@example.com", "password": PASSWORD}
    provider = {"provider": "github"}
    journey = [
        ("post", "/auth/sign-in", {"json": credentials, "headers": ours}, 200),
        ("get", "/", {}, 303),
        ("get", "/app", {}, 200),
        ("get", "/auth/providers", {}, 200),
        ("get", "/auth/{provider}", {}, 303),
        ("get", "/auth/{provider}/callback", {"params": {"state": "forged"}}, 303),
        ("post", "/auth/sign-out", {"headers": ours}, 204),
        ("get", "/app", {}, 303),
    ]
    for method, path, options, status in journey:
        url = path.format(**provider)
        response = client.request(method, url, follow_redirects=False, **options)
        assert response.status_code == status, (method, url)
        parameters = provider if "{" in path else {}
        case = schema[path][method].Case(path_parameters=parameters)
        case.validate_response(response, checks=CHECKS)
