"""A policy with every signal, through a real Envoy: each request lands where the policy says.

One gateway for the module, on a policy written to tmp_path that uses the real signals
(difficulty and domain on the shipped router and encoder, language, length, keyword, PII).
Each catalog entry has its own model name, so the model the demo upstream reports having
received proves which decision matched. The two thresholds that depend on the shipped
router (difficulty and domain) are read from that router at set-up, so a retrained router
moves them instead of breaking the test; the fixture asserts the prompts stay far apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from irtgate.server.settings import DeciderKind, Upstream
from irtgate.server.testing import Stack, running_stack, stack_settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-policies")]

CHAT = "/v1/chat/completions"

# Prompts from the public routerdc-7models data (../shared/data) and plain sentences.
EASY = "Question:Which plant is grown for food?\nAnswer:"
HARD = "Find $(2^{20} + 2^{20} + 2^{20} +2^{21}) \\div 2^{17}$."
LAW = (
    "Under the doctrine of promissory estoppel, can a promise to make a gift be enforced if "
    "the promisee relied on it to their detriment? Discuss the relevant case law on "
    "consideration and contract formation."
)
GERMAN = "Was ist die Hauptstadt von Deutschland und warum ist sie historisch so bedeutend gewesen?"
LONG = "The committee reviewed the quarterly figures and the plan for next year. " * 160
URGENT = "This is urgent: summarise the attached meeting notes for the team."
EMAIL = "jane.roe@example.com"
PERSONAL = f"This is urgent: write to {EMAIL} and summarise the meeting notes for her."
CARD = "4111 1111 1111 1111"
SECRET = f"Please charge my card {CARD} for the order and confirm."

POLICY = """\
version: 1
aliases: [auto]
upstreams: [local, cloud]

catalog:
  - {name: small, model: small-1, upstream: local, local: true,
     router_config: mistralai/mistral-7b-chat}
  - {name: large, model: large-1, upstream: cloud, router_config: gpt-4-1106-preview,
     family: openai, budget: high}
  - {name: long-ctx, model: long-1, upstream: cloud, cost: 0.02}
  - {name: german, model: de-1, upstream: local, local: true, cost: 0.0001}
  - {name: lawyer, model: law-1, upstream: cloud, cost: 0.001}
  - {name: thinker, model: hard-1, upstream: cloud, family: openai, budget: medium, cost: 0.01}

signals:
  pii: {}
  secrets: {type: pii, params: {types: [secret, payment_card, us_ssn, iban]}}
  urgent: {type: keyword, params: {lists: {urgent: {literals: [asap, urgent]}}}}
  language: {}
  length: {}
  domain: {}
  difficulty: {}

decisions:
  - name: blocked
    priority: 100
    when: {signal: secrets.found, eq: true}
    candidates: ["*"]
    objective: {method: linear, w: 0.5}
    plugins:
      - pii: {action: block, types: [secret, payment_card, us_ssn, iban]}
  - name: personal
    priority: 90
    when: {signal: pii.found, eq: true}
    candidates: [small, large]
    objective: {method: linear, w: 1.0}
    plugins:
      - pii: {action: restrict}
      - pii: {action: redact}
  - name: long
    priority: 80
    when: {signal: length.tokens, gt: 1500}
    candidates: [long-ctx]
    objective: {method: linear, w: 0.8}
  - name: german
    priority: 70
    when: {signal: language.code, eq: de}
    candidates: [german]
    objective: {method: linear, w: 0.8}
  - name: law
    priority: 60
    when: {signal: domain.label, in: [LAW_LABEL]}
    candidates: [lawyer]
    objective: {method: linear, w: 0.8}
  - name: hard
    priority: 50
    when: {signal: difficulty.p_max, lt: THRESHOLD}
    candidates: [thinker]
    objective: {method: linear, w: 0.8}
  - name: urgent
    priority: 40
    when: {signal: urgent.urgent, eq: true}
    candidates: [small, large]
    objective: {method: linear, w: 1.0}

default:
  candidates: [small]
  objective: {method: linear, w: 0.8}
"""


@dataclass(frozen=True)
class Calibration:
    law_label: str
    threshold: float


def calibrate() -> Calibration:
    """Signal values of the test prompts on the shipped router, and the policy's operands."""
    from irtgate.policies.runtime import default_resources
    from irtgate.signals.base import SignalContext, registered
    from irtgate.signals.request import ApiKind, LLMRequest, Message
    from irtgate.signals.text import PromptText

    res = default_resources()
    router = res.router
    assert router is not None, "the shipped default router did not load"
    factories = registered()
    difficulty = factories["difficulty"][1]({}, res)
    domain = factories["domain"][1]({}, res)

    def values(text: str) -> dict[str, Any]:
        req = LLMRequest(ApiKind.CHAT, "auto", (Message("user", PromptText(text)),))
        ctx = SignalContext(req, embedder=res.embedder or router.embedder())
        return {**difficulty.compute(ctx), **{"domain": domain.compute(ctx)["label"]}}

    easy, hard, law = values(EASY), values(HARD), values(LAW)
    urgent = values(URGENT)
    assert easy["p_max"] - hard["p_max"] > 0.2, (easy["p_max"], hard["p_max"])
    threshold = round((easy["p_max"] + hard["p_max"]) / 2, 3)
    # The other prompts must not fall into the difficulty or domain decisions by accident.
    for name, v in (("easy", easy), ("law", law), ("urgent", urgent)):
        assert v["p_max"] > threshold + 0.05, (name, v["p_max"], threshold)
    assert law["domain"] not in {easy["domain"], hard["domain"], urgent["domain"]}
    # Without restrict, the personal/urgent decisions (w = 1) pick the stronger model.
    assert urgent["p.gpt-4-1106-preview"] > urgent["p.mistralai/mistral-7b-chat"]
    return Calibration(law_label=str(law["domain"]), threshold=threshold)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("policies")
    cal = calibrate()
    policy = workdir / "policy.yaml"
    policy.write_text(
        POLICY.replace("LAW_LABEL", cal.law_label).replace("THRESHOLD", str(cal.threshold))
    )
    settings = stack_settings(
        decider=DeciderKind.POLICY,
        policy_path=policy,
        upstreams=(Upstream("local", "127.0.0.1", 0), Upstream("cloud", "127.0.0.1", 0)),
        default_upstream="local",
    )
    with running_stack(workdir, settings, name="policies") as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def chat(client: httpx.Client, text: str) -> httpx.Response:
    return client.post(
        CHAT, json={"model": "auto", "messages": [{"role": "user", "content": text}]}
    )


def received(r: httpx.Response) -> dict[str, Any]:
    """What the demo upstream says it was sent."""
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()["irtgate_demo"]
    return info


def irtgate_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("x-irtgate-")}


@pytest.mark.parametrize(
    ("text", "decision", "upstream", "model", "effort"),
    [
        (EASY, "default", "local", "small-1", None),
        (HARD, "hard", "cloud", "hard-1", "medium"),
        (LAW, "law", "cloud", "law-1", None),
        (GERMAN, "german", "local", "de-1", None),
        (LONG, "long", "cloud", "long-1", None),
        (URGENT, "urgent", "cloud", "large-1", "high"),
        (PERSONAL, "personal", "local", "small-1", None),
    ],
    ids=["easy", "difficulty", "domain", "language", "length", "keyword", "pii-restrict"],
)
def test_each_signal_routes(
    client: httpx.Client,
    text: str,
    decision: str,
    upstream: str,
    model: str,
    effort: str | None,
) -> None:
    r = chat(client, text)
    got = received(r)
    assert (got["upstream"], got["model"], got["reasoning_effort"]) == (upstream, model, effort)
    assert r.headers["x-irtgate-decision"] == decision
    assert r.headers["x-irtgate-model"] == model
    assert r.headers["x-irtgate-budget"] == (effort or "none")


def test_restrict_keeps_personal_data_local(client: httpx.Client) -> None:
    # The same request without the address goes to the stronger cloud model (w = 1);
    # with it, restrict leaves only the local candidate.
    assert received(chat(client, URGENT))["upstream"] == "cloud"
    r = chat(client, PERSONAL)
    assert received(r)["upstream"] == "local"
    assert r.headers["x-irtgate-config"] == "small"


@pytest.mark.parametrize(
    ("path", "doc"),
    [
        (CHAT, {"messages": [{"role": "user", "content": PERSONAL}]}),
        ("/v1/responses", {"input": [{"role": "user", "content": PERSONAL}]}),
        (
            "/v1/messages",
            {
                "max_tokens": 64,
                "messages": [{"role": "user", "content": [{"type": "text", "text": PERSONAL}]}],
            },
        ),
    ],
    ids=["chat", "responses", "messages"],
)
def test_redaction_reaches_the_upstream(
    client: httpx.Client, path: str, doc: dict[str, Any]
) -> None:
    r = client.post(path, json={"model": "auto", **doc})
    got = received(r)
    assert got["upstream"] == "local"
    masked = PERSONAL.replace(EMAIL, "[EMAIL]")
    assert got["texts"] == [masked]
    # The content-length Envoy sent matches the rewritten (shorter) body.
    assert got["content_length"] == str(got["bytes_received"])
    # Nowhere in what irtgate added to the response.
    assert all(EMAIL not in v and "jane" not in v for v in irtgate_headers(r).values())


def test_block_answers_403_without_reaching_an_upstream(stack: Stack, client: httpx.Client) -> None:
    before = stack.envoy.stats("cluster.")
    blocked = stack.metric("irtgate_pii_findings_total", type="payment_card", action="block")
    r = chat(client, SECRET)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("permission_error", "policy_blocked")
    assert "payment_card" in err["message"]
    assert CARD not in r.text and CARD.replace(" ", "") not in r.text
    assert not irtgate_headers(r)
    after = stack.envoy.stats("cluster.")
    for name in ("local", "cloud"):
        key = f"cluster.{name}.upstream_rq_total"
        assert key in after, sorted(after)[:20]
        assert after[key] == before[key]
    now = stack.metric("irtgate_pii_findings_total", type="payment_card", action="block")
    assert now == blocked + 1
    assert stack.metric("irtgate_errors_total", kind="policy_blocked") >= 1


def test_explanation_headers_are_bounded_and_content_free(client: httpx.Client) -> None:
    r = chat(client, LAW)
    h = irtgate_headers(r)
    assert h["x-irtgate-decision"] == "law"
    assert h["x-irtgate-config"] == "lawyer"
    assert h["x-irtgate-reason"].startswith("law: lawyer")
    assert h["x-irtgate-why"].startswith("domain.label=")
    assert h["x-irtgate-why"].endswith(": yes")
    assert sum(len(k) + len(v) for k, v in h.items()) < 700
    words = {w.strip("?,.").lower() for w in LAW.split() if len(w) > 4}
    for value in h.values():
        assert not {w for w in words if w in value.lower()}, value
    # Long prompts do not make the headers longer.
    long_h = irtgate_headers(chat(client, LONG))
    assert all(len(v) <= 256 for v in long_h.values())


def test_signal_metrics_are_exported(stack: Stack, client: httpx.Client) -> None:
    for text in (EASY, URGENT, PERSONAL):
        chat(client, text)
    text = httpx.get(stack.admin_url + "/metrics", timeout=5).text
    for signal in ("difficulty", "domain", "language", "length", "keyword", "pii"):
        assert f'irtgate_signal_latency_seconds_count{{signal="{signal}"}}' in text, signal
    # Decisions with more than one candidate consult the router: P and cost are recorded.
    assert 'irtgate_p_correct_count{decision="urgent"}' in text
    assert 'irtgate_estimated_cost_usd_total{decision="urgent",model="large-1"}' in text
    assert 'irtgate_pii_findings_total{action="restrict",type="email"}' in text
    assert 'irtgate_pii_findings_total{action="redact",type="email"}' in text
    assert EMAIL not in text and "jane" not in text


def test_decide_rpc_gives_the_full_explanation_without_content(stack: Stack) -> None:
    import grpc

    from irtgate.proto import decide_pb2, decide_pb2_grpc

    body = {"model": "auto", "messages": [{"role": "user", "content": PERSONAL}]}
    with grpc.insecure_channel(stack.grpc_target) as channel:
        stub = decide_pb2_grpc.DecideStub(channel)
        got = stub.Decide(
            decide_pb2.DecideRequest(path=CHAT, body=json.dumps(body).encode()), timeout=10
        )
    assert (got.decision, got.config, got.upstream) == ("personal", "small", "local")
    expl = dict(got.explanation)
    assert expl["signal.pii.types"] == "email"
    assert expl["plugin.pii.action"] == "redact"
    assert expl["plugin.pii.types"] == "email"
    # restrict left only the local candidate, so that is the only one costed.
    assert "cost.small" in expl and "cost.large" not in expl
    assert expl["decision.why"] == "pii.found=True eq True: yes"
    assert all(EMAIL not in v and "jane" not in v for v in expl.values())
    # The body it would send upstream is the redacted one.
    sent = json.loads(got.body)
    assert sent["messages"][0]["content"] == PERSONAL.replace(EMAIL, "[EMAIL]")
