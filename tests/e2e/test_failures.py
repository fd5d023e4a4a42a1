"""Failure behaviour through Envoy: crashes, timeouts, a dead processor in both fail modes."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from irtgate.policies.outcome import Outcome
from irtgate.server.settings import FailMode
from irtgate.server.static_decider import StaticDecider
from irtgate.server.testing import Stack, running_stack, stack_settings
from irtgate.signals.request import LLMRequest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-failures")]

CHAT = "/v1/chat/completions"
CRASH, SLOW = 666, 777  # max_tokens values that trigger the faulty decider's faults
FORGED = {
    "x-irtgate-upstream": "demo-large",
    "x-irtgate-model": "demo-large-1",
    "x-selected-model": "demo-large-1",
    "x-upstream-cluster": "demo-large",
}


def chat(max_tokens: int | None = None, model: str = "auto") -> dict[str, object]:
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


class FaultyDecider(StaticDecider):
    """The static decider, except it crashes or stalls on chosen requests."""

    async def decide(self, request: LLMRequest) -> Outcome:
        if request.max_tokens == CRASH:
            raise RuntimeError("simulated bug in a decider")
        if request.max_tokens == SLOW:
            await asyncio.sleep(2.5)
        return await super().decide(request)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = stack_settings(message_timeout_s=1.0)
    decider = FaultyDecider.from_settings(settings)
    with running_stack(
        tmp_path_factory.mktemp("faulty"), settings, decider=decider, name="faulty"
    ) as s:
        yield s


def test_crash_in_one_request_is_a_500_json_for_that_request_only(faulty: Stack) -> None:
    before = faulty.metric("irtgate_errors_total", kind="internal_error")
    bodies = [chat(CRASH if i % 4 == 0 else None) for i in range(16)]

    def send(body: dict[str, object]) -> httpx.Response:
        return httpx.post(faulty.url + CHAT, json=body, timeout=10)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, bodies))
    for body, r in zip(bodies, results, strict=True):
        if body.get("max_tokens") == CRASH:
            assert r.status_code == 500
            assert r.json()["error"]["code"] == "internal_error"
            assert "simulated" not in r.text and "Traceback" not in r.text
        else:
            assert r.status_code == 200, r.text
            assert r.json()["irtgate_demo"]["model"] == "demo-small-1"
    assert faulty.metric("irtgate_errors_total", kind="internal_error") == before + 4


def test_slow_decision_hits_message_timeout_as_json_504(faulty: Stack) -> None:
    r = httpx.post(faulty.url + CHAT, json=chat(SLOW), timeout=10)
    # Envoy keeps 504 for a per-message timeout (status_on_error covers other failures).
    assert r.status_code == 504
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "routing_unavailable"
    # and the next request is served normally
    assert httpx.post(faulty.url + CHAT, json=chat(), timeout=10).status_code == 200


@pytest.fixture(scope="module")
def dead_closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = stack_settings(fail_mode=FailMode.CLOSED)
    with running_stack(
        tmp_path_factory.mktemp("dead-closed"), settings, processor="none", name="dead-closed"
    ) as s:
        yield s


@pytest.fixture(scope="module")
def dead_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = stack_settings(fail_mode=FailMode.OPEN)
    with running_stack(
        tmp_path_factory.mktemp("dead-open"), settings, processor="none", name="dead-open"
    ) as s:
        yield s


def test_processor_down_fail_closed_is_json_503(dead_closed: Stack) -> None:
    r = httpx.post(dead_closed.url + CHAT, json=chat(), headers=FORGED, timeout=10)
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert (err["code"], err["type"]) == ("routing_unavailable", "server_error")


def test_processor_down_fail_open_goes_unmodified_to_default(dead_open: Stack) -> None:
    r = httpx.post(dead_open.url + CHAT, json=chat(), timeout=10)
    assert r.status_code == 200, r.text
    got = r.json()["irtgate_demo"]
    assert got["upstream"] == "demo-small"
    assert got["model"] == "auto"  # not rewritten: irtgate never saw it
    assert "x-irtgate-decision" not in r.headers


def test_forged_headers_with_dead_processor_do_not_pick_upstream(dead_open: Stack) -> None:
    r = httpx.post(dead_open.url + CHAT, json=chat(model="demo-large-1"), headers=FORGED,
                   timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["irtgate_demo"]["upstream"] == "demo-small"
    assert r.headers.get("x-irtgate-model") is None
    # stripped by Envoy itself, so even with irtgate down they never reach the upstream
    sent = r.json()["irtgate_demo"]["x_headers"]
    assert [h for h in sent if h.startswith("x-irtgate-")] == [], sent


def test_health_path_through_envoy_reports_dead_processor(dead_open: Stack) -> None:
    r = httpx.get(dead_open.url + "/readyz", timeout=10)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "gateway_error"


def test_serve_subprocess_routes_and_drains_on_sigterm(tmp_path: Path) -> None:
    # The real `irtgate serve` command behind Envoy; SIGTERM while a request is in flight.
    with running_stack(tmp_path, stack_settings(), processor="subprocess", name="serve") as s:
        r = httpx.post(s.url + CHAT, json=chat(), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["irtgate_demo"]["model"] == "demo-small-1"
        assert s.stop_processor() == 0
        log = s.processor_log.read_text() if s.processor_log else ""
        assert "draining" in log
