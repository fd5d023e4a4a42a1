"""Every Prometheus metric irtgate exports, in one place.

The registry is passed in (tests build their own), never the global default one. Label
values are bounded: decision and model names come from the loaded policy, outcomes and
error kinds from the fixed lists below. Prompt text never becomes a label.

Under ``serve --workers N`` every worker writes to prometheus-client's multiprocess files
and the supervisor serves the sum (:mod:`irtgate.server.workers`): counters and histograms
add up; each gauge's ``multiprocess_mode`` says how it combines (ignored in one process).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE: Final = "irtgate"

# Outcomes of one request through the ext_proc path.
OUTCOMES: Final = ("routed", "passthrough", "rejected", "error")
# Kinds of errors counted in errors_total (client errors use their ClientError.code).
ERROR_KINDS: Final = (
    "invalid_json",
    "invalid_request",
    "unsupported_media_type",
    "request_too_large",
    "model_not_found",
    "policy_blocked",
    "no_candidate",
    "internal_error",
    "stream_error",
    "decision_timeout",  # irtgate's own message timeout fired; the decision was abandoned
    "abandoned",  # the stream or call was cancelled (Envoy timed out, client gone, shutdown)
)

_LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


@dataclass(frozen=True)
class Metrics:
    requests: Counter
    decision_latency: Histogram
    signal_latency: Histogram
    errors: Counter
    policy_reloads: Counter
    policy_info: Gauge
    pii_findings: Counter
    encoder_truncations: Counter
    signal_truncations: Counter
    p_correct: Histogram
    estimated_cost: Counter
    baseline_cost: Counter
    streams_active: Gauge
    decision_log: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        ns = NAMESPACE
        return cls(
            requests=Counter(
                "requests",
                "Requests seen by the ext_proc service.",
                ["api", "decision", "model", "budget", "outcome"],
                namespace=ns,
                registry=registry,
            ),
            decision_latency=Histogram(
                "decision_latency_seconds",
                "Time from request body received to decision.",
                ["api"],
                namespace=ns,
                registry=registry,
                buckets=_LATENCY_BUCKETS,
            ),
            signal_latency=Histogram(
                "signal_latency_seconds",
                "Time to compute one signal for one request.",
                ["signal"],
                namespace=ns,
                registry=registry,
                buckets=_LATENCY_BUCKETS,
            ),
            errors=Counter(
                "errors",
                "Errors by kind (client-visible codes and internal failures).",
                ["kind"],
                namespace=ns,
                registry=registry,
            ),
            policy_reloads=Counter(
                "policy_reloads",
                "Policy (re)loads by outcome (ok, error).",
                ["outcome"],
                namespace=ns,
                registry=registry,
            ),
            policy_info=Gauge(
                "policy_info",
                "The policy snapshot in force (value 1), by file and version hash.",
                ["path", "version"],
                namespace=ns,
                registry=registry,
                # One series per live worker (a `pid` label): a reload that missed one shows.
                multiprocess_mode="liveall",
            ),
            pii_findings=Counter(
                "pii_findings",
                "PII findings by type and the action taken.",
                ["type", "action"],
                namespace=ns,
                registry=registry,
            ),
            encoder_truncations=Counter(
                "encoder_truncations",
                "Requests whose text was cut to the encoder's window.",
                ["encoder"],
                namespace=ns,
                registry=registry,
            ),
            signal_truncations=Counter(
                "signal_truncations",
                "Requests where a signal (or the pii plugin) saw a truncated view: over its "
                "size bound or the request's CPU budget.",
                ["signal"],
                namespace=ns,
                registry=registry,
            ),
            p_correct=Histogram(
                "p_correct",
                "Predicted P(correct) of the chosen configuration.",
                ["decision"],
                namespace=ns,
                registry=registry,
                buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99),
            ),
            estimated_cost=Counter(
                "estimated_cost_usd",
                "Expected cost (USD) of the chosen configurations.",
                ["decision", "model"],
                namespace=ns,
                registry=registry,
            ),
            baseline_cost=Counter(
                "baseline_cost_usd",
                "Expected cost (USD) had every request gone to its decision's dearest candidate.",
                ["decision"],
                namespace=ns,
                registry=registry,
            ),
            streams_active=Gauge(
                "streams_active",
                "ext_proc streams currently open (requests being decided: irtgate closes "
                "each stream once its decision is sent).",
                namespace=ns,
                registry=registry,
                multiprocess_mode="livesum",
            ),
            decision_log=Counter(
                "decision_log_lines",
                "Decision log lines by result (written, dropped on a full queue, error).",
                ["result"],
                namespace=ns,
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class WorkerMetrics:
    """The supervisor's own metrics under ``serve --workers N`` (one process sets them)."""

    workers: Gauge
    workers_ready: Gauge
    worker_restarts: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WorkerMetrics:
        ns = NAMESPACE
        return cls(
            workers=Gauge(
                "workers",
                "Worker processes configured (serve --workers).",
                namespace=ns,
                registry=registry,
                multiprocess_mode="livesum",
            ),
            workers_ready=Gauge(
                "workers_ready",
                "Worker processes started and serving.",
                namespace=ns,
                registry=registry,
                multiprocess_mode="livesum",
            ),
            worker_restarts=Counter(
                "worker_restarts",
                "Worker processes that died and were started again.",
                namespace=ns,
                registry=registry,
            ),
        )
