"""Plugins on all three API shapes: PII redact/block/restrict, system prompt, headers."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from irtgate.plugins.base import PluginState
from irtgate.plugins.bodies import set_system_prompt, text_slots
from irtgate.plugins.headers import HeadersConfig, HeadersPlugin
from irtgate.plugins.pii import PiiConfig, PiiPlugin, default_detector
from irtgate.signals.base import WorkBudget
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

EMAIL = "jane.roe@example.org"
CARD = "4111 1111 1111 1111"


def bodies(text: str) -> dict[ApiKind, dict[str, Any]]:
    """The same conversation in each API shape, with the text in several kinds of slot."""
    return {
        ApiKind.CHAT: {
            "model": "auto",
            "messages": [
                {"role": "system", "content": f"Operator contact {EMAIL}."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text},
                        {"type": "image_url", "image_url": {"url": "x"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "1",
                            "type": "function",
                            "function": {"name": "f", "arguments": json.dumps({"q": text})},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "1", "content": text},
            ],
        },
        ApiKind.RESPONSES: {
            "model": "auto",
            "instructions": f"Operator contact {EMAIL}.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": text}]},
                {
                    "type": "function_call",
                    "call_id": "1",
                    "name": "f",
                    "arguments": json.dumps({"q": text}),
                },
                {"type": "function_call_output", "call_id": "1", "output": text},
            ],
        },
        ApiKind.MESSAGES: {
            "model": "auto",
            "max_tokens": 100,
            "system": [{"type": "text", "text": f"Operator contact {EMAIL}."}],
            "messages": [
                {"role": "user", "content": text},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "1", "name": "f", "input": {"q": text}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "1",
                            "content": [{"type": "text", "text": text}],
                        }
                    ],
                },
            ],
        },
    }


class Entry:
    def __init__(self, name: str, local: bool) -> None:
        self.name, self.model, self.local = name, name, local
        self.family, self.budget = "none", None


def state(api: ApiKind, body: dict[str, Any]) -> PluginState:
    req = LLMRequest(api, "auto", (Message("user", PromptText("x")),), body=body)
    return PluginState(
        request=req,
        body=copy.deepcopy(body),
        candidates=[Entry("on-prem", True), Entry("cloud", False)],
    )


def all_text(body: dict[str, Any], api: ApiKind) -> str:
    return "\n".join(c[k] for c, k in text_slots(api, body))


@pytest.mark.parametrize("api", list(ApiKind))
def test_every_text_slot_is_found(api: ApiKind) -> None:
    body = bodies("MARK")[api]
    texts = [c[k] for c, k in text_slots(api, body)]
    assert sum("MARK" in t for t in texts) == 3  # message, tool call, tool result
    assert any(EMAIL in t for t in texts)  # the system prompt


@pytest.mark.parametrize("api", list(ApiKind))
def test_redact_masks_every_slot_and_keeps_the_rest(api: ApiKind) -> None:
    body = bodies(f"Write to {EMAIL} or charge card {CARD} please")[api]
    st = state(api, body)
    plugin = PiiPlugin(PiiConfig(action="redact"), default_detector())
    plugin.before_select(st, 0)
    plugin.apply(st, 0)
    text = all_text(st.body, api)
    assert EMAIL not in text and CARD not in text
    assert "[EMAIL]" in text and "[PAYMENT_CARD]" in text and "please" in text
    assert EMAIL in all_text(body, api)  # the original is untouched
    # Tool arguments stay valid JSON after redaction.
    if api is not ApiKind.MESSAGES:
        args = [c[k] for c, k in text_slots(api, st.body) if k == "arguments"]
        assert json.loads(args[0])["q"].startswith("Write to [EMAIL]")
    assert st.notes["pii.types"] == "email,payment_card"
    assert st.notes["pii.redacted_fields"] == 4
    assert [c.name for c in st.candidates] == ["on-prem", "cloud"]


def test_redact_only_the_configured_types_with_a_custom_mask() -> None:
    body = bodies(f"{EMAIL} {CARD}")[ApiKind.CHAT]
    st = state(ApiKind.CHAT, body)
    plugin = PiiPlugin(
        PiiConfig(action="redact", types=["payment_card"], mask="<{type}>"), default_detector()
    )
    plugin.before_select(st, 0)
    plugin.apply(st, 0)
    text = all_text(st.body, ApiKind.CHAT)
    assert "<PAYMENT_CARD>" in text and EMAIL in text


@pytest.mark.parametrize("api", list(ApiKind))
def test_block_refuses_with_a_content_free_403(
    api: ApiKind, caplog: pytest.LogCaptureFixture
) -> None:
    st = state(api, bodies(f"my card is {CARD}")[api])
    plugin = PiiPlugin(PiiConfig(action="block", types=["payment_card"]), default_detector())
    with caplog.at_level(logging.DEBUG), pytest.raises(ClientError) as ei:
        plugin.before_select(st, 0)
    err = ei.value
    assert err.status == 403 and err.code == "policy_blocked"
    assert b"payment_card" in err.body() and CARD.encode() not in err.body()
    assert CARD not in caplog.text and "1111" not in caplog.text


def test_block_ignores_types_it_is_not_configured_for() -> None:
    st = state(ApiKind.CHAT, bodies("nothing sensitive here")[ApiKind.CHAT])
    # The system prompt has an email, but the plugin only blocks cards.
    PiiPlugin(PiiConfig(action="block", types=["payment_card"]), default_detector()).before_select(
        st, 0
    )


def test_restrict_keeps_only_local_candidates() -> None:
    st = state(ApiKind.CHAT, bodies("hi")[ApiKind.CHAT])
    PiiPlugin(PiiConfig(action="restrict"), default_detector()).before_select(st, 0)
    assert [c.name for c in st.candidates] == ["on-prem"]  # the system prompt has an email
    st = state(ApiKind.CHAT, {"messages": [{"role": "user", "content": "hi"}]})
    PiiPlugin(PiiConfig(action="restrict"), default_detector()).before_select(st, 0)
    assert len(st.candidates) == 2  # no PII: nothing to restrict


def test_restrict_without_local_candidates_is_a_403_refusal() -> None:
    # issue 10: this was 503 no_candidate, which clients retry and alerts page on
    st = state(ApiKind.CHAT, bodies("hi")[ApiKind.CHAT])
    st.candidates = [Entry("cloud", False)]
    with pytest.raises(ClientError) as ei:
        PiiPlugin(PiiConfig(action="restrict"), default_detector()).before_select(st, 0)
    assert (ei.value.status, ei.value.code) == (403, "policy_blocked")
    assert "email" in ei.value.message


@pytest.mark.parametrize(
    ("api", "mode", "expected"),
    [
        (ApiKind.CHAT, "insert", ["S", "Operator contact x."]),
        (ApiKind.CHAT, "replace", ["S"]),
        (ApiKind.RESPONSES, "insert", "S\n\nOperator contact x."),
        (ApiKind.RESPONSES, "replace", "S"),
        (ApiKind.MESSAGES, "insert", ["S", "Operator contact x."]),
        (ApiKind.MESSAGES, "replace", "S"),
    ],
)
def test_system_prompt_per_api(api: ApiKind, mode: str, expected: Any) -> None:
    body = json.loads(json.dumps(bodies("q")[api]).replace(EMAIL, "x"))
    set_system_prompt(api, body, "S", mode)  # type: ignore[arg-type]
    if api is ApiKind.CHAT:
        got = [m["content"] for m in body["messages"] if m["role"] == "system"]
        assert body["messages"][0] == {"role": "system", "content": "S"}
        assert len(body["messages"]) == (5 if mode == "insert" else 4)
    elif api is ApiKind.RESPONSES:
        got = body["instructions"]
    else:
        sys = body["system"]
        got = [b["text"] for b in sys] if isinstance(sys, list) else sys
    assert got == expected


def test_system_prompt_where_the_client_had_none() -> None:
    for api, key in ((ApiKind.RESPONSES, "instructions"), (ApiKind.MESSAGES, "system")):
        body: dict[str, Any] = {"model": "m"}
        set_system_prompt(api, body, "S", "insert")
        assert body[key] == "S"
    body = {"messages": [{"role": "user", "content": "q"}]}
    set_system_prompt(ApiKind.CHAT, body, "S", "insert")
    assert body["messages"][0] == {"role": "system", "content": "S"}


def test_headers_set_and_remove() -> None:
    st = state(ApiKind.CHAT, {"messages": []})
    HeadersPlugin(HeadersConfig(set={"X-Team": "a", "x-keep": "1"}, remove=["x-drop"])).apply(st, 0)
    HeadersPlugin(HeadersConfig(remove=["X-Team"])).apply(st, 1)
    assert st.set_headers == {"x-keep": "1"}
    assert st.remove_headers == ["x-drop", "x-team"]
    with pytest.raises(ValueError, match="control character"):
        HeadersConfig(set={"x-a": "b\r\nInjected: 1"})


def test_a_scan_cut_by_the_work_budget_is_flagged_and_restrict_stays_local() -> None:
    st = state(ApiKind.CHAT, {"messages": [{"role": "user", "content": "1234567 " * 2000}]})
    st.budget = WorkBudget(cpu_seconds=0.0)
    st.budget.start()
    PiiPlugin(PiiConfig(action="restrict"), default_detector()).before_select(st, 0)
    assert st.notes["pii.truncated"] is True
    assert [c.name for c in st.candidates] == ["on-prem"]  # unread text may hold PII
    full = state(ApiKind.CHAT, {"messages": [{"role": "user", "content": "nothing here"}]})
    full.budget = WorkBudget()
    full.budget.start()
    PiiPlugin(PiiConfig(action="restrict"), default_detector()).before_select(full, 0)
    assert "pii.truncated" not in full.notes and len(full.candidates) == 2
