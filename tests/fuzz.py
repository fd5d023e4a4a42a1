"""Hypothesis strategies for hostile request bodies, shared by the fuzz tests' tiers.

Bodies come from four sources: arbitrary JSON values; valid Chat Completions, Responses and
Anthropic Messages bodies with one field replaced by a value of the wrong type (at any
depth); hostile leaves (lone surrogates, integers past Python's 4,300-digit limit, NaN and
Infinity, deep nesting, duplicate keys) spliced into valid bodies; and raw bytes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import strategies as st


def examples(n: int) -> int:
    """``n`` examples, times IRTGATE_FUZZ_SCALE (default 1) for a longer hunt."""
    return n * int(os.environ.get("IRTGATE_FUZZ_SCALE", "1"))


PATHS = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
MODELS = ("auto", "demo-small-1", "demo-large-1", "unknown-model", "")

# Every character, lone surrogates included; json.dumps escapes those as \udXXX.
_ANY_CHAR = st.characters(codec=None, categories=None)
texts = st.text(_ANY_CHAR, max_size=16) | st.sampled_from(
    ["hello", "my SSN is 123-45-6789", "mail a.b@example.com", "4111 1111 1111 1111", "text"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=6,
)
roles = st.sampled_from(["user", "system", "assistant", "tool", "developer"]) | json_values
parts = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "input_text", "image_url", "tool_result"]) | json_values,
     "text": texts | json_values},
)  # fmt: skip
contents = texts | st.lists(parts | json_values, max_size=3) | json_values
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": contents}), min_size=0, max_size=3
)
models = st.sampled_from(MODELS) | json_values


@st.composite
def valid_ish(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A body of one of the three APIs, right or wrong in its fields."""
    path = draw(st.sampled_from(PATHS))
    body: dict[str, Any] = {"model": draw(models)}
    if path.endswith("responses"):
        body["input"] = draw(texts | messages | json_values)
        if draw(st.booleans()):
            body["instructions"] = draw(texts | json_values)
        if draw(st.booleans()):
            body["reasoning"] = {"effort": draw(st.sampled_from(["low", "high"]) | json_values)}
    else:
        body["messages"] = draw(messages)
        if path.endswith("messages"):
            body["max_tokens"] = draw(st.integers(-5, 5000) | json_values)
            if draw(st.booleans()):
                body["system"] = draw(contents)
            if draw(st.booleans()):
                body["thinking"] = {"type": "enabled", "budget_tokens": draw(json_values)}
    for key in draw(
        st.lists(
            st.sampled_from(["stream", "tools", "max_tokens", "reasoning_effort", "temperature"]),
            max_size=2,
        )
    ):
        body[key] = draw(json_values)  # fmt: skip
    return path, body


def _splice(doc: Any, path: list[int], leaf: Any) -> Any:
    """``doc`` with the node that ``path`` indexes (modulo sizes) replaced by ``leaf``."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return leaf
    if isinstance(doc, dict):
        keys = list(doc)
        k = keys[path[0] % len(keys)]
        return {**doc, k: _splice(doc[k], path[1:], leaf)}
    i = path[0] % len(doc)
    return [*doc[:i], _splice(doc[i], path[1:], leaf), *doc[i + 1 :]]


# Raw JSON text that json.dumps cannot produce from Python values.
HOSTILE_RAW = st.sampled_from([
    '"\\ud800"', '"\\udfff x"', '"a\\ud83d"', "9" * 4301, "-" + "1" * 5000, "1e999", "NaN",
    "-Infinity", "Infinity", "[" * 3000 + "]" * 3000, '{"a":1,"a":2}', '{"model":"x"}',
    '[{"type":["text"]}]', '{"type":{"t":1},"text":"x"}', "1" * 4300,
])  # fmt: skip
_MARK = "\u0000SPLICE\u0000"


@st.composite
def hostile_body(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid-ish body with one node replaced by raw hostile JSON, or a duplicated key."""
    path, body = draw(valid_ish())
    where = draw(st.lists(st.integers(0, 7), max_size=5))
    if draw(st.booleans()):
        raw = json.dumps(_splice(body, where, _MARK)).replace(json.dumps(_MARK), draw(HOSTILE_RAW))
    else:  # repeat a top-level key (e.g. a second "model") with another value
        key = draw(st.sampled_from(sorted(body)))
        text = json.dumps(body)
        raw = text[:-1] + ", " + json.dumps(key) + ": " + json.dumps(draw(json_values)) + "}"
    return path, raw.encode("utf-8", "surrogatepass")


@st.composite
def any_body(draw: st.DrawFn) -> tuple[str, bytes]:
    """(path, body bytes) from any of the sources above."""
    kind = draw(st.sampled_from(["valid_ish", "hostile", "json", "bytes", "mutated"]))
    if kind == "valid_ish":
        path, body = draw(valid_ish())
        return path, json.dumps(body).encode("utf-8", "surrogatepass")
    if kind == "hostile":
        path, raw = draw(hostile_body())
        return path, raw
    path = draw(st.sampled_from(PATHS))
    if kind == "json":
        return path, json.dumps(draw(json_values)).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return path, draw(st.binary(max_size=200))
    _, body = draw(valid_ish())
    data = bytearray(json.dumps(body).encode("utf-8", "surrogatepass"))
    for _ in range(draw(st.integers(1, 4))):  # flip, cut or insert a few bytes
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
    return path, bytes(data)
