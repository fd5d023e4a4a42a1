"""The placeholder decider: every routed request gets the configured default choice.

It stands in for the policy engine so that the gateway path is complete and testable; it
implements the same :class:`~irtgate.policies.outcome.Decider` protocol.
"""

from __future__ import annotations

from irtgate.policies.outcome import Choice, Outcome
from irtgate.server.rewrite import apply_choice
from irtgate.server.settings import Settings
from irtgate.signals.request import LLMRequest


class StaticDecider:
    def __init__(self, choice: Choice, decision: str = "default") -> None:
        self.choice = choice
        self.decision = decision

    @classmethod
    def from_settings(cls, settings: Settings) -> StaticDecider:
        d = settings.default_choice
        config = f"{d.model}@{d.budget}" if d.budget else d.model
        return cls(Choice(config=config, model=d.model, upstream=d.upstream, budget=d.budget))

    def upstreams(self) -> tuple[str, ...]:
        return (self.choice.upstream,)

    async def decide(self, request: LLMRequest) -> Outcome:
        body = apply_choice(request, self.choice)
        return Outcome(
            choice=self.choice,
            decision=self.decision,
            reason="static default",
            body=body,
            body_changed=body != request.body,
        )
