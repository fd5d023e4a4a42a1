"""Build and run irtgate: ext_proc + Decide + gRPC health on one port, admin HTTP on another.

:class:`Gateway` is what ``irtgate serve`` runs and what tests and ``irtgate up`` start in
process (ports may be 0; the bound ports are read back after :meth:`Gateway.start`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import threading
from contextlib import suppress

import grpc
from aiohttp import web
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as extproc_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from irtgate.policies.outcome import Background, Decider
from irtgate.proto import decide_pb2_grpc
from irtgate.server.admin import admin_app, read_token
from irtgate.server.core import GatewayCore
from irtgate.server.decide_service import DecideService
from irtgate.server.deciders import check_upstreams
from irtgate.server.decision_log import DecisionLog
from irtgate.server.extproc import ExternalProcessor
from irtgate.server.metrics import Metrics
from irtgate.server.settings import Settings
from irtgate.server.tls import CertificateFiles, server_credentials

log = logging.getLogger(__name__)

SERVICES = (
    "envoy.service.ext_proc.v3.ExternalProcessor",
    "irtgate.v1.Decide",
)


class Gateway:
    def __init__(
        self,
        settings: Settings,
        decider: Decider,
        registry: CollectorRegistry | None = None,
        metrics: Metrics | None = None,
        *,
        admin: bool = True,
        reuse_port: bool = False,
    ) -> None:
        """``metrics``, if given, must have been created on ``registry`` (see :func:`build`).

        ``admin=False, reuse_port=True``: one of ``serve --workers N``'s processes (see
        :mod:`irtgate.server.workers`), which share the gRPC port and leave admin HTTP to
        the supervisor.
        """
        check_upstreams(settings, decider)
        if metrics is not None and registry is None:
            raise ValueError("pass the registry the metrics were created on")
        self.settings = settings
        self.decider = decider
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = metrics if metrics is not None else Metrics.create(self.registry)
        counts = self.metrics.decision_log
        self.decision_log = DecisionLog(
            settings.decision_log,
            on_write=counts.labels("written").inc,
            on_drop=counts.labels("dropped").inc,
            on_error=counts.labels("error").inc,
        )
        logged = self.decision_log if self.decision_log.enabled else None
        self.core = GatewayCore(settings, decider, self.metrics, logged)
        # Deciders with background work (a policy file watcher) start and stop with us.
        self._background = decider if isinstance(decider, Background) else None
        self.grpc_port = settings.grpc_port
        self.admin_port = settings.admin_port
        self.admin = admin
        self.reuse_port = reuse_port
        self._ready = False
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._runner: web.AppRunner | None = None
        self.certificates: CertificateFiles | None = None  # with TLS: the files in force

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        if self._background is not None:
            await self._background.start()
        self.decision_log.start()
        limit = self.settings.grpc_message_limit
        server = grpc.aio.server(
            options=[
                # grpcio's 4 MiB default would turn large agent requests into 500s.
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # A second irtgate on the same port must fail, not silently share traffic;
                # only the workers of one `serve --workers N` share it on purpose.
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
            ]
        )
        extproc_grpc.add_ExternalProcessorServicer_to_server(ExternalProcessor(self.core), server)
        decide_pb2_grpc.add_DecideServicer_to_server(DecideService(self.core), server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        self.grpc_port = self._bind_grpc(server)
        await server.start()
        self._server = server

        token = read_token(self.settings.admin_token_file) if self.admin else None
        if self.admin:
            app = admin_app(self.registry, lambda: self._ready, token=token)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.settings.admin_host, self.settings.admin_port)
            await site.start()
            self._runner = runner
            self.admin_port = int(runner.addresses[0][1])

        for name in ("", *SERVICES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._ready = True
        log.info(
            "irtgate serving: gRPC %s:%d (%s), admin http://%s:%d%s",
            self.settings.grpc_host,
            self.grpc_port,
            _describe_tls(self.settings),
            self.settings.admin_host,
            self.admin_port,
            " (bearer token)" if token else "",
        )

    def _bind_grpc(self, server: grpc.aio.Server) -> int:
        address = f"{_host_for_grpc(self.settings.grpc_host)}:{self.settings.grpc_port}"
        tls = self.settings.grpc_tls
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            self.certificates = CertificateFiles(tls)
            port = server.add_secure_port(address, server_credentials(self.certificates))
        if port == 0:
            raise OSError(f"cannot bind gRPC on {address}")
        return int(port)

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new work, let open streams finish (up to ``grace`` s), then close."""
        self._ready = False
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.settings.drain_grace_s if grace is None else grace)
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._background is not None:
            await self._background.stop()
        # Last: the drained streams' records are written before the writer stops.
        await asyncio.to_thread(self.decision_log.close)


def _host_for_grpc(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address needs brackets


def _describe_tls(settings: Settings) -> str:
    if settings.grpc_tls is None:
        return "plaintext"
    return "mTLS" if settings.grpc_tls.client_ca is not None else "TLS"


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def build(
    settings: Settings, registry: CollectorRegistry | None = None, **options: bool
) -> Gateway:
    """The gateway with the decider ``settings`` ask for, wired to its metrics.

    Loads everything heavy (policy, router, encoder) now, before anything listens.
    ``options``: :class:`Gateway`'s keyword-only ones (``admin``, ``reuse_port``).
    """
    from irtgate.server.deciders import load_decider

    if settings.client_key_hashes is None and not _loopback(settings.listen_host):
        log.warning(
            "listening on %s with no --client-keys: anyone who reaches Envoy can use the "
            "upstreams' keys",
            settings.listen_host,
        )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics.create(registry)
    return Gateway(settings, load_decider(settings, metrics), registry, metrics, **options)


# After the drain, what may still run: closing sockets, the decider's stop, logging.
EXIT_MARGIN_S = 1.0


def exit_after(seconds: float) -> threading.Timer:
    """End the process in ``seconds`` whatever is running, unless it has exited by then.

    Decisions are cancelled when the server stops (their workers check the request's
    budget), but a worker stuck inside one long C call (a regex, a model) cannot be
    interrupted, and Python waits for its worker threads at exit. A daemon timer does not
    keep the process alive, so it only fires when something else does.
    """

    def hard_exit() -> None:
        log.error("still running %.1f s after the stop signal; exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()
    return timer


async def serve(settings: Settings) -> None:
    """``irtgate serve``: run until SIGINT/SIGTERM, then drain; gone within the drain time
    (plus :data:`EXIT_MARGIN_S`) whatever is running."""
    gateway = build(settings)
    await gateway.start()
    try:
        await wait_for_signal()
    finally:
        exit_after(settings.drain_grace_s + EXIT_MARGIN_S)
        log.info("shutting down; draining streams for up to %.1f s", settings.drain_grace_s)
        await gateway.stop()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
