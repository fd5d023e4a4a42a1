"""Apply a :class:`~irtgate.policies.outcome.Choice` to a request body: model and reasoning budget.

The static decider calls :func:`apply_choice` to build ``Outcome.body``. Every field irtgate
does not understand is kept as received. The budget is written by the same translator as the
policy engine's (:mod:`irtgate.plugins.reasoning`), for the provider family the static route
names (``native`` by default: OpenAI's fields on Chat and Responses, Anthropic's on Messages).
"""

from __future__ import annotations

from typing import Any

from irtgate.plugins.reasoning import translate
from irtgate.policies.outcome import Choice
from irtgate.signals.request import LLMRequest


def apply_choice(request: LLMRequest, choice: Choice, family: str = "native") -> dict[str, Any]:
    """A new body with ``model`` and the budget fields of ``family`` set for ``choice``."""
    body = dict(request.body)
    body["model"] = choice.model
    translate(body, request.api, family, choice.budget)
    return body
