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
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

log = logging.getLogger(__name__)

DEMO_NOTE = "demo upstream: echoes the request, no model behind it"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    name: str
    stream_events: int = 4
    stream_interval_s: float = 0.2
    # (header, exact value) a stand-in provider insists on, as a real one checks its key;
    # anything else gets the provider's 401.
    expect_key: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """What one request brought (for tests: which headers reached the provider)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


FAULTS: Final = ("429", "502", "503", "close", "hang")


@dataclass
class DemoState:
    """Shared by the app's handlers: what was received, and faults queued for the next
    LLM requests (one per request, in order): an HTTP status, ``close`` (drop the
    connection without answering) or ``hang`` (never answer)."""

    received: list[Received] = field(default_factory=list)
    faults: deque[str] = field(default_factory=deque)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends every hang


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


def _reply(kind: str, info: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    model, now = info["model"], int(time.time())
    text = _text(info) if text is None else text
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
                    "id": "msg-demo",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
            "irtgate_demo": info,
        }
    return {
        "id": "msg-demo",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "irtgate_demo": info,
    }


def _events(kind: str, info: dict[str, Any], n: int) -> list[bytes]:
    """SSE frames in the API's own streaming shape (enough for the official SDKs' stream
    helpers); the first frame carries ``irtgate_demo``."""
    pieces = [_text(info) if i == 0 else f" part {i}" for i in range(n)]
    if kind == "chat":
        frames = [_chat_chunk(info, p, i == 0) for i, p in enumerate(pieces)]
        return [*frames, b"data: [DONE]\n\n"]
    if kind == "responses":
        done = _reply("responses", info, "".join(pieces))
        start = {**done, "status": "in_progress", "output": []}
        seq = ({"sequence_number": i} for i in range(n + 2))
        return [
            _frame({"type": "response.created", "response": start, **next(seq)}, True),
            *(
                _frame(
                    {
                        "type": "response.output_text.delta",
                        "item_id": "msg-demo",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": p,
                        **next(seq),
                    }
                )
                for p in pieces
            ),
            _frame({"type": "response.completed", "response": done, **next(seq)}),
        ]
    message = _reply("messages", info)
    return [
        _frame(
            {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}},
            True,
        ),
        _frame(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        ),
        *(
            _frame(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                }
            )
            for p in pieces
        ),
        _frame({"type": "content_block_stop", "index": 0}),
        _frame(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": n},
            }
        ),
        _frame({"type": "message_stop"}),
    ]


def _chat_chunk(info: dict[str, Any], piece: str, first: bool) -> bytes:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-demo",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": info["model"],
        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
    }
    if first:
        chunk["irtgate_demo"] = info
        chunk["choices"][0]["delta"]["role"] = "assistant"
    return f"data: {json.dumps(chunk)}\n\n".encode()


def _frame(data: dict[str, Any], demo_info: bool = False) -> bytes:
    """A named SSE event (Responses and Messages name each event by its type)."""
    if demo_info:
        data = {**data, "irtgate_demo": _info_of(data)}
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def _info_of(data: dict[str, Any]) -> Any:
    inner = data.get("response") or data.get("message") or {}
    return inner.get("irtgate_demo")


def _error(status: int, message: str, kind: str, code: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": code}}, status=status
    )


async def _fault(request: web.Request, fault: str, state: DemoState) -> web.StreamResponse:
    if fault == "hang":
        # aiohttp does not cancel a handler whose client left: stop() releases it.
        await state.release.wait()
    if fault == "close":
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError
    return _error(int(fault), f"demo upstream: injected {fault}", "server_error", "demo_fault")


def demo_app(config: DemoConfig, state: DemoState | None = None) -> web.Application:
    state = state if state is not None else DemoState()

    async def handle(request: web.Request, kind: str) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        state.received.append(Received(request.method, request.path, headers, raw))
        if state.faults:
            return await _fault(request, state.faults.popleft(), state)
        if config.expect_key is not None:
            header, value = config.expect_key
            if headers.get(header) != value:
                return _error(401, "demo upstream: wrong or missing key", "authentication_error",
                              "invalid_api_key")  # fmt: skip
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
    # Any base path (a provider's /v1beta/openai, /openai/v1...) before the API's own.
    app.router.add_post("/{base:.*}/chat/completions", chat)
    app.router.add_post("/{base:.*}/responses", responses)
    app.router.add_post("/{base:.*}/messages", messages)
    app.router.add_get("/{base:.*}/models", models)
    return app


class DemoUpstream:
    """One demo upstream on ``host:port`` (port 0 picks a free one; read ``.port``)."""

    def __init__(
        self,
        config: DemoConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.ssl_context = ssl_context  # set: serve HTTPS (a stand-in for a hosted API)
        self.state = DemoState()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(demo_app(self.config, self.state), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context).start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        self.state.release.set()
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
