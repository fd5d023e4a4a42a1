"""The ``pii`` signal: whether the conversation carries PII, which types, how many spans."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

from irtgate.signals.base import Resources, SignalContext, Value, WorkBudget, register
from irtgate.signals.pii.scan import DEFAULT_MIN_CONFIDENCE, DEFAULT_PHONE_REGIONS, PIIScanner
from irtgate.signals.pii.types import PATTERN_TYPES, Finding, PIIType

# Where the findings of one request are left for the redaction plugin, keyed by message
# index, so it does not scan the same text again: ctx.scratch[SCRATCH_KEY][i] -> findings.
SCRATCH_KEY = "pii.findings"
_PARAMS = frozenset({"types", "min_confidence", "phone_regions", "scope", "max_chars"})
# Characters scanned per request, newest turn first. Scans are linear, but a hostile body
# (digit runs the phone matcher must judge) costs ~20 us a character; past this the
# signal reports ``truncated`` and a policy can act on that.
DEFAULT_MAX_CHARS = 1024 * 1024
_SCOPES = ("all", "last_user")


class PIISignal:
    name: ClassVar[str] = "pii"
    # truncated: part of the text was not scanned (over max_chars or the work budget).
    fields: ClassVar[Mapping[str, type]] = {
        "found": bool,
        "types": tuple,
        "count": int,
        "truncated": bool,
    }
    # For policy validation: the labels `types` can hold.
    labels: ClassVar[Mapping[str, tuple[str, ...]]] = {"types": tuple(t.value for t in PIIType)}

    # Findings of long turns are remembered by digest (positions only, never text): agents
    # resend the same history on every turn, and a 2 MB history takes ~0.5 s to scan.
    MEMO_MIN_CHARS = 4096
    MEMO_SIZE = 1024
    # Findings held by the memo in all: a hostile turn can hold ~10,000 (128 KiB of SSNs),
    # and 1,024 such entries held ~1 GB. Turns with more findings than this are not kept.
    MEMO_FINDINGS = 16_384
    MEMO_ENTRY_FINDINGS = 256

    def __init__(self, scanner: PIIScanner, scope: str, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.scanner = scanner
        self.scope = scope
        self.max_chars = max_chars
        self._memo: OrderedDict[bytes, list[Finding]] = OrderedDict()
        self._memo_findings = 0
        self._memo_lock = threading.Lock()

    def _scan(self, text: str, budget: WorkBudget) -> tuple[list[Finding], bool]:
        if len(text) < self.MEMO_MIN_CHARS:
            return self.scanner.scan_within(text, budget)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._memo_lock:
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                return list(hit), True  # callers may keep or extend their list
        found, complete = self.scanner.scan_within(text, budget)
        if complete and len(found) <= self.MEMO_ENTRY_FINDINGS:
            self._remember(key, found)
        return found, complete

    def _remember(self, key: bytes, found: list[Finding]) -> None:
        with self._memo_lock:
            if key in self._memo:
                return
            self._memo[key] = found
            self._memo_findings += len(found)
            while len(self._memo) > self.MEMO_SIZE or self._memo_findings > self.MEMO_FINDINGS:
                _, dropped = self._memo.popitem(last=False)
                self._memo_findings -= len(dropped)

    def memo_size(self) -> tuple[int, int]:
        """(turns, findings) the memo holds; both are bounded."""
        with self._memo_lock:
            return len(self._memo), self._memo_findings

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        msgs = ctx.request.messages
        if self.scope == "last_user":
            idx = [i for i, m in enumerate(msgs) if m.role == "user"][-1:]
        else:
            # Every turn, tool results included: a tool can return a customer record.
            idx = list(range(len(msgs)))
        per_msg: dict[int, list[Finding]] = {}
        left = self.max_chars
        truncated = False
        # Newest turn first: what is being asked now matters most when not all is read.
        for i in reversed(idx):
            text = msgs[i].text.reveal()
            if left <= 0 or ctx.budget.spent():
                truncated = truncated or bool(text)
                continue
            if len(text) > left:
                text, truncated = text[:left], True
            left -= len(text)
            found, complete = self._scan(text, ctx.budget)
            truncated = truncated or not complete
            if found:
                per_msg[i] = found
        ctx.scratch[SCRATCH_KEY] = dict(sorted(per_msg.items()))
        all_found = [f for _, fs in sorted(per_msg.items()) for f in fs]
        types = tuple(sorted({f.type.value for f in all_found}))
        return {
            "found": bool(all_found),
            "types": types,
            "count": len(all_found),
            "truncated": truncated,
        }


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
    max_chars = params.get("max_chars", DEFAULT_MAX_CHARS)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1000:
        raise ValueError(f"max_chars: expected an integer >= 1000, got {max_chars!r}")
    regions = params.get("phone_regions", list(DEFAULT_PHONE_REGIONS))
    try:
        scanner = PIIScanner(types, min_confidence=float(conf), phone_regions=regions)
    except RuntimeError as e:  # 'person' asked for without the NER extra installed
        raise ValueError(f"types: {e}") from e
    return PIISignal(scanner, scope, max_chars)
