"""The ``pii`` plugin: turn PII findings into an action.

- ``redact``: every finding is replaced by a mask such as ``[EMAIL]`` in the body that
  leaves for the upstream, in every text slot of the API shape (messages, system prompt,
  tool calls and results).
- ``block``: the request is refused with 403 ``policy_blocked``.
- ``restrict``: only catalog entries marked ``local: true`` stay candidates; if none is
  left (say the request names a concrete cloud model), 403 ``policy_blocked``.

The plugin scans the JSON body itself (not the flattened request) so that redaction spans
are exact for each string. What it reports (to notes, logs, headers) is type labels and
counts only: the matched characters never leave this module.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from irtgate.plugins.base import Plugin, PluginState, register
from irtgate.plugins.bodies import rewrite_texts, text_slots
from irtgate.signals.base import Resources, WorkBudget
from irtgate.signals.errors import POLICY_BLOCKED

log = logging.getLogger(__name__)

PiiTypeName = Literal[
    "email", "phone", "payment_card", "iban", "us_ssn", "ip_address", "secret", "person"
]


class PiiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    action: Literal["redact", "block", "restrict"]
    types: list[PiiTypeName] | None = Field(
        default=None, min_length=1, description="PII types that trigger the action (default: all)."
    )
    min_confidence: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] = 0.5
    mask: StrictStr = Field(
        default="[{type}]",
        description="Replacement for redacted spans; {type} is the upper-case type.",
    )


class FindingLike(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def confidence(self) -> float: ...


Detector = Callable[[str], Sequence[FindingLike]]


DetectorWithin = Callable[[str, WorkBudget], tuple[Sequence[FindingLike], bool]]


def _detect_all(text: str) -> Sequence[FindingLike]:
    from irtgate.signals.pii import detect_all

    return detect_all(text)


_DEFAULT: Detector = _detect_all


def default_detector() -> Detector:
    """The PII signal's detector (irtgate.signals.pii); imported lazily, it loads validators."""
    from irtgate.signals.pii.scan import import_validators

    import_validators()
    return _DEFAULT


class PiiPlugin(Plugin):
    name: ClassVar[str] = "pii"

    def __init__(self, config: PiiConfig, detector: Detector) -> None:
        self.config = config
        self.types = frozenset(config.types) if config.types else None
        self.detector = detector
        # The shipped detector can stop at the request's work budget; others scan in full.
        self._within: DetectorWithin | None = None
        if detector is _DEFAULT:
            from irtgate.signals.pii import detect_all_within

            self._within = detect_all_within

    def _findings(self, text: str, state: PluginState) -> list[FindingLike]:
        if self._within is not None and state.budget is not None:
            found, complete = self._within(text, state.budget)
            if not complete:  # the request's work budget ran out: flagged, not hidden
                state.notes["pii.truncated"] = True
        else:
            found = self.detector(text)
        out = [
            f
            for f in found
            if f.confidence >= self.config.min_confidence
            and (self.types is None or str(f.type) in self.types)
        ]
        return sorted(out, key=lambda f: (f.start, -f.end))

    def before_select(self, state: PluginState, slot: int) -> None:
        counts: dict[str, int] = {}
        for container, key in text_slots(state.request.api, state.body):
            for f in self._findings(container[key], state):
                counts[str(f.type)] = counts.get(str(f.type), 0) + 1
        state.scratch[slot] = counts
        if state.notes.get("pii.truncated") is True and self.config.action == "restrict":
            # Part of the body was not scanned (the work budget ran out): what was not
            # read may hold PII, so restrict as if it did. The safe side, and cheap.
            counts.setdefault("unscanned", 0)
        if not counts:
            return
        for t, n in counts.items():
            key = (t, self.config.action)
            state.pii_findings[key] = state.pii_findings.get(key, 0) + n
        types = ",".join(sorted(counts))
        state.notes["pii.types"] = types
        state.notes["pii.count"] = sum(counts.values())
        state.notes["pii.action"] = self.config.action
        if self.config.action == "block":
            log.info("request blocked by pii plugin (types: %s)", types)
            raise POLICY_BLOCKED.with_message(f"request blocked by policy: contains {types}")
        if self.config.action == "restrict":
            state.candidates = [c for c in state.candidates if c.local]
            if not state.candidates:
                # A refusal by policy, not an outage: 403, so clients do not retry it.
                raise POLICY_BLOCKED.with_message(
                    f"request blocked by policy: contains {types} and no local "
                    "configuration is allowed for the requested model"
                )

    def apply(self, state: PluginState, slot: int) -> None:
        if self.config.action != "redact" or not state.scratch.get(slot):
            return
        # The body is a shallow copy of the request's: copy the nested parts before
        # editing them in place (the request itself is never modified).
        state.body = copy.deepcopy(state.body)
        n = rewrite_texts(state.request.api, state.body, lambda t: self._redact(t, state))
        state.notes["pii.redacted_fields"] = n

    def _redact(self, text: str, state: PluginState) -> str:
        out: list[str] = []
        pos = 0
        for f in self._findings(text, state):
            if f.start < pos:  # overlapping finding: already masked by an earlier one
                continue
            out.append(text[pos : f.start])
            out.append(self.config.mask.replace("{type}", str(f.type).upper()))
            pos = f.end
        out.append(text[pos:])
        return "".join(out)


@register("pii", PiiConfig)
def _factory(config: Any, resources: Resources) -> Plugin:
    detector = resources.extras.get("pii_detector") or default_detector()
    return PiiPlugin(config, detector)
