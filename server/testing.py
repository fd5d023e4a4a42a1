"""A reusable end-to-end stack: a real Envoy + irtgate + demo upstreams on free ports.

Typical use in a test module (one stack per module keeps the tier fast)::

    from irtgate.server.testing import running_stack

    @pytest.fixture(scope="module")
    def stack(tmp_path_factory):
        with running_stack(tmp_path_factory.mktemp("e2e"), decider=MyDecider()) as s:
            yield s

    def test_x(stack):
        r = httpx.post(stack.url + "/v1/chat/completions", json={...})

irtgate runs in process (any :class:`~irtgate.policies.outcome.Decider`, or ``load_decider``
for ``settings.policy_path``), as a subprocess (``irtgate serve``, the real CLI), or not at
all (``processor="none"``: Envoy points at a dead port, for fail-mode tests). In-process
pieces run on a private event loop in a background thread, so tests stay synchronous.
``tests/e2e/conftest.py`` attaches Envoy's log to the report of a failing test only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from prometheus_client import CollectorRegistry

from irtgate.policies.outcome import Decider
from irtgate.server.app import Gateway, build
from irtgate.server.demo_upstream import DemoConfig, DemoUpstream
from irtgate.server.envoy_config import EnvoyOptions, render
from irtgate.server.envoy_process import EnvoyProcess
from irtgate.server.settings import DeciderKind, MiB, Settings

REPO = Path(__file__).resolve().parents[2]
Processor = Literal["inprocess", "subprocess", "none"]
T = TypeVar("T")

_ACTIVE: list[Stack] = []


def active_stacks() -> list[Stack]:
    """Stacks currently running (the conftest prints their logs when a test fails)."""
    return list(_ACTIVE)


def free_port() -> int:
    """A port that was free a moment ago (only for things that cannot bind port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BackgroundLoop:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class Stack:
    name: str
    settings: Settings  # as irtgate sees it (real ports filled in)
    envoy: EnvoyProcess
    upstream_ports: dict[str, int]
    gateway: Gateway | None = None
    processor: subprocess.Popen[bytes] | None = None
    processor_log: Path | None = None
    _loop: BackgroundLoop | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Envoy's listener: where clients send requests."""
        return self.envoy.url

    @property
    def admin_url(self) -> str:
        """irtgate's admin HTTP (``/healthz``, ``/readyz``, ``/metrics``)."""
        return f"http://127.0.0.1:{self.settings.admin_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.settings.grpc_port}"

    @property
    def registry(self) -> CollectorRegistry:
        if self.gateway is None:
            raise RuntimeError("metrics registry is only available for in-process irtgate")
        return self.gateway.registry

    def metric(self, name: str, **labels: str) -> float:
        """A sample from the in-process registry (0.0 when never incremented)."""
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def upstream(self, name: str) -> DemoUpstream:
        """The stand-in upstream ``name`` (its ``state`` records requests, queues faults)."""
        for up in _UPSTREAMS.get(id(self), []):
            if up.config.name == name:
                return up
        raise KeyError(name)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop that hosts irtgate and the upstreams."""
        if self._loop is None:
            raise RuntimeError("no background loop")
        return self._loop.run(coro)

    def logs(self) -> str:
        out = f"--- envoy ({self.name}) ---\n{self.envoy.log_tail()}"
        if self.processor_log is not None and self.processor_log.exists():
            text = self.processor_log.read_text(errors="replace")[-20000:]
            out += f"\n--- irtgate serve ({self.name}) ---\n{text}"
        return out

    def stop_processor(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the ``irtgate serve`` subprocess; its exit code."""
        if self.processor is None:
            return None
        if self.processor.poll() is None:
            self.processor.send_signal(signal.SIGTERM)
            try:
                self.processor.wait(timeout)
            except subprocess.TimeoutExpired:
                self.processor.kill()
                self.processor.wait()
        return self.processor.returncode

    def restart_processor(self) -> None:
        """Start ``irtgate serve`` again on the same ports (after a stop or a kill)."""
        if self.processor is None or self.processor_log is None:
            raise RuntimeError("only a subprocess irtgate can be restarted")
        if self.processor.poll() is None:
            raise RuntimeError("irtgate serve is still running")
        self.processor = _start_serve(self.settings, self.processor_log)

    def close(self) -> None:
        self.envoy.stop()
        self.stop_processor()
        if self._loop is not None:
            if self.gateway is not None:
                self._loop.run(self.gateway.stop(grace=0.5))
            self._loop.run(_stop_upstreams(self))
            self._loop.close()
            self._loop = None
        if self in _ACTIVE:
            _ACTIVE.remove(self)


_UPSTREAMS: dict[int, list[DemoUpstream]] = {}


async def _stop_upstreams(stack: Stack) -> None:
    for upstream in _UPSTREAMS.pop(id(stack), []):
        await upstream.stop()


def stack_settings(**changes: Any) -> Settings:
    """Default settings with every port 0 (to be bound by whoever starts the piece).

    The decider is the static one unless ``decider=DeciderKind.POLICY`` (with or without a
    ``policy_path``) is passed: most gateway tests want a decision they can predict.
    """
    base = Settings(
        grpc_port=0, admin_port=0, envoy_port=0, envoy_admin_port=0, decider=DeciderKind.STATIC
    )
    return base.replace(**changes) if changes else base


def start_stack(
    workdir: Path,
    settings: Settings | None = None,
    *,
    decider: Decider | None = None,
    processor: Processor = "inprocess",
    stream_events: int = 4,
    stream_interval_s: float = 0.2,
    extproc_enabled: bool = True,
    name: str = "stack",
    envoy_transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    upstream_tls: Mapping[str, ssl.SSLContext] | None = None,
    upstream_keys: Mapping[str, tuple[str, str]] | None = None,
    envoy_env: Mapping[str, str] | None = None,
) -> Stack:
    """Start demo upstreams, irtgate and Envoy; raise (after cleaning up) if any fails.

    ``envoy_transform`` edits the rendered bootstrap before Envoy starts (to run the routing
    another proxy would configure, e.g. the Kubernetes overlays' header routes).
    ``upstream_tls``: upstreams that serve HTTPS with this context (stand-ins for hosted
    APIs); ``upstream_keys``: the (header, value) each stand-in insists on, like a
    provider; ``envoy_env``: Envoy's environment (where ``auth: {env: ...}`` keys live).
    """
    settings = settings or stack_settings()
    workdir.mkdir(parents=True, exist_ok=True)
    loop = BackgroundLoop()
    tls, keys = upstream_tls or {}, upstream_keys or {}
    upstreams = [
        DemoUpstream(
            DemoConfig(u.name, stream_events, stream_interval_s, keys.get(u.name)),
            "127.0.0.1",
            0,
            tls.get(u.name),
        )
        for u in settings.upstreams
    ]
    stack: Stack | None = None
    try:
        for up in upstreams:
            loop.run(up.start())
        ports = {u.config.name: u.port for u in upstreams}
        settings = settings.replace(
            upstreams=tuple(
                dataclasses.replace(u, host="127.0.0.1", port=ports[u.name])
                for u in settings.upstreams
            )
        )
        gateway = None
        proc = None
        proc_log = None
        if processor == "inprocess":
            # Without a decider: the one the settings ask for, wired to the gateway's metrics.
            gateway = build(settings) if decider is None else Gateway(settings, decider)
            loop.run(gateway.start())
            settings = settings.replace(grpc_port=gateway.grpc_port, admin_port=gateway.admin_port)
        elif processor == "subprocess":
            settings = settings.replace(grpc_port=free_port(), admin_port=free_port())
            proc_log = workdir / "irtgate-serve.log"
            proc = _start_serve(settings, proc_log)
        else:  # nothing listens there: Envoy sees a dead processor
            settings = settings.replace(grpc_port=free_port(), admin_port=free_port())
        opts = EnvoyOptions(
            listen_port=0,
            admin_port=0,
            extproc_port=settings.grpc_port,
            irtgate_admin_port=settings.admin_port,
            extproc_enabled=extproc_enabled,
        )
        bootstrap = render(settings, opts)
        if envoy_transform is not None:
            bootstrap = envoy_transform(bootstrap)
        envoy = EnvoyProcess(bootstrap, workdir / "envoy", die_with_parent=True, env=envoy_env)
        stack = Stack(name, settings, envoy, ports, gateway, proc, proc_log, loop)
        _UPSTREAMS[id(stack)] = upstreams
        _ACTIVE.append(stack)
        envoy.start()
        return stack
    except BaseException:
        if stack is not None:
            stack.close()
        else:
            for up in upstreams:
                loop.run(up.stop())
            loop.close()
        raise


@contextmanager
def running_stack(
    workdir: Path, settings: Settings | None = None, **kwargs: Any
) -> Iterator[Stack]:
    stack = start_stack(workdir, settings, **kwargs)
    try:
        yield stack
    finally:
        stack.close()


def _start_serve(
    settings: Settings, log_path: Path, timeout: float = 30.0
) -> subprocess.Popen[bytes]:
    """``irtgate serve`` with these settings, waited on until ``/readyz`` answers 200."""
    args = [
        sys.executable, "-m", "irtgate.server.cli", "serve",
        "--grpc-host", settings.grpc_host,
        "--admin-host", settings.admin_host,
        "--grpc-port", str(settings.grpc_port),
        "--admin-port", str(settings.admin_port),
        "--body-limit-mib", repr(settings.body_limit / MiB),
        "--unknown-model", settings.unknown_model.value,
        "--fail-mode", settings.fail_mode.value,
        "--message-timeout", repr(settings.message_timeout_s),
        "--default-upstream", settings.default_upstream,
        "--log-level", "info",
    ]  # fmt: skip
    for alias in settings.aliases:
        args += ["--alias", alias]
    for u in settings.upstreams:
        args += ["--upstream", f"{u.name}={u.host}:{u.port}" + "".join("," + m for m in u.models)]
    if settings.decider is DeciderKind.STATIC:
        d = settings.default_choice
        args += ["--route", f"{d.upstream}/{d.model}" + (f"@{d.budget}" if d.budget else "")]
        args += ["--route-family", d.family]
    if settings.policy_path is not None:
        args += ["--policy", str(settings.policy_path)]
    if not settings.policy_watch:
        args += ["--no-watch"]
    if settings.router_path is not None:
        args += ["--router", str(settings.router_path)]
    if settings.grpc_tls is not None:
        args += ["--grpc-tls-cert", str(settings.grpc_tls.cert)]
        args += ["--grpc-tls-key", str(settings.grpc_tls.key)]
        if settings.grpc_tls.client_ca is not None:
            args += ["--grpc-tls-client-ca", str(settings.grpc_tls.client_ca)]
    if settings.admin_token_file is not None:
        args += ["--admin-token-file", str(settings.admin_token_file)]
    if settings.client_keys_path is not None:
        args += ["--client-keys", str(settings.client_keys_path)]
    dl = settings.decision_log
    if dl.mode != "off":
        args += ["--decision-log", dl.mode, "--decision-log-sample", repr(dl.sample)]
        args += ["--decision-log-max-mib", repr(dl.max_bytes / MiB)]
        args += ["--decision-log-backups", str(dl.backups)]
        if dl.path is not None:
            args += ["--decision-log-file", str(dl.path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = log_path.open("ab")  # a restart appends to the same log
    proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{settings.admin_port}/readyz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"irtgate serve exited with {proc.returncode}:\n"
                + log_path.read_text(errors="replace")[-5000:]
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("irtgate serve did not become ready:\n" + log_path.read_text()[-5000:])
