"""The budget translator: writes the chosen configuration's reasoning budget in the
fields its provider family understands, and strips every other family's fields.

Always the last plugin of a chain (added by :func:`irtgate.plugins.base.build_chain`), so that no
earlier plugin can reintroduce a reasoning field the chosen model does not accept.

=============  ==================================================================
family         fields written (removed: every reasoning field of other families)
=============  ==================================================================
``none``       none; all reasoning fields are removed (models without reasoning)
``openai``     Chat: ``reasoning_effort``; Responses: ``reasoning.effort``
``anthropic``  ``thinking: {type: enabled, budget_tokens: N}``; a ``max_tokens`` not above
               ``N`` (Anthropic requires it to be) becomes ``N`` + the client's cap
               (+ 1024 when the client set none)
``qwen``       ``chat_template_kwargs.enable_thinking``; with a token budget also vLLM's
               ``thinking_token_budget`` (the budget is a hint to templates without it)
``max_tokens`` no reasoning; the output cap (Chat ``max_tokens`` or
               ``max_completion_tokens``, Responses ``max_output_tokens``, Anthropic
               ``max_tokens``) is lowered to the budget
=============  ==================================================================

A configuration with a reasoning family but no budget keeps the client's own fields of
that family.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from irtgate.plugins.base import Entry, Plugin, PluginState, register
from irtgate.signals.base import Resources
from irtgate.signals.request import ApiKind

# Room for the visible answer above an Anthropic thinking budget.
ANTHROPIC_ANSWER_TOKENS = 1024
_CTK = "chat_template_kwargs"
_QWEN_KWARGS = ("enable_thinking", "thinking_budget")


def _strip_openai(body: dict[str, Any], api: ApiKind) -> None:
    body.pop("reasoning_effort", None)
    if api is ApiKind.RESPONSES:
        body.pop("reasoning", None)


def _strip_qwen(body: dict[str, Any]) -> None:
    body.pop("thinking_token_budget", None)
    kw = body.get(_CTK)
    if isinstance(kw, dict):
        rest = {k: v for k, v in kw.items() if k not in _QWEN_KWARGS}
        if rest:
            body[_CTK] = rest
        else:
            body.pop(_CTK)


def _output_cap_field(body: dict[str, Any], api: ApiKind) -> str:
    if api is ApiKind.RESPONSES:
        return "max_output_tokens"
    if api is ApiKind.CHAT and "max_completion_tokens" in body:
        return "max_completion_tokens"
    return "max_tokens"


def translate(body: dict[str, Any], api: ApiKind, entry: Entry) -> None:
    """Edit ``body`` in place for ``entry``'s family and budget."""
    fam, budget = entry.family, entry.budget
    if fam != "openai":
        _strip_openai(body, api)
    if fam != "anthropic":
        body.pop("thinking", None)
    if fam != "qwen":
        _strip_qwen(body)
    if budget is None:
        return
    if fam == "openai":
        if api is ApiKind.RESPONSES:
            old = body.get("reasoning")
            body["reasoning"] = {**(old if isinstance(old, dict) else {}), "effort": budget}
        else:
            body["reasoning_effort"] = budget
    elif fam == "anthropic":
        n = int(budget)
        body["thinking"] = {"type": "enabled", "budget_tokens": n}
        cap = body.get("max_tokens")
        if not isinstance(cap, int) or cap <= n:
            body["max_tokens"] = n + (
                cap if isinstance(cap, int) and cap > 0 else ANTHROPIC_ANSWER_TOKENS
            )
    elif fam == "qwen":
        _strip_qwen(body)  # the configured budget replaces the client's, not merges with it
        kw = body.get(_CTK)
        kw = dict(kw) if isinstance(kw, dict) else {}
        kw["enable_thinking"] = budget != "off"
        body[_CTK] = kw
        if isinstance(budget, int):
            body["thinking_token_budget"] = budget
    elif fam == "max_tokens":
        field = _output_cap_field(body, api)
        cap = body.get(field)
        n = int(budget)
        body[field] = min(cap, n) if isinstance(cap, int) and cap > 0 else n


class BudgetPlugin(Plugin):
    name: ClassVar[str] = "budget"

    def apply(self, state: PluginState, slot: int) -> None:
        if state.choice is None:
            return
        translate(state.body, state.request.api, state.choice)
        if state.choice.budget is not None:
            state.notes["budget"] = f"{state.choice.family}:{state.choice.budget}"


class BudgetConfig(BaseModel):
    """The translator takes no settings: the catalog entry says everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@register("budget", BudgetConfig)
def _factory(config: Any, resources: Resources) -> Plugin:
    return BudgetPlugin()
