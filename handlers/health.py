"""Health: /api/health, for load balancers, uptime checks and people."""

import logging
import os
import sqlite3
import time
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import JSONResponse

from settings import VERSION

log = logging.getLogger("privia.health")


def check_database(conn: sqlite3.Connection) -> None:
    """Read a table; raises sqlite3.Error when the database is unusable or gone."""
    conn.execute("SELECT id FROM users LIMIT 1").fetchone()
    # A kept connection goes on reading a file that was deleted under it.
    path = conn.execute("PRAGMA database_list").fetchone()["file"]
    if not os.path.exists(path):
        raise sqlite3.OperationalError(f"the database file {path} is gone")


async def health(request: Request) -> JSONResponse:
    """Say whether Privia and its database are up."""
    state = request.app.state
    try:
        await state.db.run(check_database)
        database = "ok"
    except sqlite3.Error as error:
        log.warning("health check cannot read the database: %s", error)
        database = "unavailable"

    body = {
        "status": "ok" if database == "ok" else "degraded",
        "version": VERSION,
        "env": state.settings.env,
        "uptime": round(time.monotonic() - state.started, 3),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "database": database,
        "engine": state.engine.name,
    }
    # What the engine depends on (a model server) never decides Privia's status:
    # chat fails with a clear error while it is down, everything else works.
    engine_health = state.engine.health()
    if engine_health is not None:
        body["model_server"] = engine_health
    return JSONResponse(body, status_code=200 if database == "ok" else 503)
