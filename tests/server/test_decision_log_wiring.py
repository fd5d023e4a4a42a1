"""The gateway core writes one decision log record per decision it makes (refusals too),
never blocks on it, and never fails a request because of it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from irtgate.policies.compile import compile_policy
from irtgate.policies.runtime import PolicyRuntime
from irtgate.server.core import GatewayCore
from irtgate.server.decision_log import DecisionLog, DecisionLogConfig, DecisionRecord
from irtgate.server.metrics import Metrics
from irtgate.server.settings import Settings
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind
from tests.policies.fakes import BASE, fake_resources

POLICY = (
    BASE.replace("upstreams: [local, cloud]", "upstreams: [demo-small, demo-large]")
    .replace("upstream: local", "upstream: demo-small")
    .replace("upstream: cloud", "upstream: demo-large")
    .replace("  probe: {type: t_probe}\n", "  probe: {type: t_probe}\n  pii: {}\n")
    + """decisions:
  - name: card
    priority: 10
    when: {signal: pii.types, contains: payment_card}
    candidates: ['*']
    objective: {method: linear, w: 0.5}
    plugins:
      - pii: {action: block, types: [payment_card]}
default:
  candidates: ['*']
  objective: {method: linear, w: 0.5}
"""
)


def _core(log: DecisionLog, metrics: Metrics) -> GatewayCore:
    res = fake_resources()
    rt = PolicyRuntime(
        None, compile_policy(POLICY, "p.yaml", res), res, watch=False, on_reload=None
    )
    return GatewayCore(Settings(), rt, metrics, log)


def _body(text: str) -> bytes:
    return json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]}).encode()


def test_routed_and_refused_decisions_are_logged(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    metrics = Metrics.create(CollectorRegistry())
    log = DecisionLog(
        DecisionLogConfig(mode="full", path=path),
        on_write=metrics.decision_log.labels("written").inc,
    )
    log.start()
    core = _core(log, metrics)
    asyncio.run(core.decide(ApiKind.CHAT, _body("hello"), request_id="req-1"))
    with pytest.raises(ClientError):
        asyncio.run(core.decide(ApiKind.CHAT, _body("card 4111 1111 1111 1111 please")))
    log.close()
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["routed", "policy_blocked"]
    assert rows[0]["request_id"] == "req-1" and len(rows[1]["request_id"]) == 32
    assert rows[0]["choice"] == "small" and rows[1]["choice"] is None
    assert rows[1]["decision"] == "card" and rows[1]["pii"] == {"payment_card": 1}
    # P for every router configuration and a cost for every catalog entry.
    assert rows[0]["p"] == {"small": 0.5, "mid": 0.7, "big": 0.9}
    assert set(rows[0]["cost"]) == {"small", "mid", "big"}
    assert "4111" not in path.read_text()
    assert metrics.decision_log.labels("written")._value.get() == 2


def test_a_failing_log_never_fails_the_request(tmp_path: Path) -> None:
    class Broken(DecisionLog):
        def submit_later(self, build: object) -> None:
            raise OSError("queue broken")

    metrics = Metrics.create(CollectorRegistry())
    core = _core(Broken(DecisionLogConfig(mode="full", path=tmp_path / "x")), metrics)
    verdict = asyncio.run(core.decide(ApiKind.CHAT, _body("hello")))
    assert verdict.outcome == "routed"
    assert metrics.decision_log.labels("error")._value.get() == 1


def test_a_record_that_fails_to_build_is_counted_in_the_writer(tmp_path: Path) -> None:
    errors: list[int] = []
    written: list[int] = []
    log = DecisionLog(
        DecisionLogConfig(mode="full", path=tmp_path / "d.jsonl"),
        on_error=lambda: errors.append(1),
        on_write=lambda: written.append(1),
    )
    log.start()

    def broken() -> DecisionRecord:
        raise ValueError("not a label")

    log.submit_later(broken)
    log.close()
    assert errors == [1] and written == []
    assert (tmp_path / "d.jsonl").read_text() == ""


def test_serve_options_build_the_decision_log_settings(tmp_path: Path) -> None:
    import typer

    from irtgate.server.cli_gateway import build_settings
    from irtgate.server.decision_log import DecisionLogMode

    s = build_settings(
        decision_log=DecisionLogMode.SAMPLED,
        decision_log_file=tmp_path / "d.jsonl",
        decision_log_sample=0.25,
        decision_log_max_mib=2,
        decision_log_backups=3,
    )
    assert s.decision_log == DecisionLogConfig(
        mode="sampled", sample=0.25, path=tmp_path / "d.jsonl", max_bytes=2 * 1024 * 1024, backups=3
    )
    assert build_settings().decision_log.mode == "off"
    with pytest.raises(typer.BadParameter, match="sample"):
        build_settings(decision_log=DecisionLogMode.SAMPLED, decision_log_sample=1.5)
