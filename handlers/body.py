"""Reading and checking request bodies; every fault is a 422 that names the field."""

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request


def invalid(message: str) -> HTTPException:
    return HTTPException(422, message)


async def read_json_object(request: Request, *, optional: bool = False) -> dict:
    """Parse the body as a JSON object; an empty body is {} when optional."""
    raw = await request.body()
    if not raw.strip() and optional:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad syntax and bad UTF-8; RecursionError, nesting
        # too deep for the parser.
        raise invalid("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    return body


def text_field(
    body: dict,
    name: str,
    *,
    required: bool = True,
    strip: bool = True,
    min_length: int = 0,
    max_length: int | None = None,
) -> str | None:
    """Return body[name] as a string, checked; None when optional and absent or null."""
    value: Any = body.get(name)
    if value is None:
        if required:
            raise invalid(f"Field '{name}' is required")
        return None
    if not isinstance(value, str):
        raise invalid(f"Field '{name}' must be a string")
    try:
        # JSON can spell a lone UTF-16 surrogate ("\ud800"), which no UTF-8
        # text, and so no database row, can hold.
        value.encode()
    except UnicodeEncodeError:
        raise invalid(f"Field '{name}' is not valid Unicode text") from None
    if strip:
        value = value.strip()
    if len(value) < min_length:
        if min_length == 1:
            raise invalid(f"Field '{name}' must not be empty")
        raise invalid(f"Field '{name}' must be at least {min_length} characters")
    if max_length is not None and len(value) > max_length:
        raise invalid(f"Field '{name}' must be at most {max_length} characters")
    return value
