"""Property-based fuzzing of the parser: any body is a request or a 4xx ClientError."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from irtgate.server.parse import api_for_path, parse_request
from irtgate.signals.errors import ClientError
from irtgate.signals.request import LLMRequest
from tests.fuzz import PATHS, any_body, examples, hostile_body, json_values


def outcome(path: str, body: bytes) -> LLMRequest | ClientError:
    api = api_for_path(path)
    assert api is not None
    try:
        request = parse_request(api, body)
    except ClientError as e:
        assert 400 <= e.status < 500, e
        error = json.loads(e.body())["error"]
        assert set(error) == {"message", "type", "code"}
        return e
    # What the gateway does next with a parsed request must not fail either.
    json.dumps(request.body, ensure_ascii=False).encode()
    for m in request.messages:
        m.text.reveal().encode()
    return request


@settings(max_examples=examples(1200))
@given(any_body())
def test_fuzz_any_body_parses_or_is_a_4xx(case: tuple[str, bytes]) -> None:
    outcome(*case)


@settings(max_examples=examples(600))
@given(hostile_body())
def test_fuzz_hostile_json_is_always_refused_or_safe(case: tuple[str, bytes]) -> None:
    result = outcome(*case)
    if isinstance(result, LLMRequest):
        # Accepted: then it re-serialises to standard JSON an upstream reads the same way.
        text = json.dumps(result.body, allow_nan=False)
        assert json.loads(text) == result.body


@settings(max_examples=examples(300))
@given(st.sampled_from(PATHS), json_values)
def test_fuzz_arbitrary_json_values(path: str, value: object) -> None:
    outcome(path, json.dumps(value).encode("utf-8", "surrogatepass"))
