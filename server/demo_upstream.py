"""DEMO STAND-IN for a real LLM API: an echo server, not a model.

It answers Chat Completions, Responses and Anthropic Messages requests with a reply that
states which demo upstream answered and which model and reasoning budget fields it was
asked for, so the effect of irtgate's routing is visible with curl. ``"stream": true``
gets Server-Sent Events spaced in time (to show that streaming is not buffered).
The ``irtgate_demo`` object in every reply is for humans and tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

DEMO_NOTE = "demo upstream: echoes the request, no model behind it"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    name: str
    stream_events: int = 4
    stream_interval_s: float = 0.2


_TEXT_KEYS = ("system", "instructions", "messages", "input")
_TEXT_LIMIT = 64  # strings echoed back; each cut to 2,000 characters


def _texts(value: Any, out: list[str]) -> None:
    """The text the upstream was given, in order (to show what a policy changed, e.g.
    redaction): string leaves, except role and type tags."""
    if len(out) >= _TEXT_LIMIT:
        return
    if isinstance(value, str):
        out.append(value[:2000])
    elif isinstance(value, list):
        for item in value:
            _texts(item, out)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("role", "type", "id", "tool_call_id", "name"):
                _texts(item, out)


def _received(name: str, request: web.Request, raw: bytes, doc: dict[str, Any]) -> dict[str, Any]:
    texts: list[str] = []
    for key in _TEXT_KEYS:
        _texts(doc.get(key), texts)
    return {
        "note": DEMO_NOTE,
        "upstream": name,
        "path": request.path,
        "model": doc.get("model"),
        "reasoning_effort": doc.get("reasoning_effort"),
        "reasoning": doc.get("reasoning"),
        "thinking": doc.get("thinking"),
        "content_length": request.headers.get("content-length"),
        "bytes_received": len(raw),
        # Names only: shows which x- headers made it upstream without echoing secrets.
        "x_headers": sorted(k.lower() for k in request.headers if k.lower().startswith("x-")),
        # An echo server shows what it got; a real model would answer it.
        "texts": texts,
    }


def _text(info: dict[str, Any]) -> str:
    effort = info["reasoning_effort"]
    return (
        f"[{info['upstream']}] model={info['model']} "
        f"reasoning_effort={'null' if effort is None else effort} "
        f"reasoning={json.dumps(info['reasoning'])} thinking={json.dumps(info['thinking'])}"
    )


def _reply(kind: str, info: dict[str, Any]) -> dict[str, Any]:
    text, model, now = _text(info), info["model"], int(time.time())
    if kind == "chat":
        return {
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "created": now,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "irtgate_demo": info,
        }
    if kind == "responses":
        return {
            "id": "resp-demo",
            "object": "response",
            "created_at": now,
            "model": model,
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text}],
                }
            ],
            "irtgate_demo": info,
        }
    return {
        "id": "msg-demo",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "irtgate_demo": info,
    }


def _events(kind: str, info: dict[str, Any], n: int) -> list[bytes]:
    """SSE frames in the API's own streaming shape; the first carries ``irtgate_demo``."""
    model = info["model"]
    out: list[bytes] = []
    for i in range(n):
        piece = _text(info) if i == 0 else f" part {i}"
        if kind == "chat":
            chunk: dict[str, Any] = {
                "id": "chatcmpl-demo",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}}],
            }
            name = None
        elif kind == "responses":
            chunk, name = (
                {"type": "response.output_text.delta", "delta": piece},
                "response.output_text.delta",
            )
        else:
            chunk, name = (
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
                "content_block_delta",
            )
        if i == 0:
            chunk["irtgate_demo"] = info
        out.append(_frame(chunk, name))
    if kind == "chat":
        out.append(b"data: [DONE]\n\n")
    elif kind == "responses":
        out.append(_frame({"type": "response.completed"}, "response.completed"))
    else:
        out.append(_frame({"type": "message_stop"}, "message_stop"))
    return out


def _frame(data: dict[str, Any], event: str | None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def demo_app(config: DemoConfig) -> web.Application:
    async def handle(request: web.Request, kind: str) -> web.StreamResponse:
        raw = await request.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return web.json_response(
                {
                    "error": {
                        "message": "demo upstream: body is not a JSON object",
                        "type": "invalid_request_error",
                        "code": "invalid_json",
                    }
                },
                status=400,
            )
        info = _received(config.name, request, raw, doc)
        if not doc.get("stream"):
            return web.json_response(_reply(kind, info))
        resp = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await resp.prepare(request)
        try:
            for i, frame in enumerate(_events(kind, info, config.stream_events)):
                if i:
                    await asyncio.sleep(config.stream_interval_s)
                await resp.write(frame)
            await resp.write_eof()
        except ConnectionResetError:  # the client went away mid-stream: nothing to do
            pass
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        return await handle(request, "chat")

    async def responses(request: web.Request) -> web.StreamResponse:
        return await handle(request, "responses")

    async def messages(request: web.Request) -> web.StreamResponse:
        return await handle(request, "messages")

    async def models(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [],
                "irtgate_demo": {"note": DEMO_NOTE, "upstream": config.name},
            }
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", models)
    return app


class DemoUpstream:
    """One demo upstream on ``host:port`` (port 0 picks a free one; read ``.port``)."""

    def __init__(self, config: DemoConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(demo_app(self.config), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def run_demo_upstream(name: str, host: str, port: int, stream_interval_s: float) -> None:
    """One demo upstream until SIGINT/SIGTERM (``irtgate demo-upstream``, the compose stack)."""
    from irtgate.server.app import wait_for_signal

    upstream = DemoUpstream(DemoConfig(name, stream_interval_s=stream_interval_s), host, port)
    await upstream.start()
    log.info("demo upstream %s listening on %s:%d", name, host, upstream.port)
    try:
        await wait_for_signal()
    finally:
        await upstream.stop()
