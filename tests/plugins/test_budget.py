"""The budget translator per provider family and API shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from irtgate.plugins.budget import translate
from irtgate.signals.request import ApiKind


@dataclass
class E:
    family: str
    budget: str | int | None
    name: str = "e"
    model: str = "m"
    local: bool = False


CLIENT_REASONING: dict[str, Any] = {
    "reasoning_effort": "high",
    "thinking": {"type": "enabled", "budget_tokens": 4096},
    "chat_template_kwargs": {"enable_thinking": True, "other": 1},
    "thinking_token_budget": 100,
}


def run(entry: E, api: ApiKind, **body: Any) -> dict[str, Any]:
    b = {"model": "m", **body}
    translate(b, api, entry)
    return b


@pytest.mark.parametrize("api", list(ApiKind))
def test_models_without_reasoning_never_receive_reasoning_fields(api: ApiKind) -> None:
    extra = {"reasoning": {"effort": "high"}} if api is ApiKind.RESPONSES else {}
    b = run(E("none", None), api, **CLIENT_REASONING, **extra)
    assert b == {"model": "m", "chat_template_kwargs": {"other": 1}}


def test_openai_effort() -> None:
    assert run(E("openai", "low"), ApiKind.CHAT)["reasoning_effort"] == "low"
    b = run(E("openai", "medium"), ApiKind.RESPONSES, reasoning={"summary": "auto"})
    assert b["reasoning"] == {"summary": "auto", "effort": "medium"}
    b = run(E("openai", "minimal"), ApiKind.CHAT, **CLIENT_REASONING)
    assert b["reasoning_effort"] == "minimal"
    assert "thinking" not in b and "thinking_token_budget" not in b
    assert b["chat_template_kwargs"] == {"other": 1}
    # No budget configured: the client's own OpenAI field passes, foreign ones do not.
    b = run(E("openai", None), ApiKind.CHAT, **CLIENT_REASONING)
    assert b["reasoning_effort"] == "high" and "thinking" not in b


def test_anthropic_thinking_budget() -> None:
    b = run(E("anthropic", 2048), ApiKind.MESSAGES, max_tokens=8000, reasoning_effort="x")
    assert b == {
        "model": "m",
        "max_tokens": 8000,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    # Anthropic needs max_tokens > budget_tokens: the client's cap is added on top.
    assert run(E("anthropic", 4096), ApiKind.MESSAGES, max_tokens=500)["max_tokens"] == 4596
    assert run(E("anthropic", 4096), ApiKind.MESSAGES)["max_tokens"] == 4096 + 1024


def test_qwen_thinking_switch_and_budget() -> None:
    b = run(E("qwen", "off"), ApiKind.CHAT, **CLIENT_REASONING)
    assert b["chat_template_kwargs"] == {"enable_thinking": False, "other": 1}
    assert "thinking_token_budget" not in b and "reasoning_effort" not in b
    b = run(E("qwen", 1024), ApiKind.CHAT)
    assert b["chat_template_kwargs"] == {"enable_thinking": True}
    assert b["thinking_token_budget"] == 1024
    assert run(E("qwen", "on"), ApiKind.CHAT)["chat_template_kwargs"]["enable_thinking"]


@pytest.mark.parametrize(
    ("api", "body", "field", "value"),
    [
        (ApiKind.CHAT, {}, "max_tokens", 512),
        (ApiKind.CHAT, {"max_tokens": 100}, "max_tokens", 100),
        (ApiKind.CHAT, {"max_completion_tokens": 4000}, "max_completion_tokens", 512),
        (ApiKind.RESPONSES, {"max_output_tokens": 9000}, "max_output_tokens", 512),
        (ApiKind.MESSAGES, {"max_tokens": 9000}, "max_tokens", 512),
    ],
)
def test_max_tokens_family_caps_output(
    api: ApiKind, body: dict[str, Any], field: str, value: int
) -> None:
    b = run(E("max_tokens", 512), api, **body, reasoning_effort="high")
    assert b[field] == value and "reasoning_effort" not in b
