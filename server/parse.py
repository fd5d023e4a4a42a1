"""Wire formats → :class:`~irtgate.signals.request.LLMRequest`.

Three request shapes are understood: OpenAI Chat Completions, OpenAI Responses and
Anthropic Messages. Messages are flattened to text parts (wrapped in PromptText at once);
non-text parts are only counted. Every rejection is a :class:`~irtgate.signals.errors.ClientError`
whose message names the offending field, never its content.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from irtgate.signals import errors
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

API_PATHS: Final = {
    "/v1/chat/completions": ApiKind.CHAT,
    "/v1/responses": ApiKind.RESPONSES,
    "/v1/messages": ApiKind.MESSAGES,
}
_TEXT_PART_TYPES: Final = frozenset({"text", "input_text", "output_text"})


def api_for_path(path: str) -> ApiKind | None:
    """The API a request path addresses, or None for paths irtgate does not route.

    A prefix is allowed (``/openai/v1/chat/completions``) so that gateways mounting the
    API under a path still route; the query string is ignored.
    """
    bare = path.split("?", 1)[0].rstrip("/")
    for suffix, kind in API_PATHS.items():
        if bare == suffix or bare.endswith(suffix):
            return kind
    return None


def _invalid(message: str) -> ClientError:
    return errors.INVALID_REQUEST.with_message(message)


# A JSON escape of a UTF-16 surrogate: only then can a decoded string hold a lone one.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class _Rejected(Exception):
    """Raised from inside json.loads by the hooks below; carries the client message."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: the upstream would get Infinity back
        raise _Rejected(f"number {text[:32]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise _Rejected(f"{name} is not valid JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise _Rejected(f"duplicate key{_first_duplicate(pairs)} in an object")
    return doc


def _first_duplicate(pairs: list[tuple[str, Any]]) -> str:
    """`` 'name'`` of the first repeated key if it is a plain token (keys may be prompt
    text, which must not reach an error message), else nothing."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return f" {key!r}" if _PLAIN_KEY.fullmatch(key) else ""
        seen.add(key)
    return ""


_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Built once: json.loads with hooks builds a decoder per call. The hooks cost ~15 us on a
# 2 KB chat body (one Python call per object and per float).
_DECODER: Final = json.JSONDecoder(
    parse_float=_finite, parse_constant=_constant, object_pairs_hook=_object
)


def decode_json(body: bytes) -> Mapping[str, Any]:
    """The body as a JSON object, or the matching client error.

    Stricter than :func:`json.loads`: ``NaN``, ``Infinity`` and numbers that overflow to
    them, duplicate keys (at any depth: irtgate and the upstream could read different
    values) and lone UTF-16 surrogates (not text; they cannot be re-encoded) are refused.
    """
    try:
        # RFC 8259: JSON on the wire is UTF-8; json.loads(bytes) would also guess UTF-16/32.
        text = body.decode("utf-8")
        doc = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise errors.INVALID_JSON.with_message("body is not valid UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        # e.msg and the position carry no content; e.doc would, so it is not used.
        raise errors.INVALID_JSON.with_message(
            f"body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except _Rejected as e:
        raise errors.INVALID_JSON.with_message(f"body is not valid JSON: {e}") from None
    except RecursionError:
        raise errors.INVALID_JSON.with_message("body JSON is nested too deeply") from None
    except ValueError:  # an integer past Python's digit limit (4300); the message quotes none
        raise errors.INVALID_JSON.with_message("body has a number too long to read") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(doc):
        raise errors.INVALID_JSON.with_message(
            "body has a lone UTF-16 surrogate escape (\\uD800-\\uDFFF) in a string"
        )
    if not isinstance(doc, dict):
        raise _invalid(f"request body must be a JSON object, not {_json_type(doc)}")
    return doc


def _has_lone_surrogate(doc: Any) -> bool:
    """Whether any key or string holds a surrogate that is not half of a pair (json.loads
    joins escaped pairs into one character, so any surrogate left is lone)."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return True
        elif isinstance(value, dict):
            for k, v in value.items():
                if not _encodable(k):
                    return True
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "an object"


def parse_request(api: ApiKind, body: bytes) -> LLMRequest:
    """Parse a raw request body for ``api``. Raises ClientError on bad input."""
    doc = decode_json(body)
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("'model' must be a non-empty string")
    if api is ApiKind.CHAT:
        messages = _chat_messages(doc)
        max_tokens = _opt_int(doc, "max_completion_tokens", "max_tokens")
        effort = _opt_str(doc, "reasoning_effort")
    elif api is ApiKind.RESPONSES:
        messages = _responses_messages(doc)
        max_tokens = _opt_int(doc, "max_output_tokens")
        reasoning = doc.get("reasoning")
        if reasoning is not None and not isinstance(reasoning, dict):
            raise _invalid("'reasoning' must be an object")
        effort = _opt_str(reasoning, "effort") if reasoning else None
    else:
        messages = _anthropic_messages(doc)
        max_tokens = _opt_int(doc, "max_tokens")
        effort = _anthropic_thinking(doc)
    stream = doc.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("'stream' must be a boolean")
    tools = doc.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _invalid("'tools' must be an array")
    tools = tools or []
    return LLMRequest(
        api=api,
        model=model,
        messages=tuple(messages),
        stream=stream,
        tools_json=json.dumps(tools, sort_keys=True, separators=(",", ":")) if tools else "",
        n_tools=len(tools),
        max_tokens=max_tokens,
        reasoning_effort=effort,
        body=doc,
    )


def _opt_int(doc: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = doc.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _invalid(f"'{key}' must be a non-negative integer")
        return value
    return None


def _opt_str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"'{key}' must be a string")
    return value


def _flatten(content: Any, where: str) -> tuple[str, int, bool]:
    """Text of a content value (string or list of parts), non-text part count, tool use."""
    if content is None:
        return "", 0, False
    if isinstance(content, str):
        return content, 0, False
    if not isinstance(content, list):
        raise _invalid(f"{where}: 'content' must be a string or an array of parts")
    texts: list[str] = []
    n_other = 0
    tool_use = False
    for i, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise _invalid(f"{where}: content part {i} must be an object")
        kind = part.get("type")
        if not isinstance(kind, str | None):
            raise _invalid(f"{where}: content part {i}: 'type' must be a string")
        if kind in _TEXT_PART_TYPES:
            text = part.get("text")
            if not isinstance(text, str):
                raise _invalid(f"{where}: content part {i} needs a string 'text'")
            texts.append(text)
        elif kind == "tool_use":
            tool_use = True
        elif kind == "tool_result":
            inner, n_inner, _ = _flatten(part.get("content"), f"{where} part {i}")
            texts.append(inner)
            n_other += n_inner
        else:
            n_other += 1
    return "\n".join(t for t in texts if t), n_other, tool_use


def _message(role: Any, content: Any, where: str, tool_calls: bool = False) -> Message:
    if not isinstance(role, str) or not role:
        raise _invalid(f"{where}: 'role' must be a non-empty string")
    text, n_other, tool_use = _flatten(content, where)
    return Message(
        role=role,
        text=PromptText(text),
        n_non_text_parts=n_other,
        has_tool_calls=tool_calls or tool_use,
    )


def _list_of_objects(doc: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = doc.get(key)
    if items is None:
        raise _invalid(f"'{key}' is required")
    if not isinstance(items, list) or not items:
        raise _invalid(f"'{key}' must be a non-empty array")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _invalid(f"{key}[{i}] must be an object")
    return items


def _chat_messages(doc: Mapping[str, Any]) -> list[Message]:
    out = []
    for i, m in enumerate(_list_of_objects(doc, "messages")):
        out.append(
            _message(m.get("role"), m.get("content"), f"messages[{i}]", bool(m.get("tool_calls")))
        )
    return out


def _responses_messages(doc: Mapping[str, Any]) -> list[Message]:
    out: list[Message] = []
    instructions = doc.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _invalid("'instructions' must be a string")
        out.append(Message("developer", PromptText(instructions)))
    raw = doc.get("input")
    if isinstance(raw, str):
        out.append(Message("user", PromptText(raw)))
        return out
    if raw is None:
        raise _invalid("'input' is required")
    for i, item in enumerate(_list_of_objects(doc, "input")):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item.get("role"), item.get("content"), where))
        elif kind == "function_call":
            out.append(Message("assistant", PromptText(""), has_tool_calls=True))
        elif kind == "function_call_output":
            output = item.get("output")
            out.append(_message("tool", output if isinstance(output, str | list) else "", where))
        else:  # reasoning items, file search results...: counted, not read
            out.append(Message("assistant", PromptText(""), n_non_text_parts=1))
    return out


def _anthropic_messages(doc: Mapping[str, Any]) -> list[Message]:
    out: list[Message] = []
    system = doc.get("system")
    if system is not None:
        out.append(_message("system", system, "system"))
    for i, m in enumerate(_list_of_objects(doc, "messages")):
        out.append(_message(m.get("role"), m.get("content"), f"messages[{i}]"))
    return out


def _anthropic_thinking(doc: Mapping[str, Any]) -> str | None:
    """Anthropic's extended thinking as a budget label: the token budget, as a string."""
    thinking = doc.get("thinking")
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        raise _invalid("'thinking' must be an object")
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise _invalid("'thinking.budget_tokens' must be a non-negative integer")
    return str(budget)
