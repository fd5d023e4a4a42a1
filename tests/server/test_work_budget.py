"""A hostile body cannot hold a core: signals stop at the request's CPU budget, and a
decision nobody waits for any more stops too (issue 10, defect 1)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from types import FrameType

import pytest
from prometheus_client import CollectorRegistry

from irtgate.policies.runtime import PolicyRuntime
from irtgate.server.core import GatewayCore
from irtgate.server.metrics import Metrics
from irtgate.server.settings import Settings, Upstream
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind
from tests.policies.fakes import fake_resources

POLICY = """\
version: 1
aliases: [auto]
upstreams: [local, cloud]
catalog:
  - {name: small, model: small-m, upstream: local, local: true, router_config: small}
  - {name: big, model: big-m, upstream: cloud, router_config: big}
signals:
  pii: {}
decisions:
  - name: private
    when: {any: [{signal: pii.found, eq: true}, {signal: pii.truncated, eq: true}]}
    candidates: [small]
    objective: {method: linear, w: 1.0}
default:
  candidates: [big]
  objective: {method: linear, w: 1.0}
"""
# Digit groups the phone matcher must judge one by one: ~20 us of CPU a character, so the
# whole of this takes seconds to scan; a budget of 0.1 s stops it early.
HOSTILE = "1234567 " * 40_000


def gateway(tmp_path: Path, **settings: float) -> tuple[GatewayCore, CollectorRegistry]:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    runtime = PolicyRuntime.from_file(path, resources=fake_resources(), watch=False)
    s = Settings(
        upstreams=(Upstream("local", "127.0.0.1", 1), Upstream("cloud", "127.0.0.1", 2)),
        default_upstream="local",
        **settings,  # type: ignore[arg-type]
    )
    registry = CollectorRegistry()
    return GatewayCore(s, runtime, Metrics.create(registry)), registry


def chat(text: str) -> bytes:
    return json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]}).encode()


def deciding_threads() -> int:
    """Threads whose stack is inside a policy decision right now."""
    n = 0
    for frame in sys._current_frames().values():
        f: FrameType | None = frame
        while f is not None:
            if f.f_code.co_name == "decide_sync":
                n += 1
                break
            f = f.f_back
    return n


async def threads_done(limit_s: float = 2.0) -> None:
    async with asyncio.timeout(limit_s):
        while deciding_threads():  # noqa: ASYNC110 - polling another thread's stack
            await asyncio.sleep(0.02)


async def test_a_hostile_body_is_cut_at_the_cpu_budget_flagged_and_counted(
    tmp_path: Path,
) -> None:
    core, registry = gateway(tmp_path, signal_cpu_budget_s=0.1)
    started = time.process_time()
    verdict = await core.decide(ApiKind.CHAT, chat(HOSTILE))
    assert time.process_time() - started < 1.5  # the full scan is several seconds of CPU
    assert verdict.explanation["signal.pii.truncated"] is True
    assert verdict.decision == "private"  # the policy treats an unread rest as private
    assert registry.get_sample_value("irtgate_signal_truncations_total", {"signal": "pii"}) == 1

    normal = await core.decide(ApiKind.CHAT, chat("What is the capital of France?"))
    assert normal.explanation["signal.pii.truncated"] is False
    assert normal.decision == "default"


async def test_a_decision_past_the_message_timeout_is_abandoned_and_its_thread_stops(
    tmp_path: Path,
) -> None:
    # A CPU budget far above the timeout: only the timeout can stop this one.
    core, registry = gateway(tmp_path, signal_cpu_budget_s=600, message_timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(ClientError) as e:
        await core.decide(ApiKind.CHAT, chat(HOSTILE * 4))
    assert e.value.code == "decision_timeout"
    assert time.monotonic() - t0 < 2.0
    await threads_done()  # the worker notices at its next budget check
    assert registry.get_sample_value("irtgate_errors_total", {"kind": "decision_timeout"}) == 1


async def test_a_cancelled_call_stops_its_worker(tmp_path: Path) -> None:
    core, registry = gateway(tmp_path, signal_cpu_budget_s=600)
    task = asyncio.create_task(core.decide(ApiKind.CHAT, chat(HOSTILE * 4)))
    await asyncio.sleep(0.3)
    assert deciding_threads() == 1
    task.cancel()  # what grpc.aio does when Envoy resets the stream
    with pytest.raises(asyncio.CancelledError):
        await task
    await threads_done()
    assert registry.get_sample_value("irtgate_errors_total", {"kind": "abandoned"}) == 1
