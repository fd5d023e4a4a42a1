"""Applying a choice to each API's body."""

from __future__ import annotations

import json

import pytest

from irtgate.policies.outcome import Choice
from irtgate.server.parse import parse_request
from irtgate.server.rewrite import apply_choice
from irtgate.signals.request import ApiKind

MSG = [{"role": "user", "content": "x"}]


def choice(budget: str | None) -> Choice:
    return Choice(config="c", model="new-model", upstream="u", budget=budget)


def test_chat_effort_and_unknown_fields_kept() -> None:
    r = parse_request(
        ApiKind.CHAT, json.dumps({"model": "auto", "messages": MSG, "seed": 3}).encode()
    )
    body = apply_choice(r, choice("high"))
    assert body == {"model": "new-model", "messages": MSG, "seed": 3, "reasoning_effort": "high"}
    assert r.body["model"] == "auto"  # the parsed request is not modified


def test_no_budget_only_changes_model() -> None:
    r = parse_request(
        ApiKind.CHAT,
        json.dumps({"model": "auto", "messages": MSG, "reasoning_effort": "low"}).encode(),
    )
    assert apply_choice(r, choice(None))["reasoning_effort"] == "low"


def test_chat_numeric_budget_is_not_written() -> None:
    r = parse_request(ApiKind.CHAT, json.dumps({"model": "auto", "messages": MSG}).encode())
    assert "reasoning_effort" not in apply_choice(r, choice("4096"))


def test_responses_merges_reasoning() -> None:
    r = parse_request(
        ApiKind.RESPONSES,
        json.dumps(
            {"model": "auto", "input": "x", "reasoning": {"summary": "auto", "effort": "low"}}
        ).encode(),
    )
    assert apply_choice(r, choice("medium"))["reasoning"] == {"summary": "auto", "effort": "medium"}


@pytest.mark.parametrize(
    ("budget", "thinking"),
    [
        ("4096", {"type": "enabled", "budget_tokens": 4096}),
        ("high", {"type": "enabled", "budget_tokens": 16384}),
        ("none", None),
        ("0", None),
    ],
)
def test_anthropic_thinking(budget: str, thinking: dict[str, object] | None) -> None:
    r = parse_request(
        ApiKind.MESSAGES,
        json.dumps(
            {"model": "auto", "messages": MSG, "thinking": {"type": "enabled", "budget_tokens": 1}}
        ).encode(),
    )
    body = apply_choice(r, choice(budget))
    assert body.get("thinking") == thinking
