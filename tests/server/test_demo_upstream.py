from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from irtgate.server.demo_upstream import DemoConfig, DemoUpstream


@pytest.fixture
async def demo() -> AsyncIterator[str]:
    up = DemoUpstream(DemoConfig("echo-1", stream_events=3, stream_interval_s=0.01))
    await up.start()
    yield f"http://127.0.0.1:{up.port}"
    await up.stop()


async def test_echo_shapes(demo: str) -> None:
    async with httpx.AsyncClient(base_url=demo) as c:
        r = await c.post(
            "/v1/chat/completions", json={"model": "m", "reasoning_effort": "high", "messages": []}
        )
        doc = r.json()
        assert doc["object"] == "chat.completion"
        assert doc["irtgate_demo"]["upstream"] == "echo-1"
        assert "reasoning_effort=high" in doc["choices"][0]["message"]["content"]
        r = await c.post("/v1/responses", json={"model": "m", "reasoning": {"effort": "low"}})
        assert r.json()["irtgate_demo"]["reasoning"] == {"effort": "low"}
        r = await c.post("/v1/messages", json={"model": "m", "thinking": {"type": "enabled"}})
        assert r.json()["type"] == "message"
        # The text it was given comes back, in order, without role/type tags.
        body = {
            "model": "m",
            "system": "sys",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "one"}]},
                {"role": "assistant", "content": "two"},
            ],
        }
        r = await c.post("/v1/messages", json=body)
        assert r.json()["irtgate_demo"]["texts"] == ["sys", "one", "two"]
        r = await c.post("/v1/messages", content=b"[]")
        assert r.status_code == 400


@pytest.mark.parametrize(
    ("path", "n", "last"),
    [
        # 3 content events each, framed as each API frames them.
        ("/v1/chat/completions", 4, "data: [DONE]"),
        ("/v1/responses", 5, "event: response.completed"),
        ("/v1/messages", 8, "event: message_stop"),
    ],
)
async def test_streaming(demo: str, path: str, n: int, last: str) -> None:
    async with httpx.AsyncClient(base_url=demo) as c:
        r = await c.post(path, json={"model": "m", "stream": True})
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in r.text.split("\n\n") if f]
        assert len(frames) == n
        assert frames[-1].startswith(last)
        first = json.loads(frames[0].split("data: ", 1)[1])
        assert first["irtgate_demo"]["model"] == "m"


async def test_records_requests_checks_keys_and_plays_faults() -> None:
    up = DemoUpstream(DemoConfig("p", expect_key=("x-api-key", "k1")))
    await up.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{up.port}") as c:
            body = {"model": "m", "messages": []}
            # Any base path before the API's own (Gemini's /v1beta/openai, say).
            r = await c.post("/v1beta/openai/chat/completions", json=body)
            assert r.status_code == 401
            r = await c.post("/v1/messages", json=body, headers={"x-api-key": "k1"})
            assert r.status_code == 200
            up.state.faults.extend(["429", "503"])
            codes = [(await c.post("/v1/messages", json=body)).status_code for _ in range(2)]
            assert codes == [429, 503]
            up.state.faults.append("close")
            with pytest.raises(httpx.HTTPError):
                await c.post("/v1/messages", json=body, headers={"x-api-key": "k1"})
        got = [(x.path, x.headers.get("x-api-key")) for x in up.state.received]
        assert got == [
            ("/v1beta/openai/chat/completions", None),
            ("/v1/messages", "k1"),
            ("/v1/messages", None),
            ("/v1/messages", None),
            ("/v1/messages", "k1"),
        ]
    finally:
        await up.stop()
