"""The Gateway in process: admin endpoints, Decide, gRPC health, drain on stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from irtgate.policies.outcome import Choice, Outcome
from irtgate.proto import decide_pb2, decide_pb2_grpc
from irtgate.server.app import Gateway
from irtgate.server.decide_service import grpc_status
from irtgate.server.deciders import check_upstreams, load_decider
from irtgate.server.settings import DeciderKind, Settings
from irtgate.server.static_decider import StaticDecider
from irtgate.signals import errors
from irtgate.signals.request import LLMRequest

CHAT_BODY = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "x"}]}).encode()


class SlowDecider(StaticDecider):
    async def decide(self, request: LLMRequest) -> Outcome:
        await asyncio.sleep(0.3)
        return await super().decide(request)


def settings() -> Settings:
    return Settings(grpc_port=0, admin_port=0)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    s = settings()
    gw = Gateway(s, SlowDecider.from_settings(s))
    await gw.start()
    yield gw
    await gw.stop(grace=0)


async def test_admin_endpoints(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.admin_port}") as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/readyz")).status_code == 200
        text = (await c.get("/metrics")).text
        assert "irtgate_streams_active" in text


async def test_decide_health_and_drain(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        ok = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert ok.status == health_pb2.HealthCheckResponse.SERVING
        stub = decide_pb2_grpc.DecideStub(channel)
        call = stub.Decide(decide_pb2.DecideRequest(path="/v1/chat/completions", body=CHAT_BODY))
        await asyncio.sleep(0.05)  # the call is in flight (the decider takes 0.3 s)
        stopping = asyncio.create_task(gateway.stop(grace=5))
        resp = await call  # drained, not cut off
        assert (resp.outcome, resp.model) == ("routed", "demo-small-1")
        await stopping
    assert not gateway.ready


async def test_decide_rejects_unknown_path(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = decide_pb2_grpc.DecideStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Decide(decide_pb2.DecideRequest(path="/v1/models", body=CHAT_BODY))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert json.loads(e.value.details() or "")["error"]["code"] == "invalid_request"


def test_grpc_status_mapping() -> None:
    assert grpc_status(errors.INVALID_JSON) == grpc.StatusCode.INVALID_ARGUMENT
    assert grpc_status(errors.POLICY_BLOCKED) == grpc.StatusCode.PERMISSION_DENIED
    assert grpc_status(errors.NO_CANDIDATE) == grpc.StatusCode.UNAVAILABLE
    assert grpc_status(errors.INTERNAL) == grpc.StatusCode.INTERNAL


def test_load_decider_and_upstream_check() -> None:
    s = Settings(decider=DeciderKind.STATIC)
    decider = load_decider(s)
    assert isinstance(decider, StaticDecider)
    assert decider.choice.upstream == "demo-small"
    bad = StaticDecider.from_settings(s)
    bad.choice = Choice("c", "m", "nowhere")
    with pytest.raises(ValueError, match="nowhere"):
        check_upstreams(s, bad)


class LifecycleDecider(StaticDecider):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


async def test_decider_lifecycle_follows_gateway() -> None:
    s = settings()
    d = LifecycleDecider(StaticDecider.from_settings(s).choice)
    gw = Gateway(s, d)
    await gw.start()
    assert d.events == ["start"]
    await gw.stop(grace=0)
    assert d.events == ["start", "stop"]


async def test_busy_port_fails_loudly(gateway: Gateway) -> None:
    s = settings().replace(grpc_port=gateway.grpc_port)
    second = Gateway(s, StaticDecider.from_settings(s))
    with pytest.raises(RuntimeError, match="bind"):
        await second.start()
    await second.stop(grace=0)
