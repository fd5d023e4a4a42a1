"""irtgate's admin HTTP endpoints (aiohttp): liveness, readiness, Prometheus metrics.

With a token configured, every endpoint but the two health checks asks for
``Authorization: Bearer <token>`` (401 otherwise). The health checks stay open: load
balancers and Envoy's ``/healthz`` route call them, and they reveal nothing but up/ready.
Endpoints added later are covered by default: the open ones are listed, not the closed ones.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

OPEN_PATHS: Final = frozenset({"/healthz", "/readyz"})


def read_token(path: Path | None) -> str | None:
    """The bearer token in ``path`` (surrounding whitespace dropped); None without a file."""
    if path is None:
        return None
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"admin token file {path} is empty")
    return token


def _unauthorized() -> web.Response:
    body = {
        "error": {
            "message": "this admin endpoint needs 'Authorization: Bearer <token>'",
            "type": "authentication_error",
            "code": "unauthorized",
        }
    }
    return web.json_response(body, status=401, headers={"WWW-Authenticate": "Bearer"})


def _token_middleware(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _unauthorized()
        return await handler(request)

    return check


def admin_app(
    registry: CollectorRegistry,
    ready: Callable[[], bool],
    token: str | None = None,
    workers: Callable[[], list[dict[str, Any]]] | None = None,
) -> web.Application:
    """``/healthz`` answers while the process runs; ``/readyz`` only while ``ready()``.

    ``workers``: ``serve --workers N``'s per-worker state, shown in ``/readyz``'s body.
    """

    def status(word: str) -> dict[str, Any]:
        return {"status": word} if workers is None else {"status": word, "workers": workers()}

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.json_response(status("ready"))
        return web.json_response(status("not ready"), status=503)

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    app = web.Application(middlewares=[_token_middleware(token)] if token else [])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
