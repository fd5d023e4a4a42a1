"""The placeholder decider: every routed request gets the configured default choice.

It stands in for the policy engine so that the gateway path is complete and testable; it
implements the same :class:`~irtgate.policies.outcome.Decider` protocol.
"""

from __future__ import annotations

from irtgate.plugins.reasoning import check_budget
from irtgate.policies.outcome import Choice, Outcome
from irtgate.server.rewrite import apply_choice
from irtgate.server.settings import Settings
from irtgate.signals.request import LLMRequest


class StaticDecider:
    def __init__(self, choice: Choice, decision: str = "default", family: str = "native") -> None:
        check_budget(family, choice.budget)  # a bad route fails at start, not per request
        self.choice = choice
        self.decision = decision
        self.family = family

    @classmethod
    def from_settings(cls, settings: Settings) -> StaticDecider:
        d = settings.default_choice
        config = f"{d.model}@{d.budget}" if d.budget else d.model
        choice = Choice(config=config, model=d.model, upstream=d.upstream, budget=d.budget)
        return cls(choice, family=d.family)

    def upstreams(self) -> tuple[str, ...]:
        return (self.choice.upstream,)

    async def decide(self, request: LLMRequest) -> Outcome:
        body = apply_choice(request, self.choice, self.family)
        return Outcome(
            choice=self.choice,
            decision=self.decision,
            reason="static default",
            body=body,
            body_changed=body != request.body,
        )
