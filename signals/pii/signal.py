"""The ``pii`` signal: whether the conversation carries PII, which types, how many spans."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

from irtgate.signals.base import Resources, SignalContext, Value, register
from irtgate.signals.pii.scan import DEFAULT_MIN_CONFIDENCE, DEFAULT_PHONE_REGIONS, PIIScanner
from irtgate.signals.pii.types import PATTERN_TYPES, Finding, PIIType

# Where the findings of one request are left for the redaction plugin, keyed by message
# index, so it does not scan the same text again: ctx.scratch[SCRATCH_KEY][i] -> findings.
SCRATCH_KEY = "pii.findings"
_PARAMS = frozenset({"types", "min_confidence", "phone_regions", "scope"})
_SCOPES = ("all", "last_user")


class PIISignal:
    name: ClassVar[str] = "pii"
    fields: ClassVar[Mapping[str, type]] = {"found": bool, "types": tuple, "count": int}
    # For policy validation: the labels `types` can hold.
    labels: ClassVar[Mapping[str, tuple[str, ...]]] = {"types": tuple(t.value for t in PIIType)}

    # Findings of long turns are remembered by digest (positions only, never text): agents
    # resend the same history on every turn, and a 2 MB history takes ~0.5 s to scan.
    MEMO_MIN_CHARS = 4096
    MEMO_SIZE = 1024

    def __init__(self, scanner: PIIScanner, scope: str) -> None:
        self.scanner = scanner
        self.scope = scope
        self._memo: OrderedDict[bytes, list[Finding]] = OrderedDict()
        self._memo_lock = threading.Lock()

    def _scan(self, text: str) -> list[Finding]:
        if len(text) < self.MEMO_MIN_CHARS:
            return self.scanner.scan(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._memo_lock:
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                return list(hit)  # callers may keep or extend their list
        found = self.scanner.scan(text)
        with self._memo_lock:
            self._memo[key] = found
            if len(self._memo) > self.MEMO_SIZE:
                self._memo.popitem(last=False)
        return found

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        msgs = ctx.request.messages
        if self.scope == "last_user":
            idx = [i for i, m in enumerate(msgs) if m.role == "user"][-1:]
        else:
            # Every turn, tool results included: a tool can return a customer record.
            idx = list(range(len(msgs)))
        per_msg: dict[int, list[Finding]] = {}
        for i in idx:
            found = self._scan(msgs[i].text.reveal())
            if found:
                per_msg[i] = found
        ctx.scratch[SCRATCH_KEY] = per_msg
        all_found = [f for fs in per_msg.values() for f in fs]
        types = tuple(sorted({f.type.value for f in all_found}))
        return {"found": bool(all_found), "types": types, "count": len(all_found)}


@register("pii", PIISignal)
def make_pii(params: Mapping[str, Any], resources: Resources) -> PIISignal:
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise ValueError(f"pii: unknown parameter(s) {unknown}; known: {sorted(_PARAMS)}")
    types = params.get("types", [t.value for t in PATTERN_TYPES])
    if isinstance(types, str) or not isinstance(types, list | tuple):
        raise ValueError("types: expected a list of PII type names")
    conf = params.get("min_confidence", DEFAULT_MIN_CONFIDENCE)
    if isinstance(conf, bool) or not isinstance(conf, int | float):
        raise ValueError(f"min_confidence: expected a number in [0, 1], got {conf!r}")
    scope = params.get("scope", "all")
    if scope not in _SCOPES:
        raise ValueError(f"scope: expected one of {list(_SCOPES)}, got {scope!r}")
    regions = params.get("phone_regions", list(DEFAULT_PHONE_REGIONS))
    try:
        scanner = PIIScanner(types, min_confidence=float(conf), phone_regions=regions)
    except RuntimeError as e:  # 'person' asked for without the NER extra installed
        raise ValueError(f"types: {e}") from e
    return PIISignal(scanner, scope)
