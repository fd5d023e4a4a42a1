"""Property-based fuzzing of ``Decide`` in process, on the shipped default policy: every
call is a routed or passed-through answer or a 4xx-style status, never INTERNAL, and the
server stays healthy throughout."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given, settings

from irtgate.proto import decide_pb2, decide_pb2_grpc
from irtgate.server.app import Gateway, build
from irtgate.server.settings import Settings
from tests.fuzz import any_body, examples, hostile_body

T = TypeVar("T")
# What a client error may come back as (400/413/415 and 403); never INTERNAL or UNKNOWN.
CLIENT_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}


class Running:
    """The gateway on an event loop in a background thread, and blocking stubs to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway: Gateway = self.run(self._start())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.gateway.grpc_port}")
        self.decide = decide_pb2_grpc.DecideStub(self.channel).Decide
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def _start(self) -> Gateway:
        gateway = build(Settings(grpc_port=0, admin_port=0, policy_watch=False))
        await gateway.start()
        return gateway

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        self.channel.close()
        self.run(self.gateway.stop(grace=0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    r = Running()
    yield r
    r.close()


def check(running: Running, path: str, body: bytes) -> None:
    try:
        resp = running.decide(decide_pb2.DecideRequest(path=path, body=body), timeout=30)
    except grpc.RpcError as e:
        code = e.code()
        assert code in CLIENT_CODES, f"{code}: {e.details()}"
        error = json.loads(e.details() or "")["error"]
        assert set(error) == {"message", "type", "code"}
        assert error["code"] != "internal_error"
        return
    assert resp.outcome in ("routed", "passthrough")
    assert resp.upstream in ("demo-small", "demo-large")


@settings(max_examples=examples(500))
@given(any_body())
def test_fuzz_decide_answers_or_refuses_with_a_client_error(
    running: Running, case: tuple[str, bytes]
) -> None:
    check(running, *case)


@settings(max_examples=examples(300))
@given(hostile_body())
def test_fuzz_decide_on_hostile_json(running: Running, case: tuple[str, bytes]) -> None:
    check(running, *case)


def test_fuzz_leaves_the_server_healthy_and_counting(running: Running) -> None:
    ok = running.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert ok.status == health_pb2.HealthCheckResponse.SERVING
    body = {"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    resp = running.decide(
        decide_pb2.DecideRequest(path="/v1/chat/completions", body=json.dumps(body).encode())
    )
    assert resp.outcome == "routed"
    internal = running.gateway.registry.get_sample_value(
        "irtgate_errors_total", {"kind": "internal_error"}
    )
    assert not internal
