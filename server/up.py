"""``irtgate up`` (what ``make run`` does): demo upstreams + irtgate + Envoy, until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from irtgate.server.app import Gateway, build
from irtgate.server.demo_upstream import DemoConfig, DemoUpstream
from irtgate.server.envoy_config import render
from irtgate.server.envoy_process import EnvoyProcess
from irtgate.server.settings import LOOPBACK, WILDCARDS, DeciderKind, Settings
from irtgate.server.upstreams import describe
from irtgate.server.workers import WorkerGroup, envoy_options

log = logging.getLogger(__name__)


def describe_decider(settings: Settings) -> str:
    if settings.decider is DeciderKind.STATIC:
        d = settings.default_choice
        budget = f"@{d.budget}, {d.family} family" if d.budget else ""
        return f"static ({d.upstream}/{d.model}{budget})"
    if settings.policy_path is None:
        return "policy policies/default.yaml (embedded)"
    watching = "hot reload on" if settings.policy_watch else "hot reload off"
    return f"policy {settings.policy_path} ({watching})"


def banner(settings: Settings, envoy: EnvoyProcess, demo: bool, workers: int = 1) -> str:
    url = f"http://{_reachable(settings.listen_host)}:{envoy.listen_port}"
    sample = {"model": settings.aliases[0], "messages": [{"role": "user", "content": "hi"}]}
    tls = "plaintext" if settings.grpc_tls is None else "TLS"
    if settings.grpc_tls is not None and settings.grpc_tls.client_ca is not None:
        tls = "mTLS"
    lines = [
        f"irtgate is up: send requests to {url} (Ctrl-C stops everything)",
        f"  irtgate gRPC {settings.grpc_host}:{settings.grpc_port} ({tls}"
        + (f", {workers} workers" if workers > 1 else "")
        + "), admin "
        f"http://{settings.admin_host}:{settings.admin_port}/metrics"
        f"{' (bearer token)' if settings.admin_token_file else ''}, "
        f"Envoy admin {envoy.admin_url}",
        "  upstreams: "
        + (
            ", ".join(f"{u.name}={u.host}:{u.port} (demo echo)" for u in settings.upstreams)
            if demo
            else describe(settings.upstreams)
        ),
        "  decider: " + describe_decider(settings),
        "  client keys: "
        + (f"required ({settings.client_keys_path})" if settings.client_key_hashes else "open"),
        "try:",
        f"  curl -si {url}/v1/chat/completions -H 'content-type: application/json' \\",
        "    -d '" + json.dumps(sample, separators=(",", ":")) + "'",
    ]
    return "\n".join(lines)


def _reachable(host: str) -> str:
    return LOOPBACK if host in WILDCARDS else host


async def up(
    settings: Settings, demo: bool = True, log_level: str = "warn", workers: int = 1
) -> None:
    # Signals are caught from the start, so a stop during start-up still cleans up.
    stop = asyncio.Event()
    with _stop_on(stop, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)):
        await _run(settings, demo, log_level, stop, workers)


async def _run(
    settings: Settings, demo: bool, log_level: str, stop: asyncio.Event, workers: int = 1
) -> None:
    gateway: Gateway | WorkerGroup = (
        build(settings) if workers == 1 else WorkerGroup(settings, workers)
    )
    upstreams = (
        [
            DemoUpstream(DemoConfig(u.name, stream_interval_s=0.5), u.host, u.port)
            for u in settings.upstreams
        ]
        if demo
        else []
    )
    envoy: EnvoyProcess | None = None
    workdir = Path(tempfile.mkdtemp(prefix="irtgate-up-"))
    try:
        for upstream in upstreams:
            await upstream.start()
        await gateway.start()
        # Envoy's access log and warnings go to our stdout.
        opts = envoy_options(settings) if workers > 1 else None
        envoy = EnvoyProcess(render(settings, opts), workdir, log_level, log_to=sys.stdout.buffer)
        await asyncio.to_thread(envoy.start)
        # Envoy has read its config: nothing is left behind even if we are killed (-9).
        shutil.rmtree(workdir, ignore_errors=True)
        print(banner(settings, envoy, demo, workers), flush=True)
        await stop.wait()
        print("stopping...", flush=True)
    finally:
        if envoy is not None:
            await asyncio.to_thread(envoy.stop)
        await gateway.stop()
        for upstream in upstreams:
            await upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _stop_on(event: asyncio.Event, signals: tuple[signal.Signals, ...]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in signals:
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, event.set)
    try:
        yield
    finally:
        for sig in signals:
            with suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
