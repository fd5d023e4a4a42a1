"""The real ``irtgate serve`` through Envoy: the embedded default policy, and hot reload.

Both stacks run irtgate as a subprocess, started the way an operator starts it, so the CLI
defaults, the policy file watcher and ``/metrics`` over HTTP are what is tested.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from irtgate.server.settings import DeciderKind
from irtgate.server.testing import Stack, running_stack, stack_settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-policy-reload")]

CHAT = "/v1/chat/completions"
EMAIL = "jane.roe@example.com"

POLICY = """\
version: 1
aliases: [auto]
upstreams: [demo-small, demo-large]
catalog:
  - {name: small, model: demo-small-1, upstream: demo-small, local: true}
  - {name: large, model: demo-large-1, upstream: demo-large, family: openai, budget: BUDGET}
signals:
  urgent: {type: keyword, params: {lists: {urgent: {literals: [urgent]}}}}
decisions:
  - name: urgent
    priority: 10
    when: {signal: urgent.urgent, eq: true}
    candidates: [large]
    objective: {method: linear, w: 0.8}
default:
  candidates: [DEFAULT]
  objective: {method: linear, w: 0.8}
"""


def policy_text(default: str, budget: str = "high") -> str:
    return POLICY.replace("DEFAULT", default).replace("BUDGET", budget)


def ask(stack: Stack, text: str) -> httpx.Response:
    doc = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    return httpx.post(stack.url + CHAT, json=doc, timeout=10)


def received(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()["irtgate_demo"]
    return info


def metric(stack: Stack, name: str, **labels: str) -> float:
    """A sample from irtgate's /metrics over HTTP (0 when absent)."""
    text = httpx.get(stack.admin_url + "/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    found = re.search(r"^" + pattern + "$", text, re.M)
    return float(found.group(1)) if found else 0.0


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def reload_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    workdir = tmp_path_factory.mktemp("reload")
    policy = workdir / "policy.yaml"
    policy.write_text(policy_text("small"))
    settings = stack_settings(decider=DeciderKind.POLICY, policy_path=policy)
    with running_stack(workdir, settings, processor="subprocess", name="reload") as s:
        yield s, policy


def test_policy_edit_takes_effect_and_a_broken_edit_keeps_the_last_good(
    reload_stack: tuple[Stack, Path],
) -> None:
    stack, policy = reload_stack
    assert received(ask(stack, "hello"))["model"] == "demo-small-1"
    assert metric(stack, "irtgate_policy_reloads_total", outcome="ok") == 1
    assert metric(stack, "irtgate_policy_reloads_total", outcome="error") == 0

    # An edit: the default now goes to the large model, with a medium budget on urgent ones.
    policy.write_text(policy_text("large", budget="medium"))
    wait_for(lambda: received(ask(stack, "hello"))["model"] == "demo-large-1", "the edit to apply")
    got = received(ask(stack, "urgent: hello"))
    assert (got["model"], got["reasoning_effort"]) == ("demo-large-1", "medium")
    assert metric(stack, "irtgate_policy_reloads_total", outcome="ok") == 2

    # A broken edit (an unknown catalog entry): counted, and the last good policy serves on.
    policy.write_text(policy_text("nowhere"))
    wait_for(
        lambda: metric(stack, "irtgate_policy_reloads_total", outcome="error") == 1,
        "the reload error to be counted",
    )
    for _ in range(3):
        assert received(ask(stack, "hello"))["model"] == "demo-large-1"
    assert metric(stack, "irtgate_policy_reloads_total", outcome="ok") == 2
    log = stack.processor_log.read_text() if stack.processor_log else ""
    assert "unknown catalog entry 'nowhere'" in log

    # Invalid YAML too.
    policy.write_text("version: 1\ncatalog: [\n")
    wait_for(
        lambda: metric(stack, "irtgate_policy_reloads_total", outcome="error") == 2,
        "the YAML error to be counted",
    )
    assert received(ask(stack, "hello"))["model"] == "demo-large-1"

    # Fixed again: back to normal, and exactly one policy version is in force.
    policy.write_text(policy_text("small"))
    wait_for(lambda: received(ask(stack, "hello"))["model"] == "demo-small-1", "the fix")
    text = httpx.get(stack.admin_url + "/metrics", timeout=5).text
    info = [line for line in text.splitlines() if line.startswith("irtgate_policy_info{")]
    assert len(info) == 1 and info[0].endswith(" 1.0"), info
    assert f'path="{policy}"' in info[0]


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # No --policy and no --route: what `irtgate up` / `make run` serve.
    settings = stack_settings(decider=DeciderKind.POLICY)
    workdir = tmp_path_factory.mktemp("default-policy")
    with running_stack(workdir, settings, processor="subprocess", name="default-policy") as s:
        yield s


def test_serve_defaults_to_the_embedded_policy(default_stack: Stack) -> None:
    r = ask(default_stack, "What is the capital of France?")
    got = received(r)
    assert got["upstream"] in {"demo-small", "demo-large"}
    assert r.headers["x-irtgate-decision"] in {"default", "hard"}
    assert r.headers["x-irtgate-reason"].startswith(r.headers["x-irtgate-decision"] + ": ")
    # policies/default.yaml: personal data stays on the local (demo-small) upstream.
    r = ask(default_stack, f"Please write to {EMAIL} about the invoice.")
    assert received(r)["upstream"] == "demo-small"
    assert r.headers["x-irtgate-decision"] == "sensitive"
    assert metric(default_stack, "irtgate_pii_findings_total", type="email", action="restrict") == 1
    text = httpx.get(default_stack.admin_url + "/metrics", timeout=5).text
    assert 'irtgate_policy_info{path="embedded:policies/default.yaml"' in text
