"""The ``budget`` plugin: the chosen catalog entry's reasoning budget, written by the one
translator (:mod:`irtgate.plugins.reasoning`, which holds the table of provider families).

Always the last plugin of a chain (added by :func:`irtgate.plugins.base.build_chain`), so that no
earlier plugin can reintroduce a reasoning field the chosen model does not accept.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from irtgate.plugins.base import Plugin, PluginState, register
from irtgate.plugins.reasoning import translate
from irtgate.signals.base import Resources


class BudgetPlugin(Plugin):
    name: ClassVar[str] = "budget"

    def apply(self, state: PluginState, slot: int) -> None:
        entry = state.choice
        if entry is None:
            return
        written = translate(state.body, state.request.api, entry.family, entry.budget)
        if entry.budget is not None:
            label = f"{entry.family}:{entry.budget}"
            # A family with no budget field in this API (e.g. gemini on Messages): say so
            # in the explanation rather than pretend the budget was applied.
            state.notes["budget"] = label if written else f"{label} not sent ({state.request.api})"


class BudgetConfig(BaseModel):
    """The translator takes no settings: the catalog entry says everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@register("budget", BudgetConfig)
def _factory(config: Any, resources: Resources) -> Plugin:
    return BudgetPlugin()
