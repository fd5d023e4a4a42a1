"""Building a decision log record from a :class:`~irtgate.policies.outcome.DecisionTrace`.

The trace carries what the engine computed (signal values, the router's P for every
configuration, every catalog entry's cost); this module flattens it into a
:class:`~irtgate.server.decision_log.DecisionRecord`. Values that are not numbers or labels
(never expected, but a signal could grow one) are left out rather than failing the record.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Final

from irtgate.policies.outcome import DecisionTrace
from irtgate.server.decision_log import DecisionRecord, LabelValue
from irtgate.signals.base import Value

_LABEL: Final = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def label_or_other(value: str) -> str:
    return value if _LABEL.fullmatch(value) else "other"


def request_id(header: str | None) -> str:
    """Envoy's ``x-request-id`` when it is a plain token, else a fresh one."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def _flat(value: Value) -> LabelValue:
    if isinstance(value, str):
        return value if _LABEL.fullmatch(value) else None
    if isinstance(value, tuple):
        return tuple(v for v in value if isinstance(v, str) and _LABEL.fullmatch(v))
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def flat_signals(
    values: Mapping[str, Mapping[str, Value] | None], p: Mapping[str, float]
) -> tuple[dict[str, LabelValue], tuple[str, ...], tuple[str, ...]]:
    """Flat "signal.field" values, the signals that ran, and those whose ``p.<config>``
    fields are exactly ``p`` (left out here; the replay restores them from ``p``)."""
    out: dict[str, LabelValue] = {}
    folded: list[str] = []
    for name, fields in values.items():
        fields = fields or {}
        fold = bool(p) and all(fields.get(f"p.{c}") == v for c, v in p.items())
        if fold:
            folded.append(name)
        for f, v in fields.items():
            if fold and f.startswith("p.") and f[2:] in p:
                continue
            key = f"{name}.{f}"
            if _LABEL.fullmatch(key):
                out[key] = _flat(v)
    return out, tuple(values), tuple(folded)


def build_record(
    trace: DecisionTrace,
    *,
    request_id: str,
    started_wall: float,
    latency_s: float,
    api: str,
    model: str,
    outcome: str,
    policy: str,
    router: str,
) -> DecisionRecord:
    scores = trace.scores
    p = {} if scores is None else {c: float(v) for c, v in scores.p.items()}
    signals, computed, folded = flat_signals(trace.signals, p)
    pii: dict[str, int] = {}
    for (kind, _action), n in trace.pii.items():
        pii[kind] = pii.get(kind, 0) + n
    return DecisionRecord(
        request_id=request_id,
        time=round(started_wall, 3),
        api=api,
        decision=trace.decision or "none",
        outcome=outcome,
        latency_ms=round(latency_s * 1000.0, 3),
        policy=policy,
        router=router,
        choice=trace.choice,
        why=(trace.why[:256],) if trace.why else (),
        signals=signals,
        p=p,
        cost=dict(trace.entry_cost),
        model=label_or_other(model),
        computed=computed,
        pii=pii,
        pii_scanned=trace.pii_scanned,
        tokens=trace.input_tokens,
        p_choice=trace.choice_p,
        p_fields=folded,
    )
