"""The policy file's schema: frozen pydantic models, strict and closed (``extra="forbid"``).

These models are the single source of truth for three things: parsing a YAML policy, the
type-level part of validation (unknown keys, wrong types, missing fields), and the JSON
Schema in ``policies/schema.json`` that editors use for completion. Cross-references
(unknown signals, models, upstreams, thresholds that cannot fail) are checked afterwards in
:mod:`policies.validate`, which knows the signal registry and the router.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
)
from pydantic import field_validator as _field_validator
from pydantic import model_validator as _model_validator

from irtgate.plugins.headers import HeadersConfig
from irtgate.plugins.pii import PiiConfig
from irtgate.plugins.reasoning import FAMILIES, check_budget
from irtgate.plugins.reasoning import family as reasoning_family
from irtgate.plugins.system_prompt import SystemPromptConfig

# Strict: YAML "5" is a string and stays one; a number where a name belongs is an error.
_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

Name = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/+\-]+$")]
CandidateRef = Annotated[
    StrictStr, Field(min_length=1, max_length=128, pattern=r"^(\*|[A-Za-z0-9_.:@/+\-]+)$")
]
UpstreamName = Annotated[
    StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
]
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr


class _Model(BaseModel):
    model_config = _CONFIG


class Price(_Model):
    """List price in USD per million tokens; cost = input tokens and expected output tokens."""

    input_per_mtok: Annotated[StrictFloat | StrictInt, Field(ge=0)]
    output_per_mtok: Annotated[StrictFloat | StrictInt, Field(ge=0)]
    expected_output_tokens: Annotated[StrictInt, Field(gt=0)] = 256


class CatalogEntry(_Model):
    """One configuration the router can pick: a model on an upstream with a reasoning budget."""

    name: Name = Field(description="Unique configuration name, e.g. 'gpt-4@high'.")
    model: Name = Field(description="Model name written into the upstream request body.")
    upstream: UpstreamName = Field(description="Upstream (Envoy cluster) the request is sent to.")
    # The families and their budgets are the translator's table (plugins/reasoning.py): the
    # schema offers and accepts exactly what the translator writes.
    family: StrictStr = Field(
        default="none",
        description=(
            "The provider family whose fields carry the reasoning budget (docs/policies.md, "
            "'Reasoning budgets'); none: no reasoning, every reasoning field is removed."
        ),
        json_schema_extra={"enum": list(FAMILIES)},
    )
    budget: StrictStr | StrictInt | None = Field(
        default=None,
        description="; ".join(f"{f.name}: {f.accepts}" for f in FAMILIES.values()) + ".",
    )
    router_config: StrictStr | None = Field(
        default=None, description="The router configuration whose P(correct) this entry uses."
    )
    cost: Annotated[StrictFloat | StrictInt, Field(ge=0)] | None = Field(
        default=None, description="Expected USD per request; overrides price and the router's cost."
    )
    price: Price | None = None
    local: StrictBool = Field(default=False, description="Runs on premises (for pii: restrict).")

    @_field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        reasoning_family(value)
        return value

    @_field_validator("budget")
    @classmethod
    def _budget_fits_family(cls, value: str | int | None, info: ValidationInfo) -> str | int | None:
        # A field validator, so that the error points at the budget's own line; the family
        # (declared above it) is missing from info.data when it was itself invalid.
        fam = info.data.get("family")
        if isinstance(fam, str):
            check_budget(fam, value)
        return value


class SignalSpec(_Model):
    """A signal instance. The key is its name; ``type`` defaults to the key."""

    type: Name | None = Field(
        default=None, description="Registered signal type; defaults to the key."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Signal parameters.")


_OPS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in_",
    "not_in",
    "contains",
    "contains_any",
    "present",
)


class Condition(_Model):
    """A node of a ``when`` tree: ``all``/``any``/``not``, or a test on one signal field."""

    all: list[Condition] | None = Field(default=None, min_length=1)
    any: list[Condition] | None = Field(default=None, min_length=1)
    not_: Condition | None = Field(default=None, alias="not")
    signal: StrictStr | None = Field(
        default=None, description="signal.field, e.g. domain.label or difficulty.difficulty"
    )
    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: StrictFloat | StrictInt | None = None
    gte: StrictFloat | StrictInt | None = None
    lt: StrictFloat | StrictInt | None = None
    lte: StrictFloat | StrictInt | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    contains: StrictStr | None = Field(default=None, description="A label set contains this label.")
    contains_any: list[StrictStr] | None = Field(default=None, min_length=1)
    present: StrictBool | None = Field(
        default=None, description="The field was produced (and, for text/label sets, is non-empty)."
    )

    @_model_validator(mode="after")
    def _one_form(self) -> Condition:
        groups = [k for k in ("all", "any", "not_") if getattr(self, k) is not None]
        ops = [k for k in _OPS if getattr(self, k) is not None]
        if self.signal is None:
            if len(groups) != 1 or ops:
                raise ValueError(
                    "a condition is exactly one of: all, any, not, or signal with one operator"
                )
        else:
            if groups:
                raise ValueError("a signal test cannot also hold all/any/not")
            if len(ops) != 1:
                names = ", ".join(o.rstrip("_") for o in _OPS)
                raise ValueError(f"a signal test needs exactly one operator ({names})")
        return self

    def operator(self) -> tuple[str, Any]:
        for k in _OPS:
            v = getattr(self, k)
            if v is not None:
                return k.rstrip("_"), v
        raise ValueError("not a signal test")


class Objective(_Model):
    """How to trade P(correct) against cost among the allowed candidates."""

    method: Literal["linear", "chebyshev", "target"] = Field(
        default="linear",
        description="linear: max w*P - (1-w)*cost; chebyshev: RADAR's rule; "
        "target: cheapest with P >= target (else the highest P).",
    )
    w: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] | None = Field(
        default=None, description="Weight on P(correct): 1 = quality only, 0 = cheapest."
    )
    target: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)] | None = None
    max_cost: Annotated[StrictFloat | StrictInt, Field(gt=0)] | None = Field(
        default=None, description="Cap in USD per request; dearer candidates are not considered."
    )

    @_model_validator(mode="after")
    def _consistent(self) -> Objective:
        if self.method == "target":
            if self.target is None:
                raise ValueError("method 'target' needs 'target' (a P(correct) in (0, 1])")
            if self.w is not None:
                raise ValueError("method 'target' takes no 'w'")
        else:
            if self.w is None:
                raise ValueError(f"method {self.method!r} needs 'w' in [0, 1]")
            if self.target is not None:
                raise ValueError(f"'target' only goes with method 'target', not {self.method!r}")
        return self


class PluginSpec(_Model):
    """One plugin of a decision's chain: exactly one key naming the plugin."""

    pii: PiiConfig | None = None
    system_prompt: SystemPromptConfig | None = None
    headers: HeadersConfig | None = None

    @_model_validator(mode="after")
    def _exactly_one(self) -> PluginSpec:
        if len(self.chosen()) != 1:
            raise ValueError("each plugin entry names exactly one plugin")
        return self

    def chosen(self) -> list[tuple[str, BaseModel]]:
        return [(k, v) for k in ("pii", "system_prompt", "headers") if (v := getattr(self, k))]


class DefaultDecision(_Model):
    """What happens when no decision matches."""

    name: Name = "default"
    candidates: list[CandidateRef] = Field(
        min_length=1, description="Catalog names, or ['*'] for all."
    )
    objective: Objective
    plugins: list[PluginSpec] = Field(default_factory=list)


class Decision(DefaultDecision):
    name: Name
    priority: StrictInt = Field(default=0, description="Higher first; ties go to the earlier one.")
    when: Condition


class Policy(_Model):
    """An irtgate routing policy."""

    version: Literal[1] = 1
    aliases: list[Name] = Field(
        default_factory=lambda: ["auto"],
        description="Model names that trigger routing; other known models are pinned.",
    )
    upstreams: list[UpstreamName] = Field(min_length=1)
    catalog: list[CatalogEntry] = Field(min_length=1)
    signals: dict[Name, SignalSpec] = Field(default_factory=dict)
    decisions: list[Decision] = Field(default_factory=list)
    default: DefaultDecision


Condition.model_rebuild()
