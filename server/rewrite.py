"""Apply a :class:`~irtgate.policies.outcome.Choice` to a request body: model and reasoning budget.

Deciders call :func:`apply_choice` to build ``Outcome.body``. Every field irtgate does
not understand is kept as received. A budget is a label: an effort word (``low``,
``high``...) or a token count (``"4096"``); each API gets it in its own field.
"""

from __future__ import annotations

from typing import Any, Final

from irtgate.policies.outcome import Choice
from irtgate.signals.request import ApiKind, LLMRequest

EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh")
# Anthropic takes a thinking token budget, not an effort word. These are round figures in
# the range Anthropic documents (minimum 1024), chosen so that each step roughly doubles.
ANTHROPIC_EFFORT_TOKENS: Final = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
}


def apply_choice(request: LLMRequest, choice: Choice) -> dict[str, Any]:
    """A new body with ``model`` and the budget fields set for ``choice``."""
    body = dict(request.body)
    body["model"] = choice.model
    budget = choice.budget
    if budget is None:
        return body
    if request.api is ApiKind.CHAT:
        if budget in EFFORTS:
            body["reasoning_effort"] = budget
    elif request.api is ApiKind.RESPONSES:
        if budget in EFFORTS:
            reasoning = body.get("reasoning")
            merged = dict(reasoning) if isinstance(reasoning, dict) else {}
            merged["effort"] = budget
            body["reasoning"] = merged
    else:
        tokens = int(budget) if budget.isdigit() else ANTHROPIC_EFFORT_TOKENS.get(budget)
        if budget == "none" or tokens == 0:
            body.pop("thinking", None)
        elif tokens is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": tokens}
    return body
