"""The API contract: GET /api/openapi.json, an OpenAPI 3.1 document written by hand.

Every HTTP route is described here; tests/test_openapi.py fails when a route
and this document disagree, and runs schemathesis against a live server to
check that the answers match it. Two things are described in words only: the
WebSocket, since OpenAPI has no way to describe one, and the web app's /static
files, a folder served as it is rather than routes of their own.
"""

from starlette.requests import Request
from starlette.responses import JSONResponse

from settings import VERSION, Settings

DEFAULTS = Settings()


# Building blocks


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def record(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    """A JSON object with exactly these properties, all required but `optional`."""
    return fields(properties, optional) | {"additionalProperties": False}


def fields(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    """A request body: these properties, all required but `optional`; others ignored."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }


def text(min_length: int = 0, max_length: int | None = None, **extra) -> dict:
    schema = {"type": "string", "minLength": min_length} | extra
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def json_body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def answer(
    description: str, schema: dict | None = None, headers: dict | None = None
) -> dict:
    response: dict = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    if headers:
        response["headers"] = headers
    return response


def errors(*statuses: int) -> dict:
    """The {"detail": ...} responses for these statuses."""
    return {
        str(status): {"$ref": f"#/components/responses/{status}"} for status in statuses
    }


# Requests that carry a body can also meet the body-size guard.
BODY_ERRORS = (400, 413, 422)
BEARER = [{"bearer": []}, {"cookie": []}]
# A route that changes something and takes the cookie refuses it without our
# Origin (handlers/auth.py, request_token).
FOREIGN_ORIGIN = {"403": {"$ref": "#/components/responses/ForeignOrigin"}}
CONVERSATION_ID = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}

CONVERSATION = {
    "id": {"type": "string"},
    "title": {"type": "string"},
    "status": {"enum": ["empty", "active"]},
    "created_at": {"type": "string"},
    "updated_at": {"type": "string"},
}
USER = {
    "id": {"type": "string"},
    "email": {"type": "string"},
    "full_name": nullable({"type": "string"}),
    "role": {"type": "string"},
}
QUESTION = fields(
    {
        "question": text(1, DEFAULTS.max_question_chars),
        "conversation_id": nullable(text(0, 64)),
    },
    optional=("conversation_id",),
)
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"enum": ["message", "done", "error"]},
        "data": {"type": "string"},
    },
    "required": ["event", "data"],
}
CREDENTIALS_FORM = fields(
    {"username": text(1, 254), "password": text(1, 1024)},
)
CREDENTIALS = {
    "required": True,
    "content": {
        "application/json": {
            "schema": fields({"email": text(1, 254), "password": text(1, 1024)})
        },
        "application/x-www-form-urlencoded": {"schema": CREDENTIALS_FORM},
        "multipart/form-data": {"schema": CREDENTIALS_FORM},
    },
}

SCHEMAS = {
    "Error": record({"detail": {"type": "string"}}),
    "User": record(USER),
    "Profile": record(
        USER
        | {
            "provider": nullable({"type": "string"}),
            "avatar_url": nullable({"type": "string"}),
        }
    ),
    "Token": record(
        {
            "access_token": {"type": "string"},
            "token_type": {"const": "bearer"},
            "user": ref("User"),
        }
    ),
    "Conversation": record(CONVERSATION),
    "ConversationSummary": record(
        CONVERSATION | {"message_count": {"type": "integer"}}
    ),
    "ConversationDetail": record(
        CONVERSATION
        | {
            "messages": {
                "type": "array",
                "items": record(
                    {
                        "id": {"type": "string"},
                        "role": {"enum": ["user", "assistant"]},
                        "content": {"type": "string"},
                        "timestamp": {"type": "string"},
                    }
                ),
            }
        }
    ),
    "Answer": record(
        {
            "answer": {"type": "string"},
            "conversation_id": {"type": "string"},
            "message_id": nullable({"type": "string"}),
            "mode": {"type": "string"},
            "sources": {"type": "array"},
            "model": nullable({"type": "string"}),
            "usage": {"type": "object"},
        },
        optional=("usage",),
    ),
    "Health": record(
        {
            "status": {"enum": ["ok", "degraded"]},
            "version": {"type": "string"},
            "env": {"type": "string"},
            "uptime": {"type": "number"},
            "timestamp": {"type": "string"},
            "database": {"enum": ["ok", "unavailable"]},
            "engine": {"type": "string"},
        }
    ),
}

ERROR_DESCRIPTIONS = {
    400: "The request was refused (a taken email, a failed sign-in, a bad header)",
    401: "No token, or one that is forged, expired or for a deleted user",
    403: "The X-Privia-OAuth-Secret header is missing or wrong, or unset on the server",
    404: "No such conversation for this user",
    413: "The body is larger than the limit",
    422: "The body is not what the route takes; the detail names the field",
    429: "Too many attempts or questions; wait for Retry-After seconds",
    502: "The engine failed; the question is kept",
    503: "The database is unreadable",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def error_answer(status: int) -> dict:
    headers = RETRY_AFTER if status == 429 else None
    return answer(ERROR_DESCRIPTIONS[status], ref("Error"), headers)


ERROR_RESPONSES = {str(status): error_answer(status) for status in ERROR_DESCRIPTIONS}
ERROR_RESPONSES["ForeignOrigin"] = answer(
    "The request changes something, the auth-token cookie is its only credential, "
    "and its Origin is neither Privia's own nor one in PRIVIA_ALLOWED_ORIGINS",
    ref("Error"),
)


# The routes

HEALTH = {
    "summary": "Whether Privia and its database are up",
    "responses": {
        "200": answer("Up", ref("Health")),
        "503": answer(ERROR_DESCRIPTIONS[503], ref("Health")),
    },
}

PATHS = {
    "/api/health": {"get": HEALTH | {"operationId": "health"}},
    "/api/health/": {"get": HEALTH | {"operationId": "health_slash"}},
    "/api/openapi.json": {
        "get": {
            "operationId": "get_openapi",
            "summary": "This document",
            "responses": {"200": answer("The OpenAPI document", {"type": "object"})},
        }
    },
    "/api/auth/signup": {
        "post": {
            "operationId": "signup",
            "summary": "Create an account with an email and a password",
            "requestBody": json_body(
                fields(
                    {
                        "email": text(3, 254, format="email"),
                        "password": text(8, 1024),
                        "full_name": nullable(text(0, 200)),
                    },
                    optional=("full_name",),
                )
            ),
            "responses": {"201": answer("Created", ref("User"))}
            | errors(*BODY_ERRORS, 429),
        }
    },
    "/api/auth/login": {
        "post": {
            "operationId": "login",
            "summary": "Exchange an email and password for an access token",
            "requestBody": CREDENTIALS,
            "responses": {"200": answer("Signed in", ref("Token"))}
            | errors(*BODY_ERRORS, 429),
        }
    },
    "/api/auth/me": {
        "get": {
            "operationId": "me",
            "summary": "The signed-in user",
            "security": BEARER,
            "responses": {"200": answer("The user", ref("Profile"))} | errors(401),
        }
    },
    "/api/auth/oauth": {
        "post": {
            "operationId": "oauth_sign_in",
            "summary": "Sign in a user the web frontend signed in with Google or GitHub",
            "parameters": [
                {
                    "name": "X-Privia-OAuth-Secret",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": json_body(
                fields(
                    {
                        "provider": {"enum": ["google", "github"]},
                        "provider_account_id": {"type": ["string", "integer"]},
                        "email": text(3, 254, format="email"),
                        "full_name": nullable(text(0, 200)),
                        "avatar_url": nullable(text(0, 2048)),
                    },
                    optional=("full_name", "avatar_url"),
                )
            ),
            "responses": {"200": answer("Signed in", ref("Token"))}
            | errors(*BODY_ERRORS, 403),
        }
    },
    "/api/conversations": {
        "get": {
            "operationId": "list_conversations",
            "summary": "The caller's conversations, most recently updated first",
            "security": BEARER,
            "responses": {
                "200": answer(
                    "The conversations",
                    {"type": "array", "items": ref("ConversationSummary")},
                )
            }
            | errors(401),
        },
        "post": {
            "operationId": "create_conversation",
            "summary": "The caller's empty conversation, made if they have none",
            "security": BEARER,
            "requestBody": json_body(
                fields({"title": nullable(text(1, 200))}, optional=("title",)),
                required=False,
            ),
            "responses": {"201": answer("The empty conversation", ref("Conversation"))}
            | errors(*BODY_ERRORS, 401, 429)
            | FOREIGN_ORIGIN,
        },
    },
    "/api/conversations/{conversation_id}": {
        "parameters": [CONVERSATION_ID],
        "get": {
            "operationId": "get_conversation",
            "summary": "One conversation with its messages, oldest first",
            "security": BEARER,
            "responses": {"200": answer("The conversation", ref("ConversationDetail"))}
            | errors(401, 404),
        },
        "patch": {
            "operationId": "rename_conversation",
            "summary": "Change a conversation's title",
            "security": BEARER,
            "requestBody": json_body(fields({"title": text(1, 200)})),
            "responses": {"200": answer("Renamed", ref("Conversation"))}
            | errors(*BODY_ERRORS, 401, 404)
            | FOREIGN_ORIGIN,
        },
        "delete": {
            "operationId": "delete_conversation",
            "summary": "Delete a conversation and its messages",
            "security": BEARER,
            "responses": {"204": answer("Deleted")} | errors(401, 404) | FOREIGN_ORIGIN,
        },
    },
    "/api/query": {
        "post": {
            "operationId": "answer_question",
            "summary": "Answer a question with the whole reply in one JSON body",
            "security": BEARER,
            "requestBody": json_body(QUESTION),
            "responses": {"200": answer("The reply", ref("Answer"))}
            | errors(*BODY_ERRORS, 401, 404, 429, 502)
            | FOREIGN_ORIGIN,
        }
    },
    "/api/stream": {
        "post": {
            "operationId": "stream_reply",
            "summary": "Answer a question as Server-Sent Events",
            "security": BEARER,
            "requestBody": json_body(QUESTION),
            "responses": {
                "200": {
                    "description": (
                        "One event per chunk, then `event: done` with the Answer "
                        "fields but `answer`, or `event: error` with {error}"
                    ),
                    # Before OpenAPI 3.2, the schema of an event stream describes
                    # each event, parsed as {event, data}.
                    "content": {"text/event-stream": {"schema": SSE_EVENT}},
                }
            }
            | errors(*BODY_ERRORS, 401, 404, 429)
            | FOREIGN_ORIGIN,
        }
    },
}

# The web app's routes, outside /api

PROVIDER = {
    "name": "provider",
    "in": "path",
    "required": True,
    # Any other name is the same 404 as a provider the operator has not set up.
    "schema": {"enum": ["google", "github"]},
}
PROVIDER_NOT_CONFIGURED = {
    "404": answer("The operator has not configured this provider", ref("Error"))
}
NOT_OUR_ORIGIN = {
    "403": answer(
        "Origin is neither Privia's own nor one in PRIVIA_ALLOWED_ORIGINS; "
        "this route needs it whatever the credentials",
        ref("Error"),
    )
}
# Pages read the cookie to choose between the page and a redirect, but need none.
MAYBE_COOKIE = [{}, {"cookie": []}]
SESSION_COOKIE = {
    "Set-Cookie": {
        "description": "auth-token: HttpOnly, SameSite=Lax, Path=/, Secure over https",
        "required": True,
        "schema": {"type": "string", "pattern": "^auth-token="},
    }
}


def see_other(description: str, location: dict, headers: dict | None = None) -> dict:
    """A 303 redirect with no body, whose Location matches the schema given."""
    location_header = {"Location": {"required": True, "schema": location}}
    return {"description": description, "headers": location_header | (headers or {})}


def html_page(operation_id: str, summary: str, redirect: dict) -> dict:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": MAYBE_COOKIE,
        "responses": {
            "200": {
                "description": "The page",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            "303": redirect,
        },
    }


SIGNED_IN_ELSEWHERE = see_other(
    "Already signed in: to the workspace", {"const": "/app"}
)

WEB_PATHS = {
    "/": {"get": html_page("show_landing", "The landing page", SIGNED_IN_ELSEWHERE)},
    "/login": {"get": html_page("show_login", "The sign-in form", SIGNED_IN_ELSEWHERE)},
    "/signup": {
        "get": html_page("show_signup", "The sign-up form", SIGNED_IN_ELSEWHERE)
    },
    "/app": {
        "get": html_page(
            "show_workspace",
            "The chat workspace",
            see_other(
                "Signed out: to the sign-in page; a stale auth-token cookie is "
                "cleared on the way",
                {"const": "/login"},
                {"Set-Cookie": {"schema": {"type": "string"}}},
            ),
        )
    },
    "/auth/sign-in": {
        "post": {
            "operationId": "sign_in",
            "summary": "Check an email and password and keep the session in a cookie",
            "requestBody": CREDENTIALS,
            "responses": {
                "200": answer(
                    "Signed in",
                    record({"user": ref("User")}),
                    SESSION_COOKIE,
                )
            }
            | errors(*BODY_ERRORS, 429)
            | NOT_OUR_ORIGIN,
        }
    },
    "/auth/sign-out": {
        "post": {
            "operationId": "sign_out",
            "summary": "Forget the browser's session; takes no body",
            "responses": {"204": answer("Signed out", headers=SESSION_COOKIE)}
            | errors(413)
            | NOT_OUR_ORIGIN,
        }
    },
    "/auth/providers": {
        "get": {
            "operationId": "list_providers",
            "summary": "The sign-in providers the operator has configured",
            "responses": {
                "200": answer(
                    "Their names and the labels for their buttons",
                    {
                        "type": "array",
                        "items": record(
                            {"name": PROVIDER["schema"], "label": {"type": "string"}}
                        ),
                    },
                )
            },
        }
    },
    "/auth/{provider}": {
        "parameters": [PROVIDER],
        "get": {
            "operationId": "start_oauth",
            "summary": "Start signing in with the provider (OAuth code flow, PKCE)",
            "responses": {
                "303": see_other(
                    "To the provider; the oauth-flow cookie keeps state and verifier",
                    {"type": "string", "format": "uri"},
                    {"Set-Cookie": {"required": True, "schema": {"type": "string"}}},
                )
            }
            | PROVIDER_NOT_CONFIGURED,
        },
    },
    "/auth/{provider}/callback": {
        "parameters": [PROVIDER],
        "get": {
            "operationId": "finish_oauth",
            "summary": "Where the provider sends the browser back",
            "parameters": [
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("code", "state", "error")
            ],
            "responses": {
                "303": see_other(
                    "Signed in: to the workspace, with the auth-token cookie. "
                    "Refused, denied or failed: to the sign-in page, which "
                    "shows the error",
                    {"pattern": "^/(app|login\\?error=oauth_(denied|state|failed))$"},
                    {"Set-Cookie": {"required": True, "schema": {"type": "string"}}},
                )
            }
            | PROVIDER_NOT_CONFIGURED,
        },
    },
}


DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Privia",
        "version": VERSION,
        "description": (
            "A self-hosted chat workspace backend and its web app. Every error "
            'is {"detail": "..."}. Besides these routes, the WebSocket '
            "/api/ws/chat?token=... takes {question, conversation_id?} or plain "
            'text frames and {"type": "stop"}, and sends token frames then done; '
            "/static/... serves the web app's CSS and JavaScript."
        ),
    },
    "paths": PATHS | WEB_PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": ERROR_RESPONSES,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "cookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": "auth-token",
                "description": (
                    "The token /auth/sign-in keeps in the browser. Alone, it is "
                    "refused (403) on any method but GET, HEAD and OPTIONS unless "
                    "Origin is Privia's own or one in PRIVIA_ALLOWED_ORIGINS"
                ),
            },
        },
    },
}


async def get_openapi(request: Request) -> JSONResponse:
    """Return the OpenAPI document of this API."""
    return JSONResponse(DOCUMENT)
