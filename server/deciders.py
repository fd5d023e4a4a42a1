"""The one place that turns settings into a :class:`~irtgate.policies.outcome.Decider`.

The gateway only ever calls :func:`load_decider`; which decider it gets (the policy
runtime, by default on the embedded ``policies/default.yaml``, or the static one) is
decided here and nowhere else. Everything heavy (the IRT router, its encoder, the signal
models a policy uses) is loaded here, once, before the gateway starts serving.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from irtgate.policies.outcome import Decider
from irtgate.server.metrics import Metrics
from irtgate.server.settings import DeciderKind, Settings
from irtgate.signals.base import Resources

if TYPE_CHECKING:
    from irtgate.policies.runtime import PolicyRuntime
    from irtgate.policies.spec import CatalogEntry

log = logging.getLogger(__name__)

EMBEDDED_POLICY_LABEL = "embedded:policies/default.yaml"


@runtime_checkable
class HasUpstreams(Protocol):
    """Deciders that can say which upstreams they may route to (checked at start-up)."""

    def upstreams(self) -> Iterable[str]: ...


def load_decider(settings: Settings, metrics: Metrics | None = None) -> Decider:
    """The decider ``settings`` ask for; raises ValueError (or PolicyError) at start-up.

    ``metrics``: the gateway's metrics, for policy reloads, the policy in force and
    encoder truncations. Without them nothing is counted (tools and some tests).
    """
    if settings.decider is DeciderKind.STATIC:
        from irtgate.server.static_decider import StaticDecider

        decider: Decider = StaticDecider.from_settings(settings)
    else:
        decider = load_policy(settings, metrics)
    check_upstreams(settings, decider)
    return decider


def load_policy(settings: Settings, metrics: Metrics | None) -> PolicyRuntime:
    from irtgate.policies.runtime import PolicyRuntime

    resources = with_upstream_apis(policy_resources(metrics, settings.router_path), settings)
    path = settings.policy_path
    label = str(path) if path is not None else EMBEDDED_POLICY_LABEL
    hook = _ReloadMetrics(metrics, label) if metrics is not None else None
    runtime = PolicyRuntime.from_file(
        path,
        resources=resources,
        # The embedded default is part of the install: nothing to watch.
        watch=settings.policy_watch and path is not None,
        on_reload=hook,
        # A reload that names an unknown upstream is refused like any broken edit.
        accept=lambda snap: (
            _unknown_upstreams(settings, snap.policy.upstreams)
            or _family_mismatch(settings, snap.policy.catalog)
        ),
    )
    if hook is not None:
        hook.runtime = runtime
        hook("ok", None)  # the first load counts as one
    aliases = set(runtime.aliases())
    if not aliases & set(settings.aliases):
        # Requests with the gateway's aliases would all be refused as unknown models.
        log.warning(
            "the policy's aliases %s share none with the gateway's %s",
            sorted(aliases),
            sorted(settings.aliases),
        )
    return runtime


def with_upstream_apis(res: Resources, settings: Settings) -> Resources:
    """The engine drops candidates whose upstream does not speak the request's API."""
    apis = {u.name: u.apis for u in settings.upstreams}
    return dataclasses.replace(res, extras={**res.extras, "upstream_apis": apis})


def policy_resources(metrics: Metrics | None, router_path: Path | None = None) -> Resources:
    """The router (``router_path``, else the shipped default) and its encoder, loaded once.

    Encoder truncations are counted in ``metrics``. A router directory that was asked for
    and does not load is a start-up error; the shipped default may be missing (then P is
    unknown and cost decides).
    """
    if router_path is None:
        from irtgate.policies.runtime import default_resources

        res = default_resources()
    else:
        from irtgate.signals.irt.runtime import IRTRouter

        router = IRTRouter.load(router_path)
        res = Resources(embedder=router.embedder(), router=router)
    if metrics is None or res.router is None:
        return res
    from irtgate.signals.encoders.embedder import RequestEmbedder

    shared = res.embedder  # the router's own, loaded once
    if not isinstance(shared, RequestEmbedder):
        return res
    counter = metrics.encoder_truncations
    embedder = RequestEmbedder(shared.encoder, metrics_hook=lambda name: counter.labels(name).inc())
    return Resources(embedder=embedder, router=res.router, extras=res.extras)


class _ReloadMetrics:
    """``on_reload`` for :class:`PolicyRuntime`: counts reloads, tracks the version in force."""

    def __init__(self, metrics: Metrics, path: str) -> None:
        self.metrics = metrics
        self.path = path
        self.runtime: PolicyRuntime | None = None
        self._version: str | None = None

    def __call__(self, outcome: str, error: str | None) -> None:
        # Called from the watcher's worker thread; prometheus_client is thread-safe.
        self.metrics.policy_reloads.labels(outcome).inc()
        if outcome != "ok" or self.runtime is None:
            return  # a broken edit: the version in force does not change
        version = self.runtime.snapshot.digest
        info = self.metrics.policy_info
        info.labels(self.path, version).set(1)
        # One series per process: the previous version's goes (new one first, so a scrape
        # in between never sees none).
        if self._version is not None and self._version != version:
            # Zero first: under --workers the value lives in a file remove() cannot reach
            # (the supervisor leaves zeros out).
            info.labels(self.path, self._version).set(0)
            info.remove(self.path, self._version)
        self._version = version


def check_upstreams(settings: Settings, decider: Decider) -> None:
    """Fail at start-up, not per request, if the decider names an unknown upstream."""
    if not isinstance(decider, HasUpstreams):
        return
    problem = _unknown_upstreams(settings, decider.upstreams())
    if problem is not None:
        raise ValueError(problem)


def _family_mismatch(settings: Settings, catalog: Iterable[CatalogEntry]) -> str | None:
    """A budget spelled for one provider sent to another (Anthropic thinking tokens to an
    OpenAI upstream, say) would be refused there; refuse the policy instead. Upstreams
    whose family is open ("none": self-hosted servers, the old --upstream) take any."""
    from irtgate.server.upstreams import COMPATIBLE_FAMILIES

    families = {u.name: u.family for u in settings.upstreams}
    bad = []
    for e in catalog:
        fam = families.get(e.upstream, "none")
        ok = {fam, "native", "max_tokens", "none", *COMPATIBLE_FAMILIES.get(fam, ())}
        if e.budget is not None and fam != "none" and e.family not in ok:
            bad.append(f"{e.name} (family {e.family}, upstream {e.upstream} takes {fam})")
    if not bad:
        return None
    return "catalog budgets in the wrong family for their upstream: " + "; ".join(bad)


def _unknown_upstreams(settings: Settings, upstreams: Iterable[str]) -> str | None:
    known = {u.name for u in settings.upstreams}
    missing = sorted(set(upstreams) - known)
    if not missing:
        return None
    hint = ""
    if settings.decider is DeciderKind.POLICY and settings.policy_path is None:
        hint = "; the embedded default policy is for the demo upstreams: give --policy"
    return (
        f"the decider routes to upstreams {missing} that are not configured "
        f"(configured: {sorted(known)}){hint}"
    )
