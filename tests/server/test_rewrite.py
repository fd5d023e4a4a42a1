"""The static decider's path: a choice applied to each API's body by the one budget translator,
for every provider family x API x budget, and a route whose budget its family refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer

from irtgate.plugins.reasoning import BudgetError
from irtgate.policies.outcome import Choice
from irtgate.server.cli_gateway import build_settings, parse_route
from irtgate.server.parse import parse_request
from irtgate.server.rewrite import apply_choice
from irtgate.server.settings import DefaultChoice, Settings
from irtgate.server.static_decider import StaticDecider
from irtgate.signals.request import ApiKind
from tests.plugins.test_budget import BASE, CASES
from tests.server.test_extproc import body, headers, make, set_headers

PATHS = {
    ApiKind.CHAT: "/v1/chat/completions",
    ApiKind.RESPONSES: "/v1/responses",
    ApiKind.MESSAGES: "/v1/messages",
}


def choice(budget: str | None) -> Choice:
    return Choice(config="c", model="new-model", upstream="u", budget=budget)


def client_body(api: ApiKind) -> dict[str, Any]:
    return {**BASE[api], "model": "auto"}


@pytest.mark.parametrize(("family", "api", "budget", "expected"), CASES)
def test_every_family_api_and_budget(
    family: str, api: ApiKind, budget: str | int, expected: dict[str, Any] | None
) -> None:
    raw = json.dumps(client_body(api)).encode()
    request = parse_request(api, raw)
    # A choice carries its budget as a label: a token count arrives as a string of digits.
    new = apply_choice(request, choice(str(budget)), family)
    assert new == {**BASE[api], "model": "new-model", **(expected or {})}
    assert request.body == json.loads(raw)  # the parsed request is not modified


def test_no_budget_only_changes_the_model_and_keeps_the_familys_fields() -> None:
    doc = {
        "model": "auto",
        "messages": [{"role": "user", "content": "x"}],
        "seed": 3,
        "reasoning_effort": "low",
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    request = parse_request(ApiKind.CHAT, json.dumps(doc).encode())
    native = apply_choice(request, choice(None))
    assert native == {k: v for k, v in doc.items() if k != "thinking"} | {"model": "new-model"}
    anthropic = apply_choice(request, choice(None), "anthropic")
    assert anthropic == {k: v for k, v in doc.items() if k != "reasoning_effort"} | {
        "model": "new-model"
    }


@pytest.mark.parametrize(
    ("family", "budget", "api"),
    [
        ("native", "high", ApiKind.MESSAGES),
        ("openai", "xhigh", ApiKind.RESPONSES),
        ("deepseek", "off", ApiKind.CHAT),
        ("gemini", "8192", ApiKind.CHAT),
        ("qwen", "on", ApiKind.RESPONSES),
        ("max_tokens", "512", ApiKind.MESSAGES),
    ],
)
async def test_the_gateway_sends_the_translated_body_with_its_own_length(
    family: str, budget: str, api: ApiKind
) -> None:
    route = parse_route(f"demo-small/new-model@{budget}", family)
    proc, _, _ = make(Settings(default_choice=route))
    await proc.handle(headers(PATHS[api]))
    sent = client_body(api)
    r = await proc.handle(body(sent))
    common = r.request_body.response
    new = json.loads(common.body_mutation.body)
    assert set_headers(common)["content-length"] == str(len(common.body_mutation.body)).encode()
    request = parse_request(api, json.dumps(sent).encode())
    assert new == apply_choice(request, choice(budget), family)
    # The budget was written, and everything else (but the model and a cap) is as sent.
    assert {k for k, v in new.items() if sent.get(k) != v} - {"model"}
    assert all(new[k] == v for k, v in sent.items() if k not in ("model", "max_tokens"))


def test_a_family_without_a_field_in_the_api_sends_no_budget() -> None:
    request = parse_request(ApiKind.MESSAGES, json.dumps(client_body(ApiKind.MESSAGES)).encode())
    new = apply_choice(request, choice("high"), "openai")
    assert new == {**BASE[ApiKind.MESSAGES], "model": "new-model"}


@pytest.mark.parametrize(
    ("family", "budget", "message"),
    [
        ("native", "4096", "native budget must be one of none, minimal, low, medium, high, xhigh"),
        ("openai", "max", "openai budget must be one of"),
        ("gemini", "xhigh", "gemini budget must be one of none, minimal, low, medium, high, or"),
        ("qwen", "low", "qwen budget must be one of off, on, or thinking tokens"),
        ("anthropic", "100", "thinking tokens: an integer >= 1024; got 100"),
        ("none", "low", "family 'none' takes no budget"),
        ("grok", "low", "unknown family 'grok'"),
    ],
)
def test_a_route_its_family_cannot_carry_is_refused_at_start(
    family: str, budget: str, message: str
) -> None:
    with pytest.raises(BudgetError, match=message):
        DefaultChoice(model="m", upstream="demo-small", budget=budget, family=family)
    with pytest.raises(BudgetError, match=message):
        StaticDecider(choice(budget), family=family)
    with pytest.raises(typer.BadParameter, match=message):
        parse_route(f"demo-small/m@{budget}", family)


def test_route_family_reaches_the_static_decider() -> None:
    settings = build_settings(route="demo-small/deepseek-chat@off", route_family="deepseek")
    decider = StaticDecider.from_settings(settings)
    assert (decider.family, decider.choice.budget) == ("deepseek", "off")
    assert StaticDecider.from_settings(Settings()).family == "native"
    with pytest.raises(typer.BadParameter, match="give --route"):
        build_settings(route_family="deepseek")
