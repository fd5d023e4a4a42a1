"""Which catalog entries use a P(correct) that was measured for something else.

A budget configuration such as ``gpt-4@high`` may name the base model's router configuration
(``router_config: gpt-4``) until it is calibrated on its own (``irtgate calibrate --budget``).
Routing then treats the high budget as exactly as good as the base, so the operator should
be told: ``policy check``, ``explain`` and ``router show --policy`` say so.

An entry borrows when the router's configuration records the budget it was measured at
(live calibration writes ``budget`` on the card) and the entry's budget differs; or when the
card records none and the entry has a budget while another entry on the same configuration
has none (that one is the configuration's own).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from irtgate.policies.spec import CatalogEntry


def _card_configs(router: Any) -> dict[str, Mapping[str, Any]]:
    card = getattr(router, "card", None)
    cfgs = card.get("configurations") if isinstance(card, Mapping) else None
    if not isinstance(cfgs, list):
        return {}
    return {str(c["name"]): c for c in cfgs if isinstance(c, Mapping) and "name" in c}


def borrowed_p(entries: Iterable[CatalogEntry], router: Any) -> dict[str, str]:
    """Entry name -> why its P is another configuration's, for every entry that borrows."""
    entries = list(entries)
    card = _card_configs(router)
    out: dict[str, str] = {}
    for e in entries:
        rc = e.router_config
        if rc is None or rc not in card:
            continue
        measured = card[rc]
        if "budget" in measured or "calibration" in measured:
            got = measured.get("budget")
            if e.budget is not None and str(got) != str(e.budget):
                at = f"at budget {got}" if got is not None else "without a reasoning budget"
                out[e.name] = f"P of router configuration {rc!r}, measured {at}"
            continue
        if e.budget is None:
            continue
        owners = [o.name for o in entries if o.router_config == rc and o.budget is None]
        if owners:
            out[e.name] = (
                f"P of router configuration {rc!r} (as for {owners[0]!r}, without a budget)"
            )
    return out


def borrow_hint(name: str, why: str) -> str:
    return (
        f"catalog entry {name!r} borrows its P: {why}; measure it with "
        "'irtgate calibrate --budget ...' and point router_config at the result"
    )
