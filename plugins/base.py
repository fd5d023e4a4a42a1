"""The plugin interface: small typed steps that run per decision, built once per snapshot.

A chain runs in two phases around candidate selection:

1. ``before_select``: may narrow the candidates (``pii: restrict``) or refuse the request
   by raising :class:`~irtgate.signals.errors.ClientError` (``pii: block``).
2. ``apply``: after the choice, edits the working copy of the JSON body and the upstream
   request headers (redaction, system prompt, headers, and last the budget translator).

Plugins never mutate the request. ``PluginState.body`` starts as a *shallow* copy of the
request body: a plugin may replace top-level keys freely, but one that edits nested
structures in place must ``copy.deepcopy`` the body first (as ``pii: redact`` does), so
that large bodies are only copied when needed. What plugins add to ``notes`` ends up in
the decision's explanation, so it must be content-free (counts, type labels, actions),
never prompt text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from irtgate.signals.base import Resources, Value, WorkBudget
from irtgate.signals.request import LLMRequest


class Entry(Protocol):
    """What a plugin may read of a catalog entry (``irtgate.policies.spec.CatalogEntry``)."""

    @property
    def name(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def budget(self) -> str | int | None: ...
    @property
    def local(self) -> bool: ...


@dataclass
class PluginState:
    """One request's working state, owned by one chain run (never shared)."""

    request: LLMRequest
    body: dict[str, Any]
    candidates: list[Entry]
    choice: Entry | None = None
    set_headers: dict[str, str] = field(default_factory=dict)
    remove_headers: list[str] = field(default_factory=list)
    notes: dict[str, Value] = field(default_factory=dict)
    # (PII type, action) -> findings acted on, for the gateway's metrics (labels only).
    pii_findings: dict[tuple[str, str], int] = field(default_factory=dict)
    # Per-plugin private data for the span of one request (e.g. PII findings between the
    # two phases); keyed by the plugin's position so two instances never collide.
    scratch: dict[int, Any] = field(default_factory=dict)
    # The request's work budget: plugins that scan text stop when it is spent.
    budget: WorkBudget | None = None


class Plugin:
    """Base class: both phases do nothing unless overridden."""

    name: ClassVar[str] = ""

    def before_select(self, state: PluginState, slot: int) -> None:
        return None

    def apply(self, state: PluginState, slot: int) -> None:
        return None


PluginFactory = Callable[[Any, Resources], Plugin]


@dataclass(frozen=True)
class PluginKind:
    name: str
    config: type[BaseModel]
    factory: PluginFactory


_REGISTRY: dict[str, PluginKind] = {}


def register(name: str, config: type[BaseModel]) -> Callable[[PluginFactory], PluginFactory]:
    """Register a plugin factory ``(config, resources) -> Plugin`` under ``name``."""

    def deco(factory: PluginFactory) -> PluginFactory:
        if name in _REGISTRY:
            raise ValueError(f"plugin {name!r} registered twice")
        _REGISTRY[name] = PluginKind(name, config, factory)
        return factory

    return deco


def registered() -> Mapping[str, PluginKind]:
    import importlib

    for mod in ("pii", "system_prompt", "headers", "budget"):
        importlib.import_module(f"irtgate.plugins.{mod}")
    return dict(_REGISTRY)


@dataclass(frozen=True)
class Chain:
    """A decision's plugins in order, with the budget translator always last."""

    plugins: tuple[Plugin, ...]

    def before_select(self, state: PluginState) -> None:
        for i, p in enumerate(self.plugins):
            p.before_select(state, i)

    def apply(self, state: PluginState) -> None:
        for i, p in enumerate(self.plugins):
            p.apply(state, i)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.plugins)


def build_chain(specs: list[tuple[str, BaseModel]], resources: Resources) -> Chain:
    """Build the plugins of one decision once; ``budget`` is appended, never listed."""
    kinds = registered()
    plugins = [kinds[name].factory(cfg, resources) for name, cfg in specs]
    plugins.append(kinds["budget"].factory(None, resources))
    return Chain(tuple(plugins))
