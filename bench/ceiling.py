"""The ceiling: a bare Starlette endpoint served exactly as privia.py serves Privia.

Nothing Privia does can be faster than this, so the benchmark prints every
scenario's throughput as a share of it.
"""

import os

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request: Request) -> JSONResponse:
    """Answer with a small fixed JSON body."""
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/api/health", health, methods=["GET"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]))
