"""The one budget translator: every provider family x API x budget, what is stripped, what
is refused, and the budget plugin that runs it last in a chain."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from irtgate.plugins.base import PluginState
from irtgate.plugins.budget import BudgetPlugin
from irtgate.plugins.reasoning import FAMILIES, BudgetError, check_budget, translate
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

CHAT, RESPONSES, MESSAGES = ApiKind.CHAT, ApiKind.RESPONSES, ApiKind.MESSAGES
MSG = [{"role": "user", "content": "x"}]
# What the client sent besides reasoning: none of it may change (the caps are high enough
# that no budget needs to raise them).
BASE: dict[ApiKind, dict[str, Any]] = {
    CHAT: {"model": "m", "messages": MSG, "temperature": 0.2, "max_tokens": 64000,
           "metadata": {"k": "v"}},
    RESPONSES: {"model": "m", "input": "x", "temperature": 0.2, "max_output_tokens": 64000,
                "metadata": {"k": "v"}},
    MESSAGES: {"model": "m", "messages": MSG, "temperature": 0.2, "max_tokens": 64000,
               "metadata": {"k": "v"}},
}  # fmt: skip
TOKENS = 4096  # the token budget tried on every family that takes one


def effort(w: str) -> dict[str, Any]:
    return {"reasoning_effort": w}


def reasoning(w: str) -> dict[str, Any]:
    return {"reasoning": {"effort": w}}


def thinking(n: int) -> dict[str, Any]:
    return {"thinking": {"type": "enabled", "budget_tokens": n}}


Fields = dict[str, Any] | None  # what a translation adds; None: nothing (NOT_SENT)
THINKING_OFF: Fields = {"thinking": {"type": "disabled"}}
THINKING_ON: Fields = {"thinking": {"type": "enabled"}}
WORDS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh")
ANTHROPIC: dict[str | int, Fields] = {
    "none": THINKING_OFF,
    "minimal": thinking(1024),
    "low": thinking(2048),
    "medium": thinking(8192),
    "high": thinking(16384),
    "xhigh": thinking(32768),
    TOKENS: thinking(TOKENS),
}
SWITCH_BUDGETS: tuple[str | int, ...] = ("off", "on", *WORDS, TOKENS)
DEEPSEEK_SWITCH: dict[str | int, Fields] = {
    b: THINKING_OFF if b in ("off", "none") else THINKING_ON for b in SWITCH_BUDGETS
}
GEMINI_BUDGETS: tuple[str | int, ...] = (*WORDS[:-1], TOKENS)  # xhigh is refused
NOT_SENT = None  # the family has no budget field in this API: nothing is written

# family -> API -> budget -> the fields the translator adds (NOT_SENT: none, and it says so).
EXPECTED: dict[str, dict[ApiKind, dict[str | int, Fields]]] = {
    "none": {CHAT: {}, RESPONSES: {}, MESSAGES: {}},
    "native": {
        CHAT: {w: effort(w) for w in WORDS},
        RESPONSES: {w: reasoning(w) for w in WORDS},
        MESSAGES: {w: ANTHROPIC[w] for w in WORDS},
    },
    "openai": {
        CHAT: {w: effort(w) for w in WORDS},
        RESPONSES: {w: reasoning(w) for w in WORDS},
        MESSAGES: {w: NOT_SENT for w in WORDS},
    },
    "anthropic": {
        CHAT: ANTHROPIC,
        RESPONSES: {b: NOT_SENT for b in ANTHROPIC},
        MESSAGES: ANTHROPIC,
    },
    "deepseek": {
        CHAT: DEEPSEEK_SWITCH,
        RESPONSES: {
            b: reasoning("none" if b in ("off", "none") else "high") for b in DEEPSEEK_SWITCH
        },
        MESSAGES: DEEPSEEK_SWITCH,
    },
    "gemini": {
        CHAT: {
            **{w: effort(w) for w in WORDS[:-1]},
            TOKENS: {"extra_body": {"google": {"thinking_config": {"thinking_budget": TOKENS}}}},
        },
        RESPONSES: {b: NOT_SENT for b in GEMINI_BUDGETS},
        MESSAGES: {b: NOT_SENT for b in GEMINI_BUDGETS},
    },
    "qwen": {
        CHAT: {
            "off": {"chat_template_kwargs": {"enable_thinking": False}},
            "on": {"chat_template_kwargs": {"enable_thinking": True}},
            TOKENS: {
                "chat_template_kwargs": {"enable_thinking": True},
                "thinking_token_budget": TOKENS,
            },
        },
        RESPONSES: {
            "off": reasoning("none"),
            "on": reasoning("medium"),
            TOKENS: reasoning("medium"),
        },
        MESSAGES: {"off": NOT_SENT, "on": NOT_SENT, TOKENS: NOT_SENT},
    },
    "max_tokens": {
        CHAT: {512: {"max_tokens": 512}},
        RESPONSES: {512: {"max_output_tokens": 512}},
        MESSAGES: {512: {"max_tokens": 512}},
    },
}
CASES = [
    pytest.param(fam, api, b, exp, id=f"{fam}-{api.value}-{b}")
    for fam, per_api in EXPECTED.items()
    for api, per_budget in per_api.items()
    for b, exp in per_budget.items()
]


def test_the_cases_cover_every_family_api_and_budget_word() -> None:
    assert set(EXPECTED) == set(FAMILIES)
    for name, fam in FAMILIES.items():
        for api in ApiKind:
            tried = set(EXPECTED[name][api])
            assert set(fam.words) <= tried, (name, api)
            if fam.min_tokens is not None:
                assert any(isinstance(b, int) for b in tried), (name, api)


@pytest.mark.parametrize(("family", "api", "budget", "expected"), CASES)
def test_every_family_api_and_budget(
    family: str, api: ApiKind, budget: str | int, expected: dict[str, Any] | None
) -> None:
    body = copy.deepcopy(BASE[api])
    written = translate(body, api, family, budget)
    assert written is (expected is not NOT_SENT)
    added = {k: v for k, v in body.items() if BASE[api].get(k) != v}
    assert added == (expected or {})
    assert set(BASE[api]) <= set(body)  # nothing of the client's is lost


@pytest.mark.parametrize("family", [f for f, fam in FAMILIES.items() if fam.min_tokens])
def test_a_token_label_is_the_same_budget_as_the_number(family: str) -> None:
    for api in ApiKind:
        as_int, as_label = copy.deepcopy(BASE[api]), copy.deepcopy(BASE[api])
        translate(as_int, api, family, TOKENS)
        translate(as_label, api, family, str(TOKENS))
        assert as_label == as_int


# A client that sent every reasoning field irtgate knows, plus unrelated keys in the same
# objects (those always stay).
CLIENT: dict[str, Any] = {
    "model": "m",
    "reasoning_effort": "high",
    "reasoning": {"effort": "low", "summary": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 4096},
    "chat_template_kwargs": {"enable_thinking": True, "thinking_budget": 50, "other": 1},
    "thinking_token_budget": 100,
    "extra_body": {
        "google": {"thinking_config": {"thinking_budget": 800, "include_thoughts": True}},
        "cached_content": "c",
    },
}
LEFT = {"model": "m", "chat_template_kwargs": {"other": 1}, "extra_body": {"cached_content": "c"}}
OWN: dict[str, Any] = {
    "effort": {"reasoning_effort": "high"},
    "reasoning": {"reasoning": {"effort": "low", "summary": "auto"}},
    "thinking": {"thinking": {"type": "enabled", "budget_tokens": 4096}},
    "qwen": {"chat_template_kwargs": CLIENT["chat_template_kwargs"], "thinking_token_budget": 100},
    "gemini": {"extra_body": CLIENT["extra_body"]},
}
# family -> API -> the client's reasoning fields it keeps (with no budget of its own).
KEEPS: dict[str, dict[ApiKind, tuple[str, ...]]] = {
    "none": {},
    "native": {CHAT: ("effort",), RESPONSES: ("reasoning",), MESSAGES: ("thinking",)},
    "openai": {CHAT: ("effort",), RESPONSES: ("reasoning",)},
    "anthropic": {CHAT: ("thinking",), MESSAGES: ("thinking",)},
    "deepseek": {CHAT: ("thinking", "effort"), RESPONSES: ("reasoning",), MESSAGES: ("thinking",)},
    "gemini": {CHAT: ("effort", "gemini")},
    "qwen": {CHAT: ("qwen",), RESPONSES: ("reasoning",)},
    "max_tokens": {},
}


@pytest.mark.parametrize("api", list(ApiKind))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_only_the_familys_own_fields_reach_the_model(family: str, api: ApiKind) -> None:
    body = dict(CLIENT)  # shallow, as the plugin chain hands it over
    assert translate(body, api, family, None) is False
    expected = dict(LEFT)
    for part in KEEPS[family].get(api, ()):
        expected.update(OWN[part])
    assert body == expected


def test_the_clients_nested_objects_are_never_edited() -> None:
    snapshot = copy.deepcopy(CLIENT)
    for fam, per_api in EXPECTED.items():
        for api, per_budget in per_api.items():
            for b in (None, *per_budget):
                translate(dict(CLIENT), api, fam, b)
    assert snapshot == CLIENT


def test_anthropic_raises_a_cap_not_above_the_thinking_budget() -> None:
    def cap(api: ApiKind, budget: str | int, **body: Any) -> dict[str, Any]:
        translate(body, api, "anthropic", budget)
        return {k: v for k, v in body.items() if k.startswith("max_")}

    # The client's cap stays for the answer, the thinking budget goes below it.
    assert cap(MESSAGES, 4096, max_tokens=500) == {"max_tokens": 4596}
    assert cap(MESSAGES, 4096) == {"max_tokens": 4096 + 1024}
    assert cap(MESSAGES, 4096, max_tokens=4096) == {"max_tokens": 8192}
    assert cap(MESSAGES, 4096, max_tokens=9000) == {"max_tokens": 9000}
    assert cap(CHAT, "low", max_completion_tokens=100) == {"max_completion_tokens": 2148}
    assert cap(MESSAGES, "none", max_tokens=10) == {"max_tokens": 10}


def test_max_tokens_never_raises_the_clients_cap() -> None:
    body: dict[str, Any] = {"max_tokens": 100}
    translate(body, CHAT, "max_tokens", 512)
    assert body == {"max_tokens": 100}
    body = {"max_completion_tokens": 4000}
    translate(body, CHAT, "max_tokens", 512)
    assert body == {"max_completion_tokens": 512}


def test_gemini_writes_one_of_its_two_forms_and_keeps_include_thoughts() -> None:
    body: dict[str, Any] = {"reasoning_effort": "low", **copy.deepcopy(CLIENT_GEMINI)}
    translate(body, CHAT, "gemini", 2048)
    assert body == {"extra_body": {"google": {"thinking_config": {
        "include_thoughts": True, "thinking_budget": 2048}}}}  # fmt: skip
    body = copy.deepcopy(CLIENT_GEMINI)
    translate(body, CHAT, "gemini", "high")
    assert body == {
        "reasoning_effort": "high",
        "extra_body": {"google": {"thinking_config": {"include_thoughts": True}}},
    }
    body = {"extra_body": {"google": {"thinking_config": {"thinking_budget": 800}}}}
    translate(body, CHAT, "gemini", "none")
    assert body == {"reasoning_effort": "none"}  # emptied objects go too


CLIENT_GEMINI: dict[str, Any] = {
    "extra_body": {
        "google": {"thinking_config": {"thinking_budget": 800, "include_thoughts": True}}
    }
}


def test_deepseek_is_a_switch_that_keeps_the_clients_effort() -> None:
    body: dict[str, Any] = {"reasoning": {"effort": "low", "summary": "auto"}}
    translate(body, RESPONSES, "deepseek", "on")
    assert body == {"reasoning": {"effort": "low", "summary": "auto"}}
    translate(body, RESPONSES, "deepseek", "off")
    assert body == {"reasoning": {"effort": "none", "summary": "auto"}}
    translate(body, RESPONSES, "deepseek", "xhigh")  # on again, at DeepSeek's default
    assert body == {"reasoning": {"effort": "high", "summary": "auto"}}
    body = {"reasoning_effort": "low", "thinking": {"type": "disabled"}}
    translate(body, CHAT, "deepseek", 1)
    assert body == {"reasoning_effort": "low", "thinking": {"type": "enabled"}}


def test_qwen_budget_replaces_the_clients_and_keeps_other_template_kwargs() -> None:
    body = dict(CLIENT)
    translate(body, CHAT, "qwen", "on")
    assert body["chat_template_kwargs"] == {"enable_thinking": True, "other": 1}
    assert "thinking_token_budget" not in body
    body = dict(CLIENT)
    translate(body, CHAT, "qwen", 256)
    assert body["chat_template_kwargs"] == {"enable_thinking": True, "other": 1}
    assert body["thinking_token_budget"] == 256


def test_openai_responses_effort_keeps_the_other_reasoning_keys() -> None:
    body: dict[str, Any] = {"reasoning": {"summary": "auto", "effort": "low"}}
    translate(body, RESPONSES, "openai", "xhigh")
    assert body == {"reasoning": {"summary": "auto", "effort": "xhigh"}}


@pytest.mark.parametrize(
    ("family", "budget", "message"),
    [
        ("none", "high", "family 'none' takes no budget"),
        ("native", 4096, "native budget must be one of none, minimal, low, medium, high, xhigh"),
        ("openai", "max", "openai budget must be one of none, minimal, low, medium, high, xhigh;"),
        ("openai", "4096", "got 4096"),
        ("anthropic", 1023, "or thinking tokens: an integer >= 1024; got 1023"),
        ("anthropic", "on", "anthropic budget must be"),
        ("deepseek", 0, "deepseek budget must be one of off, on, none"),
        ("deepseek", "max", "got 'max'"),
        ("gemini", "xhigh", "gemini budget must be one of none, minimal, low, medium, high, or"),
        ("gemini", -1, "got -1"),
        ("qwen", "low", "qwen budget must be one of off, on, or thinking tokens"),
        ("max_tokens", "high", "max_tokens budget must be output tokens: an integer >= 1"),
        ("max_tokens", True, "got True"),
        ("grok", "high", "unknown family 'grok'; one of none, native, openai, anthropic"),
    ],
)
def test_a_budget_the_family_does_not_take_is_refused_clearly(
    family: str, budget: object, message: str
) -> None:
    for api in ApiKind:
        body = copy.deepcopy(CLIENT)
        with pytest.raises(BudgetError, match=f"^{message}" if "got" not in message else message):
            translate(body, api, family, budget)
        assert body == CLIENT  # refused before anything was touched
    with pytest.raises(BudgetError):
        check_budget(family, budget)


@dataclass
class E:
    family: str
    budget: str | int | None
    name: str = "e"
    model: str = "m"
    local: bool = False


def run_plugin(entry: E, api: ApiKind, body: dict[str, Any]) -> PluginState:
    req = LLMRequest(api, "auto", (Message("user", PromptText("x")),), body=body)
    state = PluginState(req, dict(body), [entry], choice=entry)
    BudgetPlugin().apply(state, 0)
    return state


def test_the_plugin_translates_the_choice_and_notes_what_it_did() -> None:
    state = run_plugin(E("gemini", 2048), CHAT, {"model": "m", "reasoning_effort": "x"})
    assert state.body == {
        "model": "m",
        "extra_body": {"google": {"thinking_config": {"thinking_budget": 2048}}},
    }
    assert state.notes == {"budget": "gemini:2048"}
    state = run_plugin(E("gemini", "low"), MESSAGES, {"model": "m", "thinking": {"type": "x"}})
    assert state.body == {"model": "m"}  # the foreign field goes even when nothing is sent
    assert state.notes == {"budget": "gemini:low not sent (anthropic_messages)"}
    state = run_plugin(E("openai", None), CHAT, {"model": "m", "reasoning_effort": "low"})
    assert state.body == {"model": "m", "reasoning_effort": "low"} and state.notes == {}
