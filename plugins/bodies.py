"""Where the text lives in each API's JSON body, for plugins that rewrite it.

The three shapes irtgate understands (:class:`~irtgate.signals.request.ApiKind`):

- Chat Completions: ``messages[].content`` (a string or a list of parts with ``text``),
  tool call ``arguments``; system prompt = leading ``system``/``developer`` messages.
- Responses: ``instructions`` (the system prompt), ``input`` (a string or a list of items
  whose ``content`` is a string or parts with ``text``), tool ``output``/``arguments``.
- Anthropic Messages: ``system`` (a string or text blocks), ``messages[].content`` (a
  string or blocks: ``text``, ``tool_result`` content, ``tool_use`` input).

Functions take the plugin's own working copy of the body and edit it in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from irtgate.signals.request import ApiKind

# A slot is (container, key) such that container[key] is a str.
Slot = tuple[Any, Any]


def _parts(container: Any, key: Any) -> Iterator[Slot]:
    """Text slots of a content value: a string, or a list of parts/blocks."""
    value = container.get(key) if isinstance(container, dict) else None
    if isinstance(value, str):
        yield (container, key)
    elif isinstance(value, list):
        for part in value:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                yield (part, "text")
            if "content" in part:  # anthropic tool_result blocks nest content
                yield from _parts(part, "content")
            if isinstance(part.get("input"), dict):  # anthropic tool_use input
                yield from _nested(part["input"])
            if isinstance(part.get("output"), str):
                yield (part, "output")


def _nested(obj: Any) -> Iterator[Slot]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str):
                yield (obj, k)
            else:
                yield from _nested(v)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, str):
                yield (obj, i)
            else:
                yield from _nested(v)


def text_slots(api: ApiKind, body: dict[str, Any]) -> Iterator[Slot]:
    """Every string in ``body`` that carries prompt text (including tool traffic)."""
    if api is ApiKind.RESPONSES:
        if isinstance(body.get("instructions"), str):
            yield (body, "instructions")
        if isinstance(body.get("input"), str):
            yield (body, "input")
        items = body.get("input")
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            yield from _parts(item, "content")
            for k in ("output", "arguments"):
                if isinstance(item.get(k), str):
                    yield (item, k)
        return
    if api is ApiKind.MESSAGES:
        yield from _parts(body, "system")
    for msg in body.get("messages") or ():
        if not isinstance(msg, dict):
            continue
        yield from _parts(msg, "content")
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                yield (fn, "arguments")


def rewrite_texts(api: ApiKind, body: dict[str, Any], fn: Callable[[str], str]) -> int:
    """Replace every text slot with ``fn(text)``; returns how many slots changed."""
    changed = 0
    for container, key in list(text_slots(api, body)):
        old = container[key]
        new = fn(old)
        if new != old:
            container[key] = new
            changed += 1
    return changed


Mode = Literal["insert", "replace"]


def set_system_prompt(api: ApiKind, body: dict[str, Any], text: str, mode: Mode) -> None:
    """Insert ``text`` before the existing system prompt, or replace the system prompt."""
    if api is ApiKind.CHAT:
        msgs = [m for m in body.get("messages") or () if isinstance(m, dict)]
        if mode == "replace":
            msgs = [m for m in msgs if m.get("role") not in ("system", "developer")]
        body["messages"] = [{"role": "system", "content": text}, *msgs]
    elif api is ApiKind.RESPONSES:
        old = body.get("instructions")
        keep = mode == "insert" and isinstance(old, str) and old
        body["instructions"] = f"{text}\n\n{old}" if keep else text
    else:
        old = body.get("system")
        if mode == "replace" or not old:
            body["system"] = text
        elif isinstance(old, str):
            body["system"] = f"{text}\n\n{old}"
        elif isinstance(old, list):
            body["system"] = [{"type": "text", "text": text}, *old]
        else:
            body["system"] = text
