"""CLI commands for the gateway: ``serve``, ``up``, ``envoy-config`` and ``demo-upstream``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from irtgate.policies.errors import PolicyError
from irtgate.server.cli_exposure import (
    AdminHostOpt,
    AdminTokenOpt,
    EnvoyAdminHostOpt,
    EnvoyCaOpt,
    EnvoyCertOpt,
    EnvoyKeyOpt,
    EnvoyServerNameOpt,
    GrpcCertOpt,
    GrpcClientCaOpt,
    GrpcHostOpt,
    GrpcKeyOpt,
    IrtgateHostOpt,
    ListenHostOpt,
    exposure_kwargs,
)
from irtgate.server.cli_options import DEFAULTS as _D
from irtgate.server.cli_options import DLOG as _DL
from irtgate.server.cli_options import DLOG_MODE as _DL_MODE
from irtgate.server.cli_options import (
    AdminPortOpt,
    AliasOpt,
    BodyLimitOpt,
    ClientKeysOpt,
    CpuBudgetOpt,
    DefaultUpOpt,
    DLogBackupsOpt,
    DLogFileOpt,
    DLogMaxOpt,
    DLogOpt,
    DLogSampleOpt,
    EnvoyAdminOpt,
    FailOpt,
    GrpcPortOpt,
    LogOpt,
    PolicyOpt,
    PortOpt,
    RouteFamilyOpt,
    RouteOpt,
    RouterOpt,
    StaticOpt,
    TimeoutOpt,
    UnknownOpt,
    UpstreamOpt,
    UpstreamsFileOpt,
    WatchOpt,
    WorkersOpt,
)
from irtgate.server.client_keys import load_client_keys
from irtgate.server.decision_log import DecisionLogConfig, DecisionLogMode
from irtgate.server.settings import (
    DeciderKind,
    DefaultChoice,
    FailMode,
    MiB,
    Settings,
    UnknownModelMode,
    Upstream,
)
from irtgate.server.upstreams import SKIP_KEY_CHECKS, load_upstreams

T = TypeVar("T")


def parse_upstream(spec: str) -> Upstream:
    """``name=host:port[,model,...]`` → :class:`Upstream`."""
    try:
        name, rest = spec.split("=", 1)
        addr, *models = rest.split(",")
        host, port = addr.rsplit(":", 1)
        return Upstream(name.strip(), host.strip(), int(port), tuple(m for m in models if m))
    except ValueError as e:
        raise typer.BadParameter(f"{spec!r}: expected NAME=HOST:PORT[,model,...] ({e})") from e


def parse_route(spec: str, family: str = _D.default_choice.family) -> DefaultChoice:
    """``upstream/model[@budget]`` (its budget in ``family``'s terms) → :class:`DefaultChoice`."""
    upstream, sep, rest = spec.partition("/")
    model, _, budget = rest.partition("@")
    if not sep or not upstream or not model:
        raise typer.BadParameter(f"{spec!r}: expected UPSTREAM/MODEL[@BUDGET]")
    try:
        return DefaultChoice(model=model, upstream=upstream, budget=budget or None, family=family)
    except ValueError as e:
        raise typer.BadParameter(f"{spec!r}: {e}") from e


def build_settings(
    *,
    exposure: Mapping[str, Any] | None = None,
    grpc_port: int = _D.grpc_port,
    admin_port: int = _D.admin_port,
    port: int = _D.envoy_port,
    envoy_admin_port: int = _D.envoy_admin_port,
    alias: list[str] | None = None,
    body_limit_mib: float = _D.body_limit / MiB,
    unknown_model: UnknownModelMode = _D.unknown_model,
    fail_mode: FailMode = _D.fail_mode,
    message_timeout: float = _D.message_timeout_s,
    signal_cpu_budget: float = _D.signal_cpu_budget_s,
    upstream: list[str] | None = None,
    default_upstream: str | None = None,
    policy: Path | None = None,
    route: str | None = None,
    route_family: str = _D.default_choice.family,
    need_route: bool = True,
    static: bool = False,
    watch: bool = True,
    router: Path | None = None,
    upstreams_file: Path | None = None,
    client_keys: Path | None = None,
    check_keys: bool = True,
    decision_log: DecisionLogMode = _DL_MODE,
    decision_log_file: Path | None = None,
    decision_log_sample: float = _DL.sample,
    decision_log_max_mib: float = _DL.max_bytes / MiB,
    decision_log_backups: int = _DL.backups,
) -> Settings:
    kwargs: dict[str, object] = {}
    if static and policy is not None:
        raise typer.BadParameter("--static and --policy exclude each other")
    if route is not None and policy is not None:
        raise typer.BadParameter("--route is the static decider's choice; --policy decides itself")
    if route is None and route_family != _D.default_choice.family:
        raise typer.BadParameter(
            "--route-family names the family of --route's budget: give --route"
        )
    # A route without a policy asks for the static decider: that is what --route sets.
    kwargs["decider"] = DeciderKind.STATIC if static or route is not None else DeciderKind.POLICY
    if upstream and upstreams_file is not None:
        raise typer.BadParameter("--upstream and --upstreams exclude each other")
    file_default = None
    if upstreams_file is not None:
        # The keys matter where Envoy runs: `envoy-config` may render elsewhere (CI, Helm).
        environ = None if check_keys else SKIP_KEY_CHECKS
        config = _load_or_exit(lambda p: load_upstreams(p, environ), upstreams_file)
        ups = config.upstreams
        file_default = config.default
        kwargs["upstreams_path"] = upstreams_file
    elif upstream:
        ups = tuple(parse_upstream(s) for s in upstream)
    else:
        ups = ()
    if client_keys is not None:
        kwargs["client_key_hashes"] = _load_or_exit(load_client_keys, client_keys)
        kwargs["client_keys_path"] = client_keys
    if ups:
        kwargs["upstreams"] = ups
        kwargs["default_upstream"] = default_upstream or file_default or ups[0].name
        if route is None:  # the demo default choice names a demo upstream
            target = next((u for u in ups if u.name == kwargs["default_upstream"]), ups[0])
            if not target.models and need_route and kwargs["decider"] is DeciderKind.STATIC:
                raise typer.BadParameter(
                    "with --upstream(s), give --route UPSTREAM/MODEL[@BUDGET] or list a model "
                    "on the default upstream (NAME=HOST:PORT,model)"
                )
            model = target.models[0] if target.models else "default"
            kwargs["default_choice"] = DefaultChoice(model, target.name, None)
    elif default_upstream:
        kwargs["default_upstream"] = default_upstream
    if route is not None:
        kwargs["default_choice"] = parse_route(route, route_family)
    try:
        kwargs["decision_log"] = DecisionLogConfig(
            mode=decision_log.value,
            sample=decision_log_sample,
            path=decision_log_file,
            max_bytes=int(decision_log_max_mib * MiB),
            backups=decision_log_backups,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    try:
        return Settings(
            grpc_port=grpc_port,
            admin_port=admin_port,
            envoy_port=port,
            envoy_admin_port=envoy_admin_port,
            aliases=tuple(alias or ("auto",)),
            body_limit=int(body_limit_mib * MiB),
            unknown_model=unknown_model,
            fail_mode=fail_mode,
            message_timeout_s=message_timeout,
            signal_cpu_budget_s=signal_cpu_budget,
            policy_path=policy,
            policy_watch=watch,
            router_path=router,
            **kwargs,  # type: ignore[arg-type]
            **(exposure or {}),
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        grpc_host: GrpcHostOpt = _D.grpc_host,
        admin_host: AdminHostOpt = _D.admin_host,
        grpc_port: GrpcPortOpt = _D.grpc_port,
        admin_port: AdminPortOpt = _D.admin_port,
        port: PortOpt = _D.envoy_port,
        envoy_admin_port: EnvoyAdminOpt = _D.envoy_admin_port,
        alias: AliasOpt = None,
        body_limit_mib: BodyLimitOpt = _D.body_limit / MiB,
        unknown_model: UnknownOpt = _D.unknown_model,
        fail_mode: FailOpt = _D.fail_mode,
        message_timeout: TimeoutOpt = _D.message_timeout_s,
        signal_cpu_budget: CpuBudgetOpt = _D.signal_cpu_budget_s,
        upstream: UpstreamOpt = None,
        upstreams_file: UpstreamsFileOpt = None,
        client_keys: ClientKeysOpt = None,
        default_upstream: DefaultUpOpt = None,
        policy: PolicyOpt = None,
        route: RouteOpt = None,
        route_family: RouteFamilyOpt = _D.default_choice.family,
        static: StaticOpt = False,
        watch: WatchOpt = True,
        router: RouterOpt = None,
        grpc_tls_cert: GrpcCertOpt = None,
        grpc_tls_key: GrpcKeyOpt = None,
        grpc_tls_client_ca: GrpcClientCaOpt = None,
        admin_token_file: AdminTokenOpt = None,
        decision_log: DLogOpt = _DL_MODE,
        decision_log_file: DLogFileOpt = None,
        decision_log_sample: DLogSampleOpt = _DL.sample,
        decision_log_max_mib: DLogMaxOpt = _DL.max_bytes / MiB,
        decision_log_backups: DLogBackupsOpt = _DL.backups,
        log_level: LogOpt = "info",
        workers: WorkersOpt = 1,
    ) -> None:
        """Run the ext_proc service (plus Decide and gRPC health) and the admin HTTP port."""

        from irtgate.server.app import serve as run

        settings = build_settings(**_options(locals()))
        _logging(log_level)
        if workers > 1:
            from irtgate.server.workers import serve_workers

            if settings.decision_log.mode != "off" and settings.decision_log.path is not None:
                # Several processes rotating one file would lose lines: stdout is shared
                # safely (one write per line).
                raise typer.BadParameter(
                    "--decision-log-file with --workers > 1: log to stdout instead"
                )

            _run_or_exit(serve_workers(settings, workers))
            return
        _run_or_exit(run(settings))

    @app.command()
    def up(
        listen_host: ListenHostOpt = _D.listen_host,
        grpc_host: GrpcHostOpt = _D.grpc_host,
        admin_host: AdminHostOpt = _D.admin_host,
        envoy_admin_host: EnvoyAdminHostOpt = _D.envoy_admin_host,
        grpc_port: GrpcPortOpt = _D.grpc_port,
        admin_port: AdminPortOpt = _D.admin_port,
        port: PortOpt = _D.envoy_port,
        envoy_admin_port: EnvoyAdminOpt = _D.envoy_admin_port,
        alias: AliasOpt = None,
        body_limit_mib: BodyLimitOpt = _D.body_limit / MiB,
        unknown_model: UnknownOpt = _D.unknown_model,
        fail_mode: FailOpt = _D.fail_mode,
        message_timeout: TimeoutOpt = _D.message_timeout_s,
        signal_cpu_budget: CpuBudgetOpt = _D.signal_cpu_budget_s,
        upstream: UpstreamOpt = None,
        upstreams_file: UpstreamsFileOpt = None,
        client_keys: ClientKeysOpt = None,
        default_upstream: DefaultUpOpt = None,
        policy: PolicyOpt = None,
        route: RouteOpt = None,
        route_family: RouteFamilyOpt = _D.default_choice.family,
        static: StaticOpt = False,
        watch: WatchOpt = True,
        router: RouterOpt = None,
        grpc_tls_cert: GrpcCertOpt = None,
        grpc_tls_key: GrpcKeyOpt = None,
        grpc_tls_client_ca: GrpcClientCaOpt = None,
        envoy_tls_ca: EnvoyCaOpt = None,
        envoy_tls_cert: EnvoyCertOpt = None,
        envoy_tls_key: EnvoyKeyOpt = None,
        envoy_tls_server_name: EnvoyServerNameOpt = None,
        admin_token_file: AdminTokenOpt = None,
        decision_log: DLogOpt = _DL_MODE,
        decision_log_file: DLogFileOpt = None,
        decision_log_sample: DLogSampleOpt = _DL.sample,
        decision_log_max_mib: DLogMaxOpt = _DL.max_bytes / MiB,
        decision_log_backups: DLogBackupsOpt = _DL.backups,
        demo: Annotated[
            bool | None,
            typer.Option(help="Start demo echo upstreams (default: unless --upstreams)."),
        ] = None,
        log_level: LogOpt = "warning",
        workers: WorkersOpt = 1,
    ) -> None:
        """Start Envoy + irtgate + demo upstreams (what `make run` does); Ctrl-C stops all."""

        from irtgate.server.up import up as run

        settings = build_settings(**_options(locals()))
        _logging(log_level)
        envoy_level = "warn" if log_level.lower().startswith("warn") else log_level.lower()
        demo = upstreams_file is None if demo is None else demo
        _run_or_exit(run(settings, demo=demo, log_level=envoy_level, workers=workers))

    @app.command("envoy-config")
    def envoy_config(
        listen_host: ListenHostOpt = _D.listen_host,
        grpc_host: GrpcHostOpt = _D.grpc_host,
        admin_host: AdminHostOpt = _D.admin_host,
        envoy_admin_host: EnvoyAdminHostOpt = _D.envoy_admin_host,
        irtgate_host: IrtgateHostOpt = None,
        grpc_port: GrpcPortOpt = _D.grpc_port,
        admin_port: AdminPortOpt = _D.admin_port,
        port: PortOpt = _D.envoy_port,
        envoy_admin_port: EnvoyAdminOpt = _D.envoy_admin_port,
        body_limit_mib: BodyLimitOpt = _D.body_limit / MiB,
        fail_mode: FailOpt = _D.fail_mode,
        message_timeout: TimeoutOpt = _D.message_timeout_s,
        upstream: UpstreamOpt = None,
        upstreams_file: UpstreamsFileOpt = None,
        default_upstream: DefaultUpOpt = None,
        envoy_tls_ca: EnvoyCaOpt = None,
        envoy_tls_cert: EnvoyCertOpt = None,
        envoy_tls_key: EnvoyKeyOpt = None,
        envoy_tls_server_name: EnvoyServerNameOpt = None,
        check_keys: Annotated[
            bool,
            typer.Option(
                "--check-keys/--no-check-keys",
                help="Check here that each key's variable is set and file readable "
                "(off: render where Envoy's secrets are not, e.g. in CI).",
            ),
        ] = True,
        workers: WorkersOpt = 1,
    ) -> None:
        """Print the Envoy bootstrap YAML for these settings (keys are never in it: Envoy
        reads them from the variables or files the upstreams file names)."""
        from irtgate.server.envoy_config import render_yaml

        settings = build_settings(**_options(locals()), need_route=False)
        opts = None
        if workers > 1:  # in front of `serve --workers N`: calls spread over the workers
            from irtgate.server.workers import envoy_options

            opts = envoy_options(settings)
        typer.echo(render_yaml(settings, opts), nl=False)

    @app.command("demo-upstream")
    def demo_upstream(
        name: Annotated[str, typer.Option(help="Upstream name it reports in every reply.")],
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 18001,
        stream_interval: Annotated[
            float, typer.Option(help="Seconds between the events of a streamed reply.")
        ] = 0.5,
    ) -> None:
        """Run one demo echo upstream (a stand-in for an LLM API) until stopped."""
        from irtgate.server.demo_upstream import run_demo_upstream

        _logging("info")
        _run_or_exit(run_demo_upstream(name, host, port, stream_interval))


def _options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The command's options as :func:`build_settings` takes them (the commands share most)."""
    wanted = inspect.signature(build_settings).parameters
    exposure = inspect.signature(exposure_kwargs).parameters
    out = {k: v for k, v in values.items() if k in wanted}
    out["exposure"] = exposure_kwargs(**{k: v for k, v in values.items() if k in exposure})
    return out


def _load_or_exit(load: Callable[[Path], T], path: Path) -> T:
    """A file read at start-up; its problems (all of them, file:line: path) end the run."""
    try:
        return load(path)
    except PolicyError as e:
        typer.echo(f"irtgate: {path}: {len(e.problems)} problem(s):", err=True)
        for p in e.problems:
            typer.echo(f"  {p}", err=True)
        raise SystemExit(2) from None


def _run_or_exit(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main``; start-up problems (busy port, bad config) end with a message, not a trace."""
    import asyncio

    try:
        asyncio.run(main)
    except (OSError, ValueError, NotImplementedError, RuntimeError) as e:
        typer.echo(f"irtgate: error: {e}", err=True)
        raise SystemExit(1) from None


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
