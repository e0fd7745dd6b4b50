"""Conversations: /api/conversations (create, list) and /api/conversations/{id}
(get, rename, delete).

`load_conversation_or_404` is the check every conversation or chat route makes
first: an unknown id and another user's conversation look the same, 404.
"""

import logging
import math
import sqlite3
import uuid
from datetime import datetime, timezone

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from database import utc_now, write_transaction
from handlers.auth import authenticated_user_id, require_user
from handlers.body import read_json_object, text_field

log = logging.getLogger("privia.conversations")

DEFAULT_TITLE = "New conversation"
MAX_TITLE_LENGTH = 200
CONVERSATION_COLUMNS = "id, title, status, created_at, updated_at"


# Queries


def get_conversation(
    conn: sqlite3.Connection, conversation_id: str, user_id: str
) -> sqlite3.Row | None:
    """Return the conversation if it exists and belongs to user_id, else None."""
    return conn.execute(
        f"""
        SELECT {CONVERSATION_COLUMNS}
        FROM conversations
        WHERE id = ? AND user_id = ?
        """,
        (conversation_id, user_id),
    ).fetchone()


def get_empty_conversation(
    conn: sqlite3.Connection, user_id: str
) -> sqlite3.Row | None:
    """Return the user's conversation that has no question yet, if any."""
    return conn.execute(
        f"""
        SELECT {CONVERSATION_COLUMNS}
        FROM conversations
        WHERE user_id = ? AND status = 'empty'
        """,
        (user_id,),
    ).fetchone()


def get_last_created_at(conn: sqlite3.Connection, user_id: str) -> str | None:
    """Return when the user last created a conversation, or None."""
    return conn.execute(
        "SELECT MAX(created_at) FROM conversations WHERE user_id = ?", (user_id,)
    ).fetchone()[0]


def insert_conversation(
    conn: sqlite3.Connection, user_id: str, title: str
) -> sqlite3.Row | None:
    """Insert an empty conversation; None when the user already has an empty one."""
    conversation_id = str(uuid.uuid4())
    now = utc_now()
    inserted = conn.execute(
        """
        INSERT INTO conversations (id, user_id, title, status, created_at, updated_at)
        VALUES (?, ?, ?, 'empty', ?, ?)
        ON CONFLICT DO NOTHING
        """,
        (conversation_id, user_id, title, now, now),
    ).rowcount
    return get_conversation(conn, conversation_id, user_id) if inserted else None


def list_conversations_of(conn: sqlite3.Connection, user_id: str) -> list[sqlite3.Row]:
    """Return the user's conversations with their message counts, newest first."""
    # TODO: the list is not paginated; fine for the hundreds of conversations
    # one person keeps, slow to send once someone has tens of thousands.
    return conn.execute(
        f"""
        SELECT {CONVERSATION_COLUMNS},
               (SELECT COUNT(*) FROM messages WHERE conversation_id = c.id)
                   AS message_count
        FROM conversations AS c
        WHERE user_id = ?
        ORDER BY updated_at DESC
        """,
        (user_id,),
    ).fetchall()


def list_messages(conn: sqlite3.Connection, conversation_id: str) -> list[sqlite3.Row]:
    """Return the conversation's messages, oldest first."""
    return conn.execute(
        """
        SELECT id, role, content, timestamp
        FROM messages
        WHERE conversation_id = ?
        ORDER BY timestamp, rowid
        """,
        (conversation_id,),
    ).fetchall()


def update_title(conn: sqlite3.Connection, conversation_id: str, title: str) -> None:
    """Rename the conversation and mark it updated."""
    conn.execute(
        "UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
        (title, utc_now(), conversation_id),
    )


def delete_conversation_row(conn: sqlite3.Connection, conversation_id: str) -> None:
    """Delete the conversation; its messages go with it (ON DELETE CASCADE)."""
    conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))


# Helpers


def load_conversation_or_404(
    conn: sqlite3.Connection, conversation_id: str, user_id: str
) -> sqlite3.Row:
    """Return the user's conversation; raises 404 if it is missing or not theirs."""
    conversation = get_conversation(conn, conversation_id, user_id)
    if conversation is None:
        raise HTTPException(404, "Conversation not found")
    return conversation


def find_or_create_empty(conn: sqlite3.Connection, user_id: str) -> sqlite3.Row:
    """Return the user's empty conversation, creating it if there is none.

    Call inside a write transaction.
    """
    conversation = get_empty_conversation(conn, user_id)
    if conversation is None:
        conversation = insert_conversation(conn, user_id, DEFAULT_TITLE)
    return conversation


def conversation_json(conversation: sqlite3.Row) -> dict:
    return {
        "id": conversation["id"],
        "title": conversation["title"],
        "status": conversation["status"],
        "created_at": conversation["created_at"],
        "updated_at": conversation["updated_at"],
    }


# Units of work, each run in a worker thread


def create_for_user(
    conn: sqlite3.Connection, user_id: str, title: str, cooldown: float
) -> sqlite3.Row:
    require_user(conn, user_id)
    with write_transaction(conn):
        existing = get_empty_conversation(conn, user_id)
        if existing is not None:
            return existing

        last = get_last_created_at(conn, user_id)
        if last is not None and cooldown > 0:
            elapsed = datetime.now(timezone.utc) - datetime.fromisoformat(last)
            remaining = cooldown - elapsed.total_seconds()
            if remaining > 0:
                raise HTTPException(
                    429,
                    "Conversations are being created too fast; try again shortly",
                    headers={"Retry-After": str(math.ceil(remaining))},
                )

        created = insert_conversation(conn, user_id, title)
        # BEGIN IMMEDIATE already serialises writers, so losing to the partial
        # index should not happen; if it does, the winner's row is the answer.
        return created or get_empty_conversation(conn, user_id)


def fetch_conversation_list(conn: sqlite3.Connection, user_id: str) -> list[dict]:
    require_user(conn, user_id)
    return [dict(row) for row in list_conversations_of(conn, user_id)]


def fetch_conversation(
    conn: sqlite3.Connection, conversation_id: str, user_id: str
) -> dict:
    require_user(conn, user_id)
    conversation = load_conversation_or_404(conn, conversation_id, user_id)
    messages = [dict(row) for row in list_messages(conn, conversation_id)]
    return conversation_json(conversation) | {"messages": messages}


def rename_for_user(
    conn: sqlite3.Connection, conversation_id: str, user_id: str, title: str
) -> sqlite3.Row:
    require_user(conn, user_id)
    with write_transaction(conn):
        load_conversation_or_404(conn, conversation_id, user_id)
        update_title(conn, conversation_id, title)
    return get_conversation(conn, conversation_id, user_id)


def delete_for_user(
    conn: sqlite3.Connection, conversation_id: str, user_id: str
) -> None:
    require_user(conn, user_id)
    with write_transaction(conn):
        load_conversation_or_404(conn, conversation_id, user_id)
        delete_conversation_row(conn, conversation_id)


# Routes


async def create_conversation(request: Request) -> JSONResponse:
    """Return the caller's empty conversation, creating one if they have none."""
    user_id = authenticated_user_id(request)
    body = await read_json_object(request, optional=True)
    title = text_field(
        body, "title", required=False, min_length=1, max_length=MAX_TITLE_LENGTH
    )
    state = request.app.state

    conversation = await state.db.write(
        create_for_user,
        user_id,
        title or DEFAULT_TITLE,
        state.settings.conversation_cooldown_seconds,
    )
    return JSONResponse(conversation_json(conversation), status_code=201)


async def list_conversations(request: Request) -> JSONResponse:
    """List the caller's conversations, most recently updated first."""
    user_id = authenticated_user_id(request)
    rows = await request.app.state.db.run(fetch_conversation_list, user_id)
    return JSONResponse(rows)


async def get_conversation_detail(request: Request) -> JSONResponse:
    """Return one conversation with its messages, oldest first."""
    user_id = authenticated_user_id(request)
    conversation_id = request.path_params["conversation_id"]
    body = await request.app.state.db.run(fetch_conversation, conversation_id, user_id)
    return JSONResponse(body)


async def rename_conversation(request: Request) -> JSONResponse:
    """Change a conversation's title."""
    user_id = authenticated_user_id(request)
    body = await read_json_object(request)
    title = text_field(body, "title", min_length=1, max_length=MAX_TITLE_LENGTH)
    conversation_id = request.path_params["conversation_id"]

    conversation = await request.app.state.db.write(
        rename_for_user, conversation_id, user_id, title
    )
    return JSONResponse(conversation_json(conversation))


async def delete_conversation(request: Request) -> Response:
    """Delete a conversation and its messages."""
    user_id = authenticated_user_id(request)
    conversation_id = request.path_params["conversation_id"]
    await request.app.state.db.write(delete_for_user, conversation_id, user_id)
    log.info("conversation %s deleted by user %s", conversation_id, user_id)
    return Response(status_code=204)
