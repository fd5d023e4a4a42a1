"""The ext_proc phases without Envoy: what irtgate answers for each message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from prometheus_client import CollectorRegistry

from irtgate.policies.outcome import Outcome
from irtgate.server.core import GatewayCore
from irtgate.server.extproc import ROUTE_HEADER, ExternalProcessor, StreamProcessor
from irtgate.server.metrics import Metrics
from irtgate.server.settings import Settings, UnknownModelMode
from irtgate.server.static_decider import StaticDecider
from irtgate.signals.request import LLMRequest

CHAT = "/v1/chat/completions"


def headers(
    path: str = CHAT, method: str = "POST", eos: bool = False, extra: dict[str, str] | None = None
) -> pb.ProcessingRequest:
    hs = {":path": path, ":method": method, "content-type": "application/json", **(extra or {})}
    return pb.ProcessingRequest(request_headers=pb.HttpHeaders(
        headers=base_pb2.HeaderMap(headers=[
            base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in hs.items()]),
        end_of_stream=eos))  # fmt: skip


def body(doc: Any) -> pb.ProcessingRequest:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return pb.ProcessingRequest(request_body=pb.HttpBody(body=data, end_of_stream=True))


def make(
    settings: Settings | None = None, decider: Any = None
) -> tuple[StreamProcessor, Metrics, CollectorRegistry]:
    settings = settings or Settings()
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    core = GatewayCore(settings, decider or StaticDecider.from_settings(settings), metrics)
    return StreamProcessor(core), metrics, registry


def set_headers(common: pb.CommonResponse) -> dict[str, bytes]:
    return {h.header.key: h.header.raw_value for h in common.header_mutation.set_headers}


async def test_routed_body_reply() -> None:
    proc, _, registry = make()
    r = await proc.handle(headers())
    assert r.WhichOneof("response") == "request_headers"
    r = await proc.handle(body({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
    common = r.request_body.response
    new = json.loads(common.body_mutation.body)
    assert new["model"] == "demo-small-1" and new["reasoning_effort"] == "low"
    # raw_value, never value: Envoy 1.40 would apply an empty header otherwise
    assert set_headers(common)["content-length"] == str(len(common.body_mutation.body)).encode()
    assert all(not h.header.value for h in common.header_mutation.set_headers)
    assert common.clear_route_cache
    md = r.dynamic_metadata.fields["irtgate"].struct_value
    assert md.fields["upstream"].string_value == "demo-small"
    assert md.fields["decision"].string_value == "default"
    assert md.fields["budget"].string_value == "low"
    assert (
        registry.get_sample_value(
            "irtgate_decision_latency_seconds_count", {"api": "chat_completions"}
        )
        == 1
    )


async def test_passthrough_concrete_model_has_no_body_mutation() -> None:
    proc, _, registry = make()
    await proc.handle(headers())
    r = await proc.handle(
        body({"model": "demo-large-1", "messages": [{"role": "user", "content": "x"}]})
    )
    common = r.request_body.response
    assert not common.HasField("body_mutation")
    assert common.clear_route_cache
    assert (
        r.dynamic_metadata.fields["irtgate"].struct_value.fields["upstream"].string_value
        == "demo-large"
    )
    assert (
        registry.get_sample_value(
            "irtgate_requests_total",
            {
                "api": "chat_completions",
                "decision": "passthrough",
                "model": "demo-large-1",
                "budget": "none",
                "outcome": "passthrough",
            },
        )
        == 1
    )


async def test_unknown_model_label_is_bounded() -> None:
    proc, _, registry = make()
    await proc.handle(headers())
    await proc.handle(body({"model": "x" * 500, "messages": [{"role": "user", "content": "x"}]}))
    assert (
        registry.get_sample_value(
            "irtgate_requests_total",
            {
                "api": "chat_completions",
                "decision": "passthrough",
                "model": "unknown",
                "budget": "none",
                "outcome": "passthrough",
            },
        )
        == 1
    )


async def test_unknown_model_rejected_when_configured() -> None:
    proc, _, _ = make(Settings(unknown_model=UnknownModelMode.REJECT))
    await proc.handle(headers())
    r = await proc.handle(body({"model": "nope", "messages": [{"role": "user", "content": "x"}]}))
    imm = r.immediate_response
    assert imm.status.code == 400
    assert json.loads(imm.body)["error"]["code"] == "model_not_found"
    assert {h.header.key: h.header.raw_value for h in imm.headers.set_headers} == {
        "content-type": b"application/json"
    }


async def test_non_json_content_type_rejected_at_headers() -> None:
    proc, _, registry = make()
    r = await proc.handle(headers(extra={"content-type": "text/plain"}))
    assert r.immediate_response.status.code == 415
    assert (
        registry.get_sample_value("irtgate_errors_total", {"kind": "unsupported_media_type"}) == 1
    )


async def test_declared_length_over_limit_rejected_at_headers() -> None:
    proc, _, _ = make(Settings(body_limit=100))
    r = await proc.handle(headers(extra={"content-length": "101"}))
    assert r.immediate_response.status.code == 413
    assert json.loads(r.immediate_response.body)["error"]["code"] == "request_too_large"


async def test_bodiless_and_other_paths_continue() -> None:
    proc, _, _ = make()
    r = await proc.handle(headers("/v1/models", "GET", eos=True))
    assert r.WhichOneof("response") == "request_headers"
    assert not r.HasField("dynamic_metadata")
    proc, _, _ = make()
    await proc.handle(headers("/upload", extra={"content-type": "text/plain"}))
    r = await proc.handle(body(b"not json at all"))
    assert r.WhichOneof("response") == "request_body"
    assert not r.request_body.response.HasField("body_mutation")


async def test_empty_post_to_llm_path_is_400() -> None:
    proc, _, _ = make()
    r = await proc.handle(headers(eos=True))
    assert r.immediate_response.status.code == 400


class Boom(StaticDecider):
    async def decide(self, request: LLMRequest) -> Outcome:
        raise ValueError("prompt text might be in here")


async def test_decider_crash_is_internal_error_without_details() -> None:
    settings = Settings()
    proc, _, registry = make(settings, Boom.from_settings(settings))
    await proc.handle(headers())
    r = await proc.handle(body({"model": "auto", "messages": [{"role": "user", "content": "x"}]}))
    assert r.immediate_response.status.code == 500
    assert b"prompt" not in r.immediate_response.body
    assert registry.get_sample_value("irtgate_errors_total", {"kind": "internal_error"}) == 1


async def test_unrequested_phases_continue() -> None:
    proc, _, _ = make()
    r = await proc.handle(pb.ProcessingRequest(response_headers=pb.HttpHeaders()))
    assert r.WhichOneof("response") == "response_headers"


@pytest.mark.parametrize("bad", [b"", b"{"])
async def test_bad_bodies_do_not_raise(bad: bytes) -> None:
    proc, _, _ = make()
    await proc.handle(headers())
    r = await proc.handle(body(bad))
    assert r.immediate_response.status.code == 400


class PinningDecider(StaticDecider):
    """A decider that also handles a concrete model (as a policy with pinned models does)."""

    def known_models(self) -> tuple[str, ...]:
        return ("pinned-model",)


async def test_decider_known_models_are_routed() -> None:
    settings = Settings()
    proc, _, _ = make(settings, PinningDecider.from_settings(settings))
    await proc.handle(headers())
    r = await proc.handle(
        body({"model": "pinned-model", "messages": [{"role": "user", "content": "x"}]})
    )
    md = r.dynamic_metadata.fields["irtgate"].struct_value.fields
    assert md["decision"].string_value == "default"
    assert json.loads(r.request_body.response.body_mutation.body)["model"] == "demo-small-1"
    assert proc.core.routes("auto") and not proc.core.routes("demo-large-1")


async def _process(messages: list[pb.ProcessingRequest]) -> tuple[int, int]:
    """Feed ``messages`` to ExternalProcessor.Process: (responses sent, messages consumed)."""
    settings = Settings()
    core = GatewayCore(
        settings, StaticDecider.from_settings(settings), Metrics.create(CollectorRegistry())
    )
    consumed = 0

    async def requests() -> AsyncIterator[pb.ProcessingRequest]:
        nonlocal consumed
        for m in messages:
            consumed += 1
            yield m

    sent = [r async for r in ExternalProcessor(core).Process(requests(), None)]
    return len(sent), consumed


RESPONSE_HEADERS = pb.ProcessingRequest(response_headers=pb.HttpHeaders())


async def test_stream_ends_once_the_decision_is_sent() -> None:
    # Left open for the response phase, the stream would tie every response in flight to
    # this process: a restart would cut them (issue 10, defect 2).
    chat = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    assert await _process([headers(), body(chat), RESPONSE_HEADERS]) == (2, 2)
    # not an LLM request: nothing to decide, the stream ends after the headers
    assert await _process([headers("/v1/models", "GET", eos=True), RESPONSE_HEADERS]) == (1, 1)
    assert await _process([headers("/upload"), body(b"x"), RESPONSE_HEADERS]) == (1, 1)
    # a rejection ends it too
    assert await _process([headers(eos=True), RESPONSE_HEADERS]) == (1, 1)


async def test_routing_header_names_the_chosen_upstream() -> None:
    proc, _, _ = make()
    await proc.handle(headers())
    r = await proc.handle(body({"model": "auto", "messages": [{"role": "user", "content": "x"}]}))
    assert set_headers(r.request_body.response)[ROUTE_HEADER] == b"demo-small"
    proc, _, _ = make()
    await proc.handle(headers())
    r = await proc.handle(
        body({"model": "demo-large-1", "messages": [{"role": "user", "content": "x"}]})
    )
    assert set_headers(r.request_body.response)[ROUTE_HEADER] == b"demo-large"


async def test_client_sent_routing_header_is_removed_before_routing() -> None:
    # Envoy Gateway's HTTPRoute matches this header: a client's copy must not survive.
    for path, method, eos in ((CHAT, "POST", False), ("/v1/models", "GET", True)):
        proc, _, _ = make()
        r = await proc.handle(headers(path, method, eos, extra={ROUTE_HEADER: "demo-large"}))
        common = r.request_headers.response
        assert list(common.header_mutation.remove_headers) == [ROUTE_HEADER]
        assert common.clear_route_cache
    # Without a client copy the headers reply stays empty (no needless route clear).
    proc, _, _ = make()
    r = await proc.handle(headers())
    assert not r.request_headers.HasField("response")
