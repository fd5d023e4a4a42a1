"""PII found in a request never reaches logs, headers, the reason or the explanation."""

from __future__ import annotations

import logging

import pytest

from irtgate.policies.compile import compile_policy
from irtgate.policies.engine import decide_sync
from irtgate.signals.errors import ClientError
from tests.policies.fakes import chat

SECRETS = [
    "jane.roe@example.org",
    "4111 1111 1111 1111",
    "+44 20 7946 0958",
    "DE89 3704 0044 0532 0130 00",
]
POLICY = """\
version: 1
upstreams: [local, cloud]
catalog:
  - {name: onprem, model: m-local, upstream: local, local: true, cost: 0.001}
  - {name: cloud, model: m-cloud, upstream: cloud, cost: 0.0001}
signals:
  pii: {}
decisions:
  - name: iban
    priority: 10
    when: {signal: pii.types, contains: iban}
    candidates: ["*"]
    objective: {method: linear, w: 0.5}
    plugins:
      - pii: {action: block, types: [iban]}
  - name: personal
    when: {signal: pii.found, eq: true}
    candidates: ["*"]
    objective: {method: linear, w: 0.5}
    plugins:
      - pii: {action: restrict}
      - pii: {action: redact}
      - headers: {set: {x-data-class: personal}}
default:
  candidates: ["*"]
  objective: {method: linear, w: 0.5}
"""


def _leaks(texts: list[str]) -> list[str]:
    blob = "\n".join(texts)
    return [s for s in SECRETS if s in blob or s.replace(" ", "") in blob]


def test_redacted_and_restricted_without_leaks(caplog: pytest.LogCaptureFixture) -> None:
    snap = compile_policy(POLICY, "p.yaml")
    text = f"Mail {SECRETS[0]}, card {SECRETS[1]}, phone {SECRETS[2]}."
    req = chat(text)
    with caplog.at_level(logging.DEBUG):
        out = decide_sync(snap, req)
    assert req.body["messages"][0]["content"] == text  # the request itself is untouched
    assert out.decision == "personal" and out.choice.config == "onprem"
    sent = out.body["messages"][0]["content"]
    assert not _leaks([sent]) and "[EMAIL]" in sent and "[PAYMENT_CARD]" in sent
    assert out.request_headers == {"x-data-class": "personal"}
    visible = [
        caplog.text,
        out.reason,
        repr(out.explanation),
        repr(out.request_headers),
        repr(out.choice),
    ]
    assert _leaks(visible) == []
    assert out.explanation["signal.pii.types"] == ("email", "payment_card", "phone")
    assert out.explanation["plugin.pii.action"] == "redact"


def test_blocked_without_leaks(caplog: pytest.LogCaptureFixture) -> None:
    snap = compile_policy(POLICY, "p.yaml")
    with caplog.at_level(logging.DEBUG), pytest.raises(ClientError) as ei:
        decide_sync(snap, chat(f"Pay to {SECRETS[3]} today"))
    assert ei.value.status == 403
    assert _leaks([caplog.text, ei.value.message, ei.value.body().decode()]) == []


def test_without_pii_nothing_is_rewritten() -> None:
    snap = compile_policy(POLICY, "p.yaml")
    out = decide_sync(snap, chat("What is the capital of France?"))
    assert out.decision == "default" and out.choice.config == "cloud"
    assert out.body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert out.request_headers == {}
