"""The protocol-free part of the gateway: checks, the decision, and its bookkeeping.

Both front doors (the ext_proc stream and the ``Decide`` RPC) call :class:`GatewayCore`;
it returns a :class:`Verdict` or raises :class:`~irtgate.signals.errors.ClientError`. Anything else
raised inside is turned into ``INTERNAL`` here, so a crash costs one request, not the
server. Metrics are counted here, exactly once per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from irtgate.policies.outcome import (
    Decider,
    DecisionTrace,
    KnowsModels,
    Outcome,
    TracingDecider,
    traces,
)
from irtgate.server.client_keys import is_allowed
from irtgate.server.decision_log import DecisionLog, DecisionRecord
from irtgate.server.decision_record import build_record
from irtgate.server.decision_record import request_id as make_request_id
from irtgate.server.encoding import IDENTITY, check_charset, content_coding, decode_body
from irtgate.server.metrics import Metrics
from irtgate.server.parse import api_for_path, parse_request
from irtgate.server.settings import Settings, UnknownModelMode
from irtgate.signals import errors
from irtgate.signals.base import Value, WorkBudget
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind, LLMRequest

log = logging.getLogger(__name__)

# Values that may go into headers, metadata and metric labels: short, plain tokens.
_SAFE: Final = re.compile(r"[A-Za-z0-9._:/@+-]{1,128}")
NONE_LABEL: Final = "none"
REASON_LIMIT: Final = 200  # characters of the reason header
WHY_LIMIT: Final = 256  # characters of the "why this decision matched" header


def safe_label(value: str | None, fallback: str = "other") -> str:
    if value is None:
        return NONE_LABEL
    return value if _SAFE.fullmatch(value) else fallback


def header_text(value: str, limit: int) -> str:
    """Printable ASCII only (anything else becomes ``?``), at most ``limit`` characters.

    For the explanation headers: their content is built from policy names and signal
    labels, never prompt text, but a header must not break on a stray character either.
    """
    out = "".join(c if " " <= c <= "~" else "?" for c in value[:limit])
    return out.strip()


def is_json_content_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where a request goes and what it becomes. All string fields are header-safe."""

    outcome: str  # "routed" | "passthrough"
    upstream: str
    model: str
    budget: str
    decision: str
    config: str = ""
    reason: str = ""
    new_body: bytes | None = None  # None: forward the body unchanged
    set_headers: Mapping[str, str] = field(default_factory=dict)
    remove_headers: tuple[str, ...] = ()
    explanation: Mapping[str, Value] = field(default_factory=dict)
    why: str = ""  # why the decision matched (signal values vs the policy's operands)

    def metadata(self) -> dict[str, str]:
        """The dynamic metadata Envoy routes on and turns into ``x-irtgate-*`` headers."""
        md = {
            "upstream": self.upstream,
            "model": self.model,
            "budget": self.budget,
            "decision": self.decision,
        }
        # Empty values are left out: Envoy then adds no header for them.
        for key, value in (("config", self.config), ("reason", self.reason), ("why", self.why)):
            if value:
                md[key] = value
        return md


class GatewayCore:
    def __init__(
        self,
        settings: Settings,
        decider: Decider,
        metrics: Metrics,
        decision_log: DecisionLog | None = None,
    ) -> None:
        self.settings = settings
        self.decider = decider
        self.metrics = metrics
        self._upstreams = {u.name: u for u in settings.upstreams}
        self._model_upstreams: dict[str, list[str]] = {}
        for u in settings.upstreams:
            for m in u.models:
                self._model_upstreams.setdefault(m, []).append(u.name)
        # Only a tracing decider can fill in what a record holds.
        self.decision_log = decision_log if decision_log is not None and traces(decider) else None
        self._aliases = frozenset(settings.aliases)
        # Optional capabilities, checked once here. A decider may name the models it handles
        # itself; asked per request because a policy reload can change them.
        self._decider_models: Callable[[], Iterable[str]] | None = (
            decider.known_models if isinstance(decider, KnowsModels) else None
        )
        # Deciders that report signal timings, PII findings, P and cost (the policy runtime).
        self._tracing: TracingDecider | None = decider if traces(decider) else None

    def routes(self, model: str) -> bool:
        """Whether ``model`` goes to the decider (else it is a concrete passthrough model)."""
        if model in self._aliases:
            return True
        return self._decider_models is not None and model in self._decider_models()

    # -- request headers ---------------------------------------------------------------

    def check_client(self, path: str, headers: Mapping[str, str]) -> None:
        """Raise 401 unless the request carries a gateway key (when keys are required)."""
        digests = self.settings.client_key_hashes
        if digests is None or is_allowed(headers, digests):
            return
        error = errors.INVALID_API_KEY.with_message(
            "missing or invalid API key: send 'Authorization: Bearer <key>' "
            "(or x-api-key) with a key this gateway issued"
        )
        self.count_rejection(api_for_path(path), error)
        raise error

    def check_headers(
        self,
        method: str,
        path: str,
        content_type: str | None,
        content_length: int | None,
        content_encoding: str | None = None,
    ) -> tuple[ApiKind, str] | None:
        """The API to route for this request and the body's content coding, None to pass
        it through; raises on bad input."""
        api = api_for_path(path)
        if api is None or method != "POST":
            return None
        try:
            if content_type is None or not is_json_content_type(content_type):
                got = safe_label(content_type.split(";", 1)[0].strip() if content_type else None)
                raise errors.UNSUPPORTED_MEDIA_TYPE.with_message(
                    f"content-type must be application/json, got {got}"
                )
            check_charset(content_type)
            coding = content_coding(content_encoding)
            if content_length is not None and content_length > self.settings.body_limit:
                raise self._too_large(content_length)
        except ClientError as e:
            self.count_rejection(api, e)
            raise
        return api, coding

    def _too_large(self, size: int) -> ClientError:
        return errors.BODY_TOO_LARGE.with_message(
            f"request body of {size} bytes exceeds the limit of {self.settings.body_limit} bytes"
        )

    # -- request body ------------------------------------------------------------------

    async def decide(
        self,
        api: ApiKind,
        body: bytes,
        coding: str = IDENTITY,
        request_id: str | None = None,
    ) -> Verdict:
        """Parse, decide and count one request body (``coding``: its content coding, as
        :meth:`check_headers` returned it). Raises ClientError only.

        ``request_id``: Envoy's ``x-request-id``, for the decision log (else one is made)."""
        started = time.perf_counter()
        try:
            if len(body) > self.settings.body_limit:
                raise self._too_large(len(body))
            body = decode_body(body, coding, self.settings.body_limit)
            request = parse_request(api, body)
            if self.routes(request.model):
                verdict = self._fits(api, await self._route(request, api, started, request_id))
                self.metrics.decision_latency.labels(api.value).observe(
                    time.perf_counter() - started
                )
            else:
                verdict = self._passthrough(request.model, api)
        except ClientError as e:
            self.count_rejection(api, e)
            raise
        except asyncio.CancelledError:
            # Envoy gave up (its message timeout) or the stream or call went away.
            self.metrics.errors.labels("abandoned").inc()
            raise
        except Exception as e:
            # Type name only: an exception message may quote the request.
            log.exception("internal error while deciding (%s)", type(e).__name__)
            self.count_rejection(api, errors.INTERNAL, outcome="error")
            raise errors.INTERNAL from None
        self.metrics.requests.labels(
            api.value, verdict.decision, verdict.model, verdict.budget, verdict.outcome
        ).inc()
        return verdict

    async def _route(
        self, request: LLMRequest, api: ApiKind, started: float, request_id: str | None
    ) -> Verdict:
        if self._tracing is None:
            return self._verdict(await self.decider.decide(request))
        trace = DecisionTrace(budget=WorkBudget(self.settings.signal_cpu_budget_s))
        trace.log = self.decision_log is not None and self.decision_log.wanted()
        try:
            # Envoy gives up on us after its message timeout; so do we, and the decider
            # stops its worker (see PolicyRuntime.decide) instead of running on unseen.
            async with asyncio.timeout(self.settings.message_timeout_s):
                outcome = await self._tracing.decide(request, trace)
        except TimeoutError:
            trace.budget.cancel()
            self._log(trace, request, api, started, request_id, "decision_timeout")
            raise errors.DECISION_TIMEOUT from None
        except ClientError as e:
            self._count_trace(trace, None, None)  # what a refused request computed and found
            self._log(trace, request, api, started, request_id, e.code)
            raise
        verdict = self._verdict(outcome)
        self._count_trace(trace, verdict.decision, verdict.model)
        self._log(trace, request, api, started, request_id, "routed")
        return verdict

    def _log(
        self,
        trace: DecisionTrace,
        request: LLMRequest,
        api: ApiKind,
        started: float,
        request_id: str | None,
        outcome: str,
    ) -> None:
        """Queue the decision's record; it is built and written by the log's own thread, so
        the request pays only for the queue, and a failure there never reaches it."""
        if not trace.log or self.decision_log is None:
            return
        elapsed = time.perf_counter() - started
        wall = time.time() - elapsed
        rid, model = make_request_id(request_id), request.model

        def build() -> DecisionRecord:
            return build_record(
                trace,
                request_id=rid,
                started_wall=wall,
                latency_s=elapsed,
                api=api.value,
                model=model,
                outcome=outcome,
                policy=trace.policy or "unknown",
                router=trace.router,
            )

        try:
            self.decision_log.submit_later(build)
        except Exception as e:  # never the request's problem
            log.warning("decision log: record not queued (%s)", type(e).__name__)
            self.metrics.decision_log.labels("error").inc()

    def _count_trace(self, trace: DecisionTrace, decision: str | None, model: str | None) -> None:
        m = self.metrics
        for signal in trace.truncated:
            m.signal_truncations.labels(safe_label(signal)).inc()
        for signal, seconds in trace.signal_seconds:
            m.signal_latency.labels(safe_label(signal)).observe(seconds)
        for (kind, action), n in trace.pii.items():
            m.pii_findings.labels(safe_label(kind), safe_label(action)).inc(n)
        if decision is None or model is None:
            return
        if trace.p_correct is not None:
            m.p_correct.labels(decision).observe(trace.p_correct)
        if trace.cost is not None:
            m.estimated_cost.labels(decision, model).inc(trace.cost)
        if trace.baseline_cost is not None:
            m.baseline_cost.labels(decision).inc(trace.baseline_cost)

    def _verdict(self, outcome: Outcome) -> Verdict:
        choice = outcome.choice
        why = outcome.explanation.get("decision.why")
        if choice.upstream not in {u.name for u in self.settings.upstreams}:
            raise RuntimeError("decider chose an upstream that is not configured")
        new_body = None
        if outcome.body_changed:
            new_body = json.dumps(outcome.body, separators=(",", ":"), ensure_ascii=False).encode()
        return Verdict(
            outcome="routed",
            upstream=choice.upstream,
            model=safe_label(choice.model),
            budget=safe_label(choice.budget),
            decision=safe_label(outcome.decision),
            config=safe_label(choice.config),
            reason=header_text(outcome.reason, REASON_LIMIT),
            why=header_text(why, WHY_LIMIT) if isinstance(why, str) else "",
            new_body=new_body,
            set_headers=dict(outcome.request_headers),
            remove_headers=tuple(outcome.remove_request_headers),
            explanation=dict(outcome.explanation),
        )

    def _fits(self, api: ApiKind, verdict: Verdict) -> Verdict:
        """A decider (the static one, say) chose an upstream that cannot take this API."""
        if self._upstreams[verdict.upstream].speaks(api):
            return verdict
        raise self._not_served(api, [verdict.upstream])

    def _not_served(self, api: ApiKind, upstreams: list[str]) -> ClientError:
        speaks = sorted({a.value for u in upstreams for a in self._upstreams[u].apis})
        return errors.API_NOT_SERVED.with_message(
            f"upstream {', '.join(upstreams)} does not speak the {api.value} API "
            f"(it speaks {', '.join(speaks) or 'none'})"
        )

    def _passthrough(self, model: str, api: ApiKind) -> Verdict:
        declared = self._model_upstreams.get(model, [])
        fit = [u for u in declared if self._upstreams[u].speaks(api)]
        if declared and not fit:
            raise self._not_served(api, declared)
        upstream = fit[0] if fit else None
        if upstream is None:
            if self.settings.unknown_model is UnknownModelMode.REJECT:
                raise errors.UNKNOWN_MODEL.with_message(
                    f"model {safe_label(model, 'given')!s} is not served by this gateway; "
                    f"use a served model or one of the aliases {sorted(self._aliases)}"
                )
            upstream = self.settings.default_upstream
            if not self._upstreams[upstream].speaks(api):
                raise self._not_served(api, [upstream])
            label = "unknown"
        else:
            label = safe_label(model)
        return Verdict(
            outcome="passthrough",
            upstream=upstream,
            model=label,
            budget=NONE_LABEL,
            decision="passthrough",
            reason="concrete model requested",
        )

    # -- bookkeeping -------------------------------------------------------------------

    def count_rejection(self, api: ApiKind | None, error: ClientError, outcome: str = "") -> None:
        api_label = api.value if api is not None else "other"
        outcome = outcome or ("error" if error.status >= 500 else "rejected")
        self.metrics.errors.labels(error.code).inc()
        self.metrics.requests.labels(api_label, error.code, NONE_LABEL, NONE_LABEL, outcome).inc()

    def count_unrouted(self) -> None:
        """A request irtgate lets through without reading it (no body, or not an LLM API)."""
        self.metrics.requests.labels(
            "other", "passthrough", NONE_LABEL, NONE_LABEL, "passthrough"
        ).inc()

    def count_internal(self, api: ApiKind | None) -> None:
        self.count_rejection(api, errors.INTERNAL, outcome="error")
