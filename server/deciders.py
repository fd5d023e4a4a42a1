"""The one place that turns settings into a :class:`~policies.outcome.Decider`.

The gateway only ever calls :func:`load_decider`; which decider it gets (the static
default, or the policy runtime) is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from policies.outcome import Decider
from server.settings import Settings


@runtime_checkable
class HasUpstreams(Protocol):
    """Deciders that can say which upstreams they may route to (checked at start-up)."""

    def upstreams(self) -> Iterable[str]: ...


def load_decider(settings: Settings) -> Decider:
    if settings.policy_path is None:
        from server.static_decider import StaticDecider

        decider: Decider = StaticDecider.from_settings(settings)
    else:
        # The policy engine plugs in here (policies/runtime.py, PolicyRuntime).
        raise NotImplementedError(
            "policy files are not wired into the gateway yet; run without --policy"
        )
    check_upstreams(settings, decider)
    return decider


def check_upstreams(settings: Settings, decider: Decider) -> None:
    """Fail at start-up, not per request, if the decider names an unknown upstream."""
    if not isinstance(decider, HasUpstreams):
        return
    known = {u.name for u in settings.upstreams}
    missing = sorted(set(decider.upstreams()) - known)
    if missing:
        raise ValueError(
            f"the decider routes to upstreams {missing} that are not configured "
            f"(configured: {sorted(known)})"
        )
