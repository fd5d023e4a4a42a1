"""API fit: candidates whose upstream does not speak the request's API are dropped first."""

from __future__ import annotations

import dataclasses

import pytest

from irtgate.policies.compile import Snapshot, compile_policy
from irtgate.policies.engine import decide_sync
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText
from tests.policies.fakes import BASE, chat, fake_resources

POLICY = BASE + "default:\n  candidates: ['*']\n  objective: {method: linear, w: 1.0}\n"


def snapshot(apis: dict[str, frozenset[ApiKind]]) -> Snapshot:
    res = fake_resources()
    res = dataclasses.replace(res, extras={"upstream_apis": apis})
    return compile_policy(POLICY, "p.yaml", res)


def messages_request() -> LLMRequest:
    body = {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "{}"}]}
    return LLMRequest(ApiKind.MESSAGES, "auto", (Message("user", PromptText("{}")),), body=body)


def test_candidates_on_an_upstream_that_cannot_serve_are_dropped_and_explained() -> None:
    # With every API spoken, w=1 picks the strongest: big on the cloud upstream.
    every = frozenset(ApiKind)
    assert decide_sync(snapshot({"local": every, "cloud": every}), chat({})).choice.config == "big"
    snap = snapshot({"local": frozenset({ApiKind.CHAT}), "cloud": frozenset({ApiKind.MESSAGES})})
    out = decide_sync(snap, chat({}))
    assert out.choice.config == "small" and out.choice.upstream == "local"
    assert out.explanation["api_fit.dropped"] == "mid,big"
    out = decide_sync(snap, messages_request())
    assert out.choice.upstream == "cloud" and out.explanation["api_fit.dropped"] == "small"


def test_no_candidate_left_is_a_400_naming_the_api() -> None:
    snap = snapshot({"local": frozenset({ApiKind.CHAT}), "cloud": frozenset({ApiKind.CHAT})})
    with pytest.raises(ClientError) as e:
        decide_sync(snap, messages_request())
    assert (e.value.status, e.value.code) == (400, "api_not_served")
    assert "anthropic_messages" in e.value.message and "cloud, local" in e.value.message


def test_upstreams_not_listed_speak_every_api() -> None:
    snap = snapshot({})
    assert decide_sync(snap, messages_request()).choice.config == "big"
