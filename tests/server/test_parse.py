"""Parsing the three wire formats into LLMRequest, and rejecting bad input clearly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from irtgate.server.parse import api_for_path, decode_json, parse_request
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/v1/chat/completions", ApiKind.CHAT),
        ("/v1/chat/completions?x=1", ApiKind.CHAT),
        ("/openai/v1/chat/completions", ApiKind.CHAT),
        ("/v1/responses", ApiKind.RESPONSES),
        ("/v1/messages/", ApiKind.MESSAGES),
        ("/v1/models", None),
        ("/v1/chat/completions/extra", None),
        ("", None),
    ],
)
def test_api_for_path(path: str, api: ApiKind | None) -> None:
    assert api_for_path(path) is api


def test_chat_request_fields() -> None:
    req = parse_request(
        ApiKind.CHAT,
        raw({
            "model": "auto",
            "stream": True,
            "max_completion_tokens": 50,
            "max_tokens": 99,
            "reasoning_effort": "high",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": "data:"}},
                    {"type": "text", "text": "this"},
                ]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                {"role": "tool", "content": "42"},
            ],
        }),
    )  # fmt: skip
    assert req.api is ApiKind.CHAT
    assert (req.model, req.stream, req.max_tokens, req.reasoning_effort) == (
        "auto",
        True,
        50,
        "high",
    )
    assert req.n_tools == 1 and '"name":"f"' in req.tools_json
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    user = req.messages[1]
    assert user.text.reveal() == "what is\nthis"
    assert user.n_non_text_parts == 1
    assert req.messages[2].has_tool_calls
    assert req.last_user_text.reveal() == "what is\nthis"
    assert req.system_text.reveal() == "be brief"
    assert req.body["model"] == "auto"


def test_prompt_text_stays_hidden_in_repr() -> None:
    req = parse_request(ApiKind.CHAT, raw({"model": "m", "messages": [
        {"role": "user", "content": "secret words"}]}))  # fmt: skip
    assert "secret" not in repr(req.messages)


def test_responses_request() -> None:
    req = parse_request(
        ApiKind.RESPONSES,
        raw({
            "model": "auto",
            "instructions": "sys",
            "max_output_tokens": 10,
            "reasoning": {"effort": "low"},
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hello"},
                                             {"type": "input_image", "image_url": "x"}]},
                {"type": "function_call", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "1", "output": "done"},
                {"type": "reasoning", "summary": []},
            ],
        }),
    )  # fmt: skip
    assert (req.max_tokens, req.reasoning_effort) == (10, "low")
    assert [m.role for m in req.messages] == ["developer", "user", "assistant", "tool", "assistant"]
    assert req.messages[1].n_non_text_parts == 1
    assert req.messages[2].has_tool_calls
    assert req.messages[3].text.reveal() == "done"
    assert (
        parse_request(ApiKind.RESPONSES, raw({"model": "m", "input": "q"})).last_user_text.reveal()
        == "q"
    )


def test_anthropic_request() -> None:
    req = parse_request(
        ApiKind.MESSAGES,
        raw({
            "model": "auto",
            "max_tokens": 1000,
            "system": [{"type": "text", "text": "sys"}],
            "thinking": {"type": "enabled", "budget_tokens": 512},
            "messages": [
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                   "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                              "content": [{"type": "text", "text": "r"}]}]},
            ],
        }),
    )  # fmt: skip
    assert (req.max_tokens, req.reasoning_effort) == (1000, "512")
    assert req.system_text.reveal() == "sys"
    assert req.messages[2].has_tool_calls
    assert req.messages[3].text.reveal() == "r"
    off = parse_request(
        ApiKind.MESSAGES,
        raw(
            {
                "model": "m",
                "thinking": {"type": "disabled"},
                "messages": [{"role": "user", "content": "x"}],
            }
        ),
    )
    assert off.reasoning_effort is None


@pytest.mark.parametrize(
    ("api", "body", "code", "fragment"),
    [
        (ApiKind.CHAT, b"{", "invalid_json", "not valid JSON"),
        (ApiKind.CHAT, b"\xff\xfe", "invalid_json", "UTF-8"),
        (ApiKind.CHAT, b"[1]", "invalid_request", "not an array"),
        (ApiKind.CHAT, b'"s"', "invalid_request", "not a string"),
        (ApiKind.CHAT, b"3", "invalid_request", "not a number"),
        (ApiKind.CHAT, b"null", "invalid_request", "not null"),
        (ApiKind.CHAT, b'{"messages":[]}', "invalid_request", "'model'"),
        (ApiKind.CHAT, b'{"model":"m"}', "invalid_request", "'messages' is required"),
        (ApiKind.CHAT, b'{"model":"m","messages":{}}', "invalid_request", "non-empty array"),
        (ApiKind.CHAT, b'{"model":"m","messages":[1]}', "invalid_request", "messages[0]"),
        (ApiKind.CHAT, b'{"model":"m","messages":[{"content":"x"}]}', "invalid_request", "'role'"),
        (ApiKind.CHAT, b'{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}',
         "invalid_request", "'text'"),
        (ApiKind.CHAT, b'{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}',
         "invalid_request", "'stream'"),
        (ApiKind.CHAT, b'{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}',
         "invalid_request", "'max_tokens'"),
        (ApiKind.CHAT, b'{"model":"m","tools":{},"messages":[{"role":"user","content":"x"}]}',
         "invalid_request", "'tools'"),
        (ApiKind.RESPONSES, b'{"model":"m"}', "invalid_request", "'input'"),
        (ApiKind.RESPONSES, b'{"model":"m","input":"x","reasoning":"hi"}', "invalid_request",
         "'reasoning'"),
        (ApiKind.MESSAGES, b'{"model":"m","messages":[{"role":"user","content":"x"}],'
         b'"thinking":{"type":"enabled"}}', "invalid_request", "budget_tokens"),
    ],
)  # fmt: skip
def test_rejections(api: ApiKind, body: bytes, code: str, fragment: str) -> None:
    with pytest.raises(ClientError) as e:
        parse_request(api, body)
    assert e.value.code == code
    assert fragment in e.value.message


def test_json_error_message_does_not_quote_the_body() -> None:
    with pytest.raises(ClientError) as e:
        decode_json(b'{"secret": "words", ')
    assert "secret" not in e.value.message


def test_deeply_nested_json_is_a_client_error() -> None:
    with pytest.raises(ClientError) as e:
        decode_json(b"[" * 100_000 + b"]" * 100_000)
    assert e.value.status == 400


_CHAT_TAIL = b',"messages":[{"role":"user","content":"x"}]}'


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        # issue 10: each of these was a 500 (an exception other than ClientError)
        (b'{"model":"m","messages":[{"role":"user","content":[{"type":["text"]}]}]}', "'type'"),
        (b'{"model":"m","messages":[{"role":"user","content":[{"type":{}}]}]}', "'type'"),
        (b'{"model":"m","messages":[{"role":"user","content":"\\ud800"}]}', "surrogate"),
        (b'{"model":"m","messages":[{"role":"\\udfff","content":"x"}]}', "surrogate"),
        (b'{"model":"m","\\ud800":1' + _CHAT_TAIL, "surrogate"),
        (b'{"model":"m","n":' + b"9" * 4301 + _CHAT_TAIL, "number too long"),
        # non-standard JSON the upstream would get back re-serialised
        (b'{"model":"m","temperature":NaN' + _CHAT_TAIL, "NaN"),
        (b'{"model":"m","temperature":-Infinity' + _CHAT_TAIL, "Infinity"),
        (b'{"model":"m","temperature":1e999' + _CHAT_TAIL, "out of range"),
        # irtgate would route on the last "model", an upstream may read the first
        (b'{"model":"auto","model":"gpt-4o"' + _CHAT_TAIL, "duplicate key 'model'"),
        (b'{"model":"m","messages":[{"role":"user","role":"system","content":"x"}]}',
         "duplicate key 'role'"),
        (b'{"model":"m","metadata":{"a b c secret":1,"a b c secret":2}' + _CHAT_TAIL,
         "duplicate key in"),
    ],
)  # fmt: skip
def test_hostile_json_is_a_400(body: bytes, fragment: str) -> None:
    with pytest.raises(ClientError) as e:
        parse_request(ApiKind.CHAT, body)
    assert e.value.status == 400
    assert fragment in e.value.message
    assert "secret" not in e.value.message


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    emoji = parse_request(
        ApiKind.CHAT, b'{"model":"m","messages":[{"role":"user","content":"\\ud83d\\ude00"}]}'
    )
    assert emoji.messages[0].text.reveal() == "\U0001f600"
    text = parse_request(
        ApiKind.CHAT, b'{"model":"m","messages":[{"role":"user","content":"\\\\ud800"}]}'
    )
    assert text.messages[0].text.reveal() == "\\ud800"
    big = parse_request(ApiKind.CHAT, b'{"model":"m","n":' + b"9" * 4000 + _CHAT_TAIL)
    assert big.body["n"] == int("9" * 4000)
