"""What a decision produces, and the interface the gateway calls to get one.

The gateway (``server/``) knows nothing about signals or policies: it hands a parsed
:class:`~signals.request.LLMRequest` to a :class:`Decider` and applies the returned
:class:`Outcome` (new body, headers, upstream). A decider raises
:class:`~signals.errors.ClientError` to answer the client directly (400/403/...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from signals.base import Value
from signals.request import LLMRequest


@dataclass(frozen=True, slots=True)
class Choice:
    """The configuration picked: a catalog entry = model on an upstream with a budget."""

    config: str  # catalog name, e.g. "gpt-4o@high"
    model: str  # model name written into the upstream request body
    upstream: str  # upstream (Envoy cluster) name the request is routed to
    budget: str | None = None  # reasoning budget label ("low", "high", "4096"), None if none


@dataclass(frozen=True, slots=True)
class Outcome:
    choice: Choice
    decision: str  # name of the policy decision that matched
    reason: str  # short, content-free explanation (bounded; safe for headers)
    body: Mapping[str, Any]  # JSON body to send upstream (may equal the original)
    body_changed: bool
    request_headers: Mapping[str, str] = field(default_factory=dict)  # set upstream
    remove_request_headers: tuple[str, ...] = ()
    # Numbers and labels behind the decision: signal values, P(correct) per candidate,
    # cost. Never prompt text. Served by the Decide RPC and `irtgate explain`.
    explanation: Mapping[str, Value] = field(default_factory=dict)


class Decider(Protocol):
    async def decide(self, request: LLMRequest) -> Outcome: ...
