"""Gateway settings: one frozen value built once at start-up and passed down.

Nothing here reads the environment or files by itself; the CLI builds a :class:`Settings`
from its options, tests build one directly (usually through :meth:`Settings.replace`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from irtgate.plugins.reasoning import check_budget
from irtgate.server.decision_log import DecisionLogConfig
from irtgate.signals.request import ApiKind

MiB: Final = 1024 * 1024
ALL_APIS: Final = frozenset(ApiKind)


class UnknownModelMode(StrEnum):
    """What happens to a concrete ``model`` that no upstream declares."""

    PASSTHROUGH = "passthrough"  # forwarded untouched to the default upstream
    REJECT = "reject"  # answered with 400 model_not_found


class FailMode(StrEnum):
    """What Envoy does when irtgate is down, times out or errors."""

    CLOSED = "closed"  # JSON 503 to the client
    OPEN = "open"  # request continues unmodified to the default upstream


class DeciderKind(StrEnum):
    """Who decides for routed requests."""

    POLICY = "policy"  # a policy file (``policy_path``; None = the embedded default policy)
    STATIC = "static"  # every routed request gets ``default_choice`` (tests, smoke checks)


@dataclass(frozen=True, slots=True)
class UpstreamAuth:
    """Where an upstream's key comes from and how it is sent. Never the key itself: Envoy
    reads it (``env`` from its environment, ``file`` from disk) and injects it."""

    header: str  # e.g. authorization, x-api-key, api-key
    prefix: str = ""  # e.g. "Bearer "
    env: str | None = None
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    ca_file: Path | None = None  # None: the system CA bundle
    sni: str | None = None  # None: the URL's host (unless it is an IP address)


@dataclass(frozen=True, slots=True)
class Upstream:
    """An OpenAI/Anthropic-compatible backend; becomes one Envoy cluster of the same name.

    ``Upstream(name, host, port)`` is the old plain-HTTP form (``--upstream``); an
    upstreams file (server/upstreams.py) fills in the rest from a provider preset.
    """

    name: str
    host: str
    port: int
    models: tuple[str, ...] = ()  # concrete model names it serves (for passthrough routing)
    scheme: str = "http"
    path_prefix: str = "/v1"  # replaces the client's /v1 (e.g. /v1beta/openai for Gemini)
    provider: str = "openai-compatible"
    apis: frozenset[ApiKind] = ALL_APIS  # the request APIs it speaks
    family: str = "none"  # how its models take a reasoning budget (policies/spec.py Family)
    auth: UpstreamAuth | None = None
    # (name, value, overwrite): fixed headers; preset ones are defaults a client may set.
    headers: tuple[tuple[str, str, bool], ...] = ()
    timeout_s: float | None = None  # None: the gateway's default upstream timeout
    retries: int = 0  # on connect failure, reset, 429, 502 and 503, with back-off
    tls: UpstreamTls | None = None  # set for https (empty: system CAs, SNI = host)

    def __post_init__(self) -> None:
        # The name becomes an Envoy cluster name and a metadata value: keep it tame.
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ValueError(f"upstream name must be [A-Za-z0-9._-]+, got {self.name!r}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"upstream {self.name}: port {self.port} out of range")
        if self.scheme not in ("http", "https"):
            raise ValueError(f"upstream {self.name}: scheme must be http or https")
        if (self.tls is not None) != (self.scheme == "https"):
            raise ValueError(f"upstream {self.name}: TLS settings go with https and only https")

    def speaks(self, api: ApiKind) -> bool:
        return api in self.apis


DEMO_UPSTREAMS: Final = (
    Upstream("demo-small", "127.0.0.1", 18001, ("demo-small-1",)),
    Upstream("demo-large", "127.0.0.1", 18002, ("demo-large-1",)),
)


LOOPBACK: Final = "127.0.0.1"
WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True, slots=True)
class ServerTls:
    """TLS on irtgate's gRPC port (ext_proc, ``Decide``, health); the files are re-read when
    they change, for each new connection."""

    cert: Path  # PEM certificate chain
    key: Path  # PEM private key
    client_ca: Path | None = None  # set: clients must present a certificate it signed (mTLS)


@dataclass(frozen=True, slots=True)
class EnvoyTls:
    """How Envoy reaches irtgate's gRPC port over TLS."""

    ca: Path  # trusted to sign irtgate's certificate
    cert: Path | None = None  # Envoy's own client certificate, for mTLS
    key: Path | None = None
    # SNI and the name irtgate's certificate must carry; None: the address Envoy dials.
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("Envoy's client certificate needs both a cert and a key file")


@dataclass(frozen=True, slots=True)
class DefaultChoice:
    """What the static decider answers for every routed request."""

    model: str = "demo-small-1"
    upstream: str = "demo-small"
    budget: str | None = "low"
    # The provider family whose fields carry the budget (irtgate.plugins.reasoning.FAMILIES);
    # "native": each API's own provider's (the demo upstreams speak all three).
    family: str = "native"

    def __post_init__(self) -> None:
        check_budget(self.family, self.budget)  # BudgetError (a ValueError) says what fits


@dataclass(frozen=True, slots=True)
class Settings:
    # Bind addresses. Only the client listener is meant to be exposed; the others stay on
    # loopback unless asked (Envoy's admin has /quitquitquit, irtgate's reveals its state).
    listen_host: str = LOOPBACK  # Envoy's client listener
    grpc_host: str = LOOPBACK  # irtgate's gRPC: ext_proc + Decide + gRPC health
    admin_host: str = LOOPBACK  # irtgate's admin HTTP
    envoy_admin_host: str = LOOPBACK
    # Where Envoy reaches irtgate (gRPC and admin); None: grpc_host, or loopback if wildcard.
    irtgate_host: str | None = None
    grpc_port: int = 50051  # ext_proc + Decide + gRPC health
    admin_port: int = 9190  # irtgate's HTTP admin: /healthz /readyz /metrics
    envoy_port: int = 8080  # where clients connect (used by `up` and the Envoy config)
    envoy_admin_port: int = 9901
    grpc_tls: ServerTls | None = None  # None: plaintext gRPC
    envoy_tls: EnvoyTls | None = None  # Envoy → irtgate; needed when grpc_tls is set
    # A file holding the bearer token that irtgate's admin endpoints (other than the health
    # checks) require; None: no token.
    admin_token_file: Path | None = None
    # `model` values that ask irtgate to route; any other value is a concrete model.
    aliases: tuple[str, ...] = ("auto",)
    body_limit: int = 16 * MiB
    unknown_model: UnknownModelMode = UnknownModelMode.PASSTHROUGH
    fail_mode: FailMode = FailMode.CLOSED
    # Per ext_proc message; Envoy's 200 ms default is too tight for Python under load.
    message_timeout_s: float = 5.0
    # CPU seconds one decision's signals may spend (thread CPU time, not wall time); past
    # it scanning signals stop and report `truncated`. Protects other clients' latency.
    signal_cpu_budget_s: float = 0.1
    upstreams: tuple[Upstream, ...] = DEMO_UPSTREAMS
    # Where unrouted traffic goes: bodiless requests, unknown models in passthrough mode,
    # and everything when irtgate is down in fail-open mode.
    default_upstream: str = "demo-small"
    default_choice: DefaultChoice = field(default_factory=DefaultChoice)
    decider: DeciderKind = DeciderKind.POLICY
    policy_path: Path | None = None  # None: policies/default.yaml (embedded)
    policy_watch: bool = True  # reload the policy file when it changes
    router_path: Path | None = None  # IRT router directory; None: the shipped default router
    upstreams_path: Path | None = None  # the upstreams file ``upstreams`` came from, if any
    # sha256 hex digests of the API keys clients must present; None: no client auth.
    client_key_hashes: frozenset[str] | None = None
    client_keys_path: Path | None = None
    drain_grace_s: float = 5.0
    # One JSON line per decision (off by default); see docs/operations.md.
    decision_log: DecisionLogConfig = field(default_factory=DecisionLogConfig)

    def __post_init__(self) -> None:
        names = [u.name for u in self.upstreams]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate upstream names: {names}")
        if self.default_upstream not in names:
            raise ValueError(f"default_upstream {self.default_upstream!r} is not in {names}")
        # Only the static decider uses the default choice.
        if self.decider is DeciderKind.STATIC and self.default_choice.upstream not in names:
            raise ValueError(
                f"the default choice's upstream {self.default_choice.upstream!r} is not in {names}"
            )
        if self.body_limit <= 0:
            raise ValueError("body_limit must be positive")
        if self.message_timeout_s <= 0:
            raise ValueError("message_timeout_s must be positive")
        if self.signal_cpu_budget_s <= 0:
            raise ValueError("signal_cpu_budget_s must be positive")
        if not self.aliases:
            raise ValueError("at least one routing alias is needed")
        if self.client_key_hashes is not None and self.fail_mode is FailMode.OPEN:
            # Fail-open lets requests past a dead irtgate unchecked: keys would be optional.
            raise ValueError("client keys need --fail-mode closed")
        if self.decider is DeciderKind.STATIC and self.policy_path is not None:
            raise ValueError("a policy file and the static decider exclude each other")
        self._check_tls()

    def _check_tls(self) -> None:
        server, envoy = self.grpc_tls, self.envoy_tls
        if envoy is not None and server is not None and server.client_ca and envoy.cert is None:
            raise ValueError("irtgate asks for client certificates (mTLS): give Envoy one too")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def upstream(self, name: str) -> Upstream:
        for u in self.upstreams:
            if u.name == name:
                return u
        raise KeyError(name)

    def model_upstreams(self) -> dict[str, str]:
        """Concrete model name → upstream name (first upstream declaring it wins)."""
        out: dict[str, str] = {}
        for u in self.upstreams:
            for m in u.models:
                out.setdefault(m, u.name)
        return out

    @property
    def envoy_buffer_limit(self) -> int:
        # Above our own limit so that our 413 (JSON, counted) answers first; Envoy's own
        # 413 beyond this is mapped to the same JSON by local_reply_config.
        return self.body_limit + MiB

    @property
    def grpc_message_limit(self) -> int:
        # A buffered body plus headers and the rewritten body coming back.
        return self.envoy_buffer_limit + MiB
