"""The typed view of an LLM request that every signal, policy and plugin reads.

Parsers for the wire formats (OpenAI Chat Completions, OpenAI Responses, Anthropic
Messages) live in ``server/`` and produce an :class:`LLMRequest`. The raw JSON body is kept
alongside so that rewrites preserve every field irtgate does not understand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from irtgate.signals.text import PromptText


class ApiKind(StrEnum):
    CHAT = "chat_completions"  # POST /v1/chat/completions
    RESPONSES = "responses"  # POST /v1/responses
    MESSAGES = "anthropic_messages"  # POST /v1/messages


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation turn, flattened to text for signal extraction.

    ``text`` holds the concatenated text parts; non-text parts (images, audio) are counted
    in ``n_non_text_parts`` so that length signals can account for them.
    """

    role: str  # system | developer | user | assistant | tool
    text: PromptText
    n_non_text_parts: int = 0
    has_tool_calls: bool = False


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """A parsed request. Immutable: plugins produce a new body, never edit this in place."""

    api: ApiKind
    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    tools_json: str = ""  # canonical JSON of tool schemas, for token counting
    n_tools: int = 0
    max_tokens: int | None = None
    reasoning_effort: str | None = None
    # The decoded JSON body as received. Treated as read-only by convention.
    body: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def last_user_text(self) -> PromptText:
        """What is being asked: the text of the last user turn (empty if there is none)."""
        for m in reversed(self.messages):
            if m.role == "user" and m.text:
                return m.text
        return PromptText("")

    @property
    def system_text(self) -> PromptText:
        parts = [m.text.reveal() for m in self.messages if m.role in ("system", "developer")]
        return PromptText("\n".join(parts))
