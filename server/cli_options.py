"""The options ``serve``, ``up`` and ``envoy-config`` share (typer annotations), with their
defaults taken from :class:`~irtgate.server.settings.Settings`. Exposure and TLS options
are in :mod:`irtgate.server.cli_exposure`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irtgate.server.decision_log import DecisionLogMode
from irtgate.server.settings import FailMode, Settings, UnknownModelMode

DEFAULTS = Settings()  # option defaults come from the settings' own
DLOG = DEFAULTS.decision_log
DLOG_MODE = DecisionLogMode(DLOG.mode)

GrpcPortOpt = Annotated[int, typer.Option(help="ext_proc + Decide + gRPC health port.")]
AdminPortOpt = Annotated[int, typer.Option(help="irtgate admin HTTP port (/healthz /metrics).")]
PortOpt = Annotated[int, typer.Option("--port", help="Envoy listener port (clients connect here).")]
EnvoyAdminOpt = Annotated[int, typer.Option(help="Envoy admin port.")]
AliasOpt = Annotated[
    list[str] | None, typer.Option("--alias", help="model value that asks for routing (repeat).")
]
BodyLimitOpt = Annotated[float, typer.Option(help="Request body limit in MiB (413 above).")]
UnknownOpt = Annotated[
    UnknownModelMode, typer.Option(help="Concrete model no upstream declares: pass or 400.")
]
FailOpt = Annotated[FailMode, typer.Option(help="irtgate down: closed = JSON 503, open = pass.")]
TimeoutOpt = Annotated[float, typer.Option(help="Envoy's per-message ext_proc timeout (s).")]
CpuBudgetOpt = Annotated[
    float,
    typer.Option(
        "--signal-cpu-budget",
        help="CPU seconds one decision's signals may use; past it, scans stop (truncated).",
    ),
]
UpstreamOpt = Annotated[
    list[str] | None,
    typer.Option("--upstream", help="NAME=HOST:PORT[,model,...] (repeat); default: demo ones."),
]
UpstreamsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--upstreams",
        help="Upstreams YAML (URLs, providers, keys from env/file; docs/upstreams.md).",
    ),
]
ClientKeysOpt = Annotated[
    Path | None,
    typer.Option(
        "--client-keys",
        help="File of sha256 digests of the API keys clients must send (else 401).",
    ),
]
DefaultUpOpt = Annotated[str | None, typer.Option(help="Upstream for unrouted traffic.")]
RouteOpt = Annotated[
    str | None,
    typer.Option(help="Static decision for routed requests: UPSTREAM/MODEL[@BUDGET]."),
]
RouteFamilyOpt = Annotated[
    str,
    typer.Option(
        help="Provider family whose fields carry --route's budget (see docs/policies.md, "
        "'Reasoning budgets'); native = each API's own provider's."
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option(help="Routing policy YAML (default: the embedded policies/default.yaml)."),
]
StaticOpt = Annotated[
    bool,
    typer.Option(
        "--static",
        help="No policy: every routed request gets --route (implied by --route without --policy).",
    ),
]
RouterOpt = Annotated[
    Path | None,
    typer.Option("--router", help="IRT router directory (default: the shipped default router)."),
]
WatchOpt = Annotated[
    bool, typer.Option("--watch/--no-watch", help="Reload the --policy file when it changes.")
]
LogOpt = Annotated[str, typer.Option(help="Log level.")]
WorkersOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="irtgate processes sharing the gRPC port, each with its own model "
        "(docs/gateway.md, 'Workers').",
    ),
]
# The decision log (docs/operations.md): one JSON line per decision, for `policy replay`.
DLogOpt = Annotated[
    DecisionLogMode, typer.Option("--decision-log", help="Decision log: off, sampled or full.")
]
DLogFileOpt = Annotated[
    Path | None,
    typer.Option("--decision-log-file", help="Decision log file (rotated); default: stdout."),
]
DLogSampleOpt = Annotated[
    float, typer.Option("--decision-log-sample", help="Share of decisions logged when sampled.")
]
DLogMaxOpt = Annotated[
    float, typer.Option("--decision-log-max-mib", help="Rotate the decision log at this size.")
]
DLogBackupsOpt = Annotated[
    int, typer.Option("--decision-log-backups", help="Rotated decision log files kept.")
]
