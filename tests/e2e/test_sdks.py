"""The official ``openai`` and ``anthropic`` SDKs through a real Envoy and irtgate.

Chat Completions, Responses and Messages, each non-streaming and streaming, to TLS
stand-ins that insist on their provider key. The assertions are on what the SDK parsed.
The SDKs present the gateway key the way each does (``Authorization: Bearer`` for
OpenAI, ``x-api-key`` for Anthropic); it never reaches an upstream.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import MessageParam, RawContentBlockDeltaEvent, TextDelta
from openai.types.chat import ChatCompletionMessageParam
from openai.types.responses import ResponseCompletedEvent, ResponseTextDeltaEvent

from tests.e2e.upstream_stack import CLIENT_KEY, SECRETS, Harness, tls_harness

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-sdks")]

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
MSGS: list[MessageParam] = [{"role": "user", "content": "hi"}]
# The demo stand-in answers "[upstream] model=... ..." then " part 1", " part 2"... when
# streaming (4 events by default).
PARTS = " part 1 part 2 part 3"


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with tls_harness(tmp_path_factory.mktemp("sdks"), "sdks") as harness:
        yield harness


def _http(h: Harness) -> httpx2.Client:
    # Both SDKs run on httpx2. Every response is kept for the leak check at the end.
    return httpx2.Client(event_hooks={"response": [h.responses.append]}, timeout=15)


@pytest.fixture(scope="module")
def oai(h: Harness) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=h.stack.url + "/v1", api_key=CLIENT_KEY, max_retries=0, http_client=_http(h)
    )


@pytest.fixture(scope="module")
def claude(h: Harness) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=h.stack.url, api_key=CLIENT_KEY, max_retries=0, http_client=_http(h)
    )


def test_openai_chat(oai: openai.OpenAI, h: Harness) -> None:
    c = oai.chat.completions.create(model="gpt-e2e", messages=HI)
    assert c.object == "chat.completion"
    assert c.choices[0].finish_reason == "stop"
    text = c.choices[0].message.content or ""
    assert text.startswith("[oai] model=gpt-e2e ")
    assert (
        h.stack.upstream("oai")
        .state.received[-1]
        .headers["authorization"]
        .startswith("Bearer sk-oai-")
    )


def test_openai_chat_streaming(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gemini-e2e",
        messages=HI,
        stream=True,
    )
    pieces = [ch.choices[0].delta.content or "" for ch in stream if ch.choices]
    assert len(pieces) == 4
    assert pieces[0].startswith("[gem] model=gemini-e2e ")
    assert "".join(pieces[1:]) == PARTS


def test_openai_responses(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model="gpt-e2e", input="hi", reasoning={"effort": "low"})
    assert r.status == "completed"
    assert r.output_text.startswith("[oai] model=gpt-e2e ")
    assert 'reasoning={"effort": "low"}' in r.output_text


def test_openai_responses_streaming(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="azure-e2e", input="hi", stream=True))
    assert events[0].type == "response.created"
    deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert deltas[0].startswith("[azure] model=azure-e2e ") and "".join(deltas[1:]) == PARTS
    done = events[-1]
    assert isinstance(done, ResponseCompletedEvent)
    assert done.response.output_text == "".join(deltas)


def test_anthropic_messages(claude: anthropic.Anthropic, h: Harness) -> None:
    m = claude.messages.create(model="claude-e2e", max_tokens=64, messages=MSGS)
    assert m.type == "message" and m.stop_reason == "end_turn"
    block = m.content[0]
    assert block.type == "text" and block.text.startswith("[claude] model=claude-e2e ")
    got = h.stack.upstream("claude").state.received[-1].headers
    assert got["x-api-key"].startswith("sk-ant-") and "authorization" not in got


def test_anthropic_messages_streaming(claude: anthropic.Anthropic) -> None:
    raw = list(
        claude.messages.create(
            model="claude-e2e",
            max_tokens=64,
            messages=MSGS,
            stream=True,
            thinking={"type": "enabled", "budget_tokens": 2048},
        )
    )
    assert [e.type for e in raw][:2] == ["message_start", "content_block_start"]
    deltas = [
        e.delta.text
        for e in raw
        if isinstance(e, RawContentBlockDeltaEvent) and isinstance(e.delta, TextDelta)
    ]
    assert "budget_tokens" in deltas[0] and "".join(deltas[1:]) == PARTS
    # The SDK's own stream helper assembles the same message.
    with claude.messages.stream(model="claude-e2e", max_tokens=64, messages=MSGS) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.startswith("[claude] model=claude-e2e ") and text.endswith(PARTS)
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"


def test_sdk_errors_are_parsed_and_keys_stay_out(oai: openai.OpenAI, h: Harness) -> None:
    # An API the upstream does not speak: the SDK raises with irtgate's OpenAI-style body.
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="claude-e2e", messages=HI)
    assert e.value.code == "api_not_served"
    bad = openai.OpenAI(base_url=h.stack.url + "/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad.chat.completions.create(model="gpt-e2e", messages=HI)
    assert auth.value.code == "invalid_api_key"
    assert h.responses
    for resp in h.responses:
        headers = str(dict(resp.headers))
        assert not any(s in headers for s in SECRETS)
