"""What a decision produces, and the interface the gateway calls to get one.

The gateway (``server/``) knows nothing about signals or policies: it hands a parsed
:class:`~irtgate.signals.request.LLMRequest` to a :class:`Decider` and applies the returned
:class:`Outcome` (new body, headers, upstream). A decider raises
:class:`~irtgate.signals.errors.ClientError` to answer the client directly (400/403/...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeGuard, runtime_checkable

from irtgate.signals.base import Value, WorkBudget
from irtgate.signals.irt.router_api import Cost, RouterScores
from irtgate.signals.request import LLMRequest


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


@dataclass
class DecisionTrace:
    """Content-free numbers about one decision, for the gateway's metrics.

    A decider that supports it fills this in *as it goes*, so a request it refuses (PII
    blocked, no candidate) still reports the signals it computed and what it found. Only
    labels from fixed sets (signal types, PII types, plugin actions) and numbers go in.
    """

    # (signal type, seconds) per signal computed, in the order they ran. The first learned
    # signal (difficulty or domain) also pays for the request's one encoder pass.
    signal_seconds: list[tuple[str, float]] = field(default_factory=list)
    # (PII type, action) -> findings; action is the pii plugin's (redact, block, restrict),
    # or "none" when only the pii signal looked.
    pii: dict[tuple[str, str], int] = field(default_factory=dict)
    p_correct: float | None = None  # P(correct) of the choice, when the router ran
    cost: float | None = None  # expected USD of the choice, when known
    # Expected USD had the request gone to the dearest of the decision's candidates.
    baseline_cost: float | None = None
    # What the decision may spend (the gateway sets and cancels it; see WorkBudget), and
    # the signal types (and "pii_plugin") that saw a truncated view because of it.
    budget: WorkBudget = field(default_factory=WorkBudget)
    truncated: list[str] = field(default_factory=list)

    # For the decision log, filled only when ``log`` is set (the record is wanted): what
    # replaying the decision needs. Still numbers and labels only.
    log: bool = False
    policy: str = ""  # the policy snapshot's digest
    router: str = "none"  # the router's identity (router_identity)
    decision: str | None = None  # the matched decision's name
    why: str = ""  # why it matched (signal values against the policy's operands)
    choice: str | None = None  # catalog entry chosen
    choice_p: float | None = None  # the router's P for it (even when P did not decide)
    # Every signal that was computed, by the policy's name for it; None when it failed.
    signals: dict[str, Mapping[str, Value] | None] = field(default_factory=dict)
    scores: RouterScores | None = None  # the router's read-out (all configurations)
    entry_cost: dict[str, Cost] = field(default_factory=dict)  # every catalog entry's cost
    input_tokens: float | None = None  # what prices were applied to
    pii_scanned: bool = False  # whether a pii plugin scanned the body


# Optional capabilities of a decider. The gateway checks each once, when it is wired
# (``isinstance`` against a runtime-checkable Protocol costs ~0.1 ms), never per request.


@runtime_checkable
class TracingDecider(Protocol):
    """A :class:`Decider` that can also fill in a :class:`DecisionTrace`.

    ``accepts_trace`` is a class attribute set to True: the ``decide`` signature itself
    cannot be checked at run time, the attribute says the extra argument is understood.
    """

    accepts_trace: ClassVar[bool]

    async def decide(self, request: LLMRequest, trace: DecisionTrace | None = None) -> Outcome: ...


def traces(decider: Decider) -> TypeGuard[TracingDecider]:
    """Whether ``decider`` is a :class:`TracingDecider` (checked once, at wiring)."""
    return isinstance(decider, TracingDecider) and decider.accepts_trace is True


@runtime_checkable
class KnowsModels(Protocol):
    """A decider that names the models it handles itself (a policy's aliases and pinned
    models), beyond the gateway's aliases. Asked per request: a reload can change them."""

    def known_models(self) -> Iterable[str]: ...


@runtime_checkable
class Background(Protocol):
    """A decider with background work (a policy file watcher): it starts and stops with
    the gateway."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
