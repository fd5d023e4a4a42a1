"""Routing through a real Envoy: rewrite, passthrough, SSE, large bodies, forged headers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from irtgate.server.testing import Stack, running_stack, stack_settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-routing")]

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Default settings: alias "auto" → demo-small-1 @ low on demo-small; demo-large serves
    # demo-large-1; unknown models pass through to demo-small.
    with running_stack(tmp_path_factory.mktemp("routing"), stack_settings(), name="routing") as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def demo(r: httpx.Response) -> dict[str, Any]:
    """What the demo upstream says it received."""
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()["irtgate_demo"]
    return info


def test_alias_is_routed_and_body_rewritten(stack: Stack, client: httpx.Client) -> None:
    before = stack.metric(
        "irtgate_requests_total", api="chat_completions", decision="default",
        model="demo-small-1", budget="low", outcome="routed",
    )  # fmt: skip
    body = {"model": "auto", "messages": HI, "temperature": 0.5, "extra": {"kept": [1, 2]}}
    r = client.post(CHAT, json=body)
    got = demo(r)
    assert got["upstream"] == "demo-small"
    assert got["model"] == "demo-small-1"
    assert got["reasoning_effort"] == "low"
    # The upstream got the rewritten body with a Content-Length that matches it exactly.
    expected = dict(body, model="demo-small-1", reasoning_effort="low")
    expected_len = len(json.dumps(expected, separators=(",", ":")).encode())
    assert got["bytes_received"] == expected_len
    assert got["content_length"] == str(expected_len)
    assert r.headers["x-irtgate-model"] == "demo-small-1"
    assert r.headers["x-irtgate-budget"] == "low"
    assert r.headers["x-irtgate-decision"] == "default"
    after = stack.metric(
        "irtgate_requests_total", api="chat_completions", decision="default",
        model="demo-small-1", budget="low", outcome="routed",
    )  # fmt: skip
    assert after == before + 1


def test_responses_and_messages_get_their_own_budget_fields(client: httpx.Client) -> None:
    r = client.post(
        "/v1/responses", json={"model": "auto", "input": "hi", "reasoning": {"summary": "auto"}}
    )
    got = demo(r)
    assert got["model"] == "demo-small-1"
    assert got["reasoning"] == {"summary": "auto", "effort": "low"}
    r = client.post("/v1/messages", json={"model": "auto", "max_tokens": 4096, "messages": HI})
    got = demo(r)
    assert got["model"] == "demo-small-1"
    assert got["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_concrete_model_passes_through_untouched(stack: Stack, client: httpx.Client) -> None:
    raw = b'{ "model" : "demo-large-1", "messages": [{"role":"user","content":"hi"}] }'
    r = client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    got = demo(r)
    assert got["upstream"] == "demo-large"
    assert got["model"] == "demo-large-1"
    assert got["reasoning_effort"] is None
    assert got["bytes_received"] == len(raw)  # byte for byte: not re-serialised
    assert r.headers["x-irtgate-decision"] == "passthrough"


def test_unknown_model_passes_to_default_upstream(client: httpx.Client) -> None:
    got = demo(client.post(CHAT, json={"model": "someone-elses-model", "messages": HI}))
    assert got["upstream"] == "demo-small"
    assert got["model"] == "someone-elses-model"


def test_bodiless_and_non_llm_requests_pass_through(client: httpx.Client) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    assert r.json()["irtgate_demo"]["upstream"] == "demo-small"
    assert "x-irtgate-decision" not in r.headers  # nothing was decided


def test_health_paths_reach_irtgate_without_ext_proc(stack: Stack, client: httpx.Client) -> None:
    started = stack.envoy.stats("ext_proc")
    for path in ("/healthz", "/readyz"):
        r = client.get(path)
        assert r.status_code == 200, r.text
    after = stack.envoy.stats("ext_proc")
    key = "http.irtgate.ext_proc.streams_started"
    assert after.get(key, 0) == started.get(key, 0)


def test_forged_headers_do_not_pick_the_upstream(client: httpx.Client) -> None:
    forged = {
        "x-irtgate-upstream": "demo-large",
        "x-irtgate-model": "demo-large-1",
        "x-selected-model": "demo-large-1",
        "x-upstream-cluster": "demo-large",
    }
    got = demo(client.post(CHAT, json={"model": "auto", "messages": HI}, headers=forged))
    assert got["upstream"] == "demo-small"
    # x-irtgate-* names are irtgate's: a client's never reach the upstream
    assert [h for h in got["x_headers"] if h.startswith("x-irtgate-")] == []
    assert "x-selected-model" in got["x_headers"]  # other headers are left alone


def test_access_log_has_the_path_without_its_query(stack: Stack, client: httpx.Client) -> None:
    # A query string can carry PII; Envoy's access log keeps only the path.
    marker, secret = f"/v1/logcheck-{time.monotonic_ns()}", "alice.query@example.com"
    client.get(marker, params={"user": secret})

    def lines() -> list[str]:
        return [s for s in stack.envoy.log_path.read_text().splitlines() if marker in s]

    deadline = time.monotonic() + 10  # Envoy flushes its access log about once a second
    while not lines() and time.monotonic() < deadline:
        time.sleep(0.1)
    (line,) = lines()
    assert f'"GET {marker}"' in line
    assert "alice.query" not in stack.envoy.log_path.read_text()


def test_sse_first_event_is_not_delayed(client: httpx.Client) -> None:
    # The demo upstream sends 5 frames (4 events + a terminator) 0.2 s apart.
    arrivals: list[float] = []
    start = time.perf_counter()
    body = {"model": "auto", "messages": HI, "stream": True}
    with client.stream("POST", CHAT, json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-irtgate-model"] == "demo-small-1"
        first_payload = None
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter() - start)
                first_payload = first_payload or line[6:]
    assert len(arrivals) == 5
    assert json.loads(first_payload or "{}")["irtgate_demo"]["model"] == "demo-small-1"
    # Buffering would deliver everything together at ≥ 0.8 s.
    assert arrivals[0] < 0.4, arrivals
    assert arrivals[-1] - arrivals[0] > 0.6, arrivals


def test_eight_mib_body_is_routed(client: httpx.Client) -> None:
    big = "x" * (8 * 1024 * 1024)
    body = {"model": "auto", "messages": [{"role": "user", "content": big}]}
    raw = json.dumps(body).encode()
    r = client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    got = demo(r)
    assert got["upstream"] == "demo-small"
    assert got["model"] == "demo-small-1"
    assert got["bytes_received"] == int(got["content_length"]) > 8 * 1024 * 1024


def test_admin_metrics_endpoint(stack: Stack, client: httpx.Client) -> None:
    client.post(CHAT, json={"model": "auto", "messages": HI})
    text = httpx.get(stack.admin_url + "/metrics").text
    assert "irtgate_requests_total{" in text
    assert "irtgate_decision_latency_seconds_bucket" in text
    assert 'outcome="routed"' in text
    assert "hi" not in [line.split()[-1] for line in text.splitlines() if line]


def test_grpc_health_and_decide(stack: Stack, tmp_path: Path) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from irtgate.proto import decide_pb2, decide_pb2_grpc

    with grpc.insecure_channel(stack.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="irtgate.v1.Decide"))
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = decide_pb2_grpc.DecideStub(channel)
        body = json.dumps({"model": "auto", "messages": HI}).encode()
        resp = stub.Decide(decide_pb2.DecideRequest(path=CHAT, body=body))
        assert (resp.outcome, resp.model, resp.upstream, resp.budget) == (
            "routed",
            "demo-small-1",
            "demo-small",
            "low",
        )
        assert json.loads(resp.body)["model"] == "demo-small-1"
        with pytest.raises(grpc.RpcError) as err:
            stub.Decide(decide_pb2.DecideRequest(path=CHAT, body=b"{nope"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert json.loads(err.value.details())["error"]["code"] == "invalid_json"
