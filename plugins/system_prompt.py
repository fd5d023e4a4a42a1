"""The ``system_prompt`` plugin: insert a system prompt before the client's, or replace it.

Chat Completions get a leading ``system`` message, Responses get ``instructions``,
Anthropic Messages get ``system``; see :func:`irtgate.plugins.bodies.set_system_prompt`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from irtgate.plugins.base import Plugin, PluginState, register
from irtgate.plugins.bodies import set_system_prompt
from irtgate.signals.base import Resources


class SystemPromptConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    text: StrictStr = Field(min_length=1, max_length=100_000)
    mode: Literal["insert", "replace"] = "insert"


class SystemPromptPlugin(Plugin):
    name: ClassVar[str] = "system_prompt"

    def __init__(self, config: SystemPromptConfig) -> None:
        self.config = config

    def apply(self, state: PluginState, slot: int) -> None:
        set_system_prompt(state.request.api, state.body, self.config.text, self.config.mode)
        state.notes["system_prompt"] = self.config.mode


@register("system_prompt", SystemPromptConfig)
def _factory(config: Any, resources: Resources) -> Plugin:
    return SystemPromptPlugin(config)
