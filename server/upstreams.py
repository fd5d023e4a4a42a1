"""The upstreams file: where requests go, how to reach each upstream and with which key.

A YAML file beside the policy (``--upstreams``), validated as strictly as a policy: unknown
keys, wrong types, bad URLs, a missing key source and TLS on ``http://`` are all errors,
reported together, each at ``file:line: path``. A ``provider`` preset fills in how the key
is sent, fixed headers, the APIs the upstream speaks and its reasoning-budget family.

Keys are never written in the file and never read by irtgate: ``auth`` names an
environment variable or a file, which Envoy reads and injects on the way out (see
server/envoy_upstreams.py). irtgate only checks at start-up that the source exists.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from irtgate.plugins.reasoning import FAMILIES
from irtgate.policies.errors import PathT, PolicyError, Problem
from irtgate.policies.loader import Source, parse_yaml, validate_as
from irtgate.policies.spec import UpstreamName
from irtgate.server.settings import Upstream, UpstreamAuth, UpstreamTls
from irtgate.signals.request import ApiKind

ApiName = Literal["chat", "responses", "messages"]
API_NAMES: Final[dict[str, ApiKind]] = {
    "chat": ApiKind.CHAT,
    "responses": ApiKind.RESPONSES,
    "messages": ApiKind.MESSAGES,
}
ProviderName = Literal[
    "openai", "anthropic", "gemini", "azure-openai", "vllm", "ollama", "openai-compatible"
]
# Families a preset's upstream also takes, beside its own, "native" (each API its own
# provider's dialect), "max_tokens" and "none": Gemini's endpoint reads reasoning_effort too.
COMPATIBLE_FAMILIES: Final[dict[str, frozenset[str]]] = {"gemini": frozenset({"openai"})}
# Headers that carry credentials: they come from `auth`, never from `headers`.
CREDENTIAL_HEADERS: Final = frozenset({"authorization", "x-api-key", "api-key"})
ANTHROPIC_VERSION: Final = "2023-06-01"


@dataclass(frozen=True, slots=True)
class Preset:
    auth_header: str
    auth_prefix: str
    key_required: bool
    apis: tuple[ApiName, ...]
    family: str
    headers: tuple[tuple[str, str], ...] = ()


PRESETS: Final[dict[str, Preset]] = {
    "openai": Preset("authorization", "Bearer ", True, ("chat", "responses"), "openai"),
    "anthropic": Preset(
        "x-api-key",
        "",
        True,
        ("messages",),
        "anthropic",
        (("anthropic-version", ANTHROPIC_VERSION),),
    ),
    # Gemini's OpenAI-compatible endpoint (.../v1beta/openai).
    "gemini": Preset("authorization", "Bearer ", True, ("chat",), "gemini"),
    "azure-openai": Preset("api-key", "", True, ("chat", "responses"), "openai"),
    # Self-hosted servers: a key is optional (vLLM's --api-key), reasoning is model-specific.
    "vllm": Preset("authorization", "Bearer ", False, ("chat", "responses"), "none"),
    "ollama": Preset("authorization", "Bearer ", False, ("chat",), "none"),
    "openai-compatible": Preset("authorization", "Bearer ", False, ("chat",), "none"),
}

_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)
HeaderName = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9-]+$")]
Seconds = Annotated[float, Field(gt=0, le=3600, strict=False)]


class _Model(BaseModel):
    model_config = _CONFIG


class AuthSpec(_Model):
    """Where the key is: exactly one of ``env`` or ``file``. Never the key itself."""

    env: Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    file: StrictStr | None = Field(default=None, min_length=1)
    header: HeaderName | None = Field(default=None, description="Overrides the preset's header.")
    prefix: StrictStr | None = Field(default=None, description="Overrides e.g. 'Bearer '.")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"key", "value", "api_key", "token"} & set(data):
            raise ValueError("a key is never written in the file: use env or file")
        return data

    @model_validator(mode="after")
    def _one_source(self) -> AuthSpec:
        if (self.env is None) == (self.file is None):
            raise ValueError("auth takes exactly one of env (a variable name) or file (a path)")
        return self


class TlsSpec(_Model):
    ca_file: StrictStr | None = Field(default=None, min_length=1)
    sni: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9.-]{1,253}$")] | None = None


class UpstreamSpec(_Model):
    """One upstream, keyed by its name (an Envoy cluster name and a policy's upstream)."""

    url: StrictStr = Field(description="scheme://host[:port][/path prefix replacing /v1]")
    provider: ProviderName = "openai-compatible"
    auth: AuthSpec | None = None
    apis: list[ApiName] | None = Field(default=None, description="Overrides the preset's.")
    family: StrictStr | None = Field(
        default=None,
        description="Overrides the preset's (a family of plugins/reasoning.py).",
        json_schema_extra={"enum": list(FAMILIES)},
    )

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str | None) -> str | None:
        if value is not None and value not in FAMILIES:
            raise ValueError(f"unknown family {value!r}; one of {', '.join(FAMILIES)}")
        return value

    models: list[Annotated[StrictStr, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, description="Concrete model names served (for passthrough)."
    )
    timeout: Seconds = 300.0
    retries: Annotated[StrictInt, Field(ge=0, le=10)] = 2
    tls: TlsSpec | None = None
    headers: dict[HeaderName, StrictStr] = Field(default_factory=dict)


def _all_api_names() -> list[ApiName]:
    return ["chat", "responses", "messages"]


class UpstreamsFile(_Model):
    version: Literal[1] = 1
    default: UpstreamName | None = Field(
        default=None, description="Upstream for unrouted traffic (default: the first)."
    )
    apis: list[ApiName] = Field(
        default_factory=_all_api_names,
        description="APIs the gateway serves.",
    )
    # Entries are validated one by one so that every upstream's problems are reported.
    upstreams: dict[UpstreamName, Any] = Field(min_length=1)


# For rendering Envoy's config where the keys are not (a CI job, a Helm chart): the keys
# must be in *Envoy's* environment and on *its* disk, which is checked when Envoy starts.
SKIP_KEY_CHECKS: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class UpstreamsConfig:
    file: str
    upstreams: tuple[Upstream, ...]
    default: str


def load_upstreams(path: Path, environ: Mapping[str, str] | None = None) -> UpstreamsConfig:
    """Read and check an upstreams file; raises PolicyError listing every problem.

    ``environ``: where ``auth: {env: ...}`` keys must be (default: ours, since ``up`` starts
    Envoy with it); ``{}`` with :data:`SKIP_KEY_CHECKS` checks nothing about the keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError([Problem(str(path), None, (), f"cannot read: {e}")]) from None
    return parse_upstreams(text, str(path), environ, base=path.parent)


def parse_upstreams(
    text: str, file: str, environ: Mapping[str, str] | None = None, base: Path | None = None
) -> UpstreamsConfig:
    src = parse_yaml(text, file)
    doc = validate_as(src, UpstreamsFile, "an upstreams file is a mapping (version, upstreams)")
    env = os.environ if environ is None else environ
    check_keys = env is not SKIP_KEY_CHECKS
    problems: list[Problem] = []
    out: list[Upstream] = []
    served = {API_NAMES[a] for a in doc.apis}
    for name, raw in doc.upstreams.items():
        where: PathT = ("upstreams", name)
        sub = Source(file, raw, {p[2:]: n for p, n in src.lines.items() if p[:2] == where})
        try:
            spec = validate_as(sub, UpstreamSpec, "an upstream is a mapping (url, provider, ...)")
        except PolicyError as e:
            problems += [Problem(p.file, p.line, (*where, *p.path), p.message) for p in e.problems]
            continue
        found: list[tuple[PathT, str]] = []
        up = _build(name, spec, env, base or Path.cwd(), served, found, check_keys)
        problems += [src.problem((*where, *p), msg) for p, msg in found]
        if up is not None and not found:
            out.append(up)
    default = doc.default or next(iter(doc.upstreams))
    if default not in doc.upstreams:
        problems.append(src.problem(("default",), f"upstream {default!r} is not declared"))
    if problems:
        raise PolicyError(problems)
    return UpstreamsConfig(file, tuple(out), default)


def _build(
    name: str,
    spec: UpstreamSpec,
    env: Mapping[str, str],
    base: Path,
    served: set[ApiKind],
    found: list[tuple[PathT, str]],
    check_keys: bool = True,
) -> Upstream | None:
    preset = PRESETS[spec.provider]
    url = urlsplit(spec.url)
    host = url.hostname or ""
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        found.append((("url",), "the port is not a number in 1-65535"))
        return None
    if url.scheme not in ("http", "https"):
        found.append((("url",), f"scheme must be http or https, got {url.scheme or 'none'!r}"))
    if not host:
        found.append((("url",), "the URL has no host"))
    if url.username or url.password:
        found.append((("url",), "credentials in the URL: put the key in auth (env or file)"))
    if url.query or url.fragment:
        found.append((("url",), "the URL takes no query or fragment"))
    if spec.tls is not None and url.scheme != "https":
        found.append((("tls",), "tls is only for https:// URLs"))
    bad = sorted(h for h in spec.headers if h.lower() in CREDENTIAL_HEADERS)
    if bad:
        found.append((("headers",), f"{', '.join(bad)}: credentials go in auth, never inline"))
    auth = _auth(spec, preset, env if check_keys else None, base, found)
    apis = tuple(spec.apis) if spec.apis is not None else preset.apis
    kinds = frozenset(API_NAMES[a] for a in apis)
    if not kinds & served:
        wanted = ", ".join(a for a in API_NAMES if API_NAMES[a] in served)
        found.append(
            (("apis",) if spec.apis is not None else ("provider",),
             f"speaks none of the APIs in use ({wanted})")
        )  # fmt: skip
    tls = None
    if url.scheme == "https":
        tls = UpstreamTls()
        if spec.tls is not None:
            ca = _path(spec.tls.ca_file, base) if spec.tls.ca_file else None
            if ca is not None and not ca.is_file():
                found.append((("tls", "ca_file"), f"no such file: {ca}"))
            tls = UpstreamTls(ca, spec.tls.sni)
    if found:
        return None
    headers = tuple((k.lower(), v, False) for k, v in preset.headers)
    headers += tuple((k.lower(), v, True) for k, v in spec.headers.items())
    return Upstream(
        name=name,
        host=host,
        port=port,
        models=tuple(spec.models),
        scheme=url.scheme,
        path_prefix=url.path.rstrip("/") or "/v1",
        provider=spec.provider,
        apis=kinds,
        family=spec.family or preset.family,
        auth=auth,
        headers=headers,
        timeout_s=float(spec.timeout),
        retries=spec.retries,
        tls=tls,
    )


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _auth(
    spec: UpstreamSpec,
    preset: Preset,
    env: Mapping[str, str] | None,  # None: the key sources are not checked
    base: Path,
    found: list[tuple[PathT, str]],
) -> UpstreamAuth | None:
    a = spec.auth
    if a is None:
        if preset.key_required:
            found.append((("auth",), f"provider {spec.provider} needs a key: auth: {{env: VAR}}"))
        return None
    header = (a.header or preset.auth_header).lower()
    prefix = preset.auth_prefix if a.prefix is None else a.prefix
    if a.env is not None:
        if env is not None and not env.get(a.env, "").strip():
            found.append((("auth", "env"), f"environment variable {a.env} is not set or empty"))
        return UpstreamAuth(header, prefix, env=a.env)
    assert a.file is not None
    path = _path(a.file, base)
    problem = _key_file_problem(path) if env is not None else None
    if problem:
        found.append((("auth", "file"), problem))
    return UpstreamAuth(header, prefix, file=path)


def _key_file_problem(path: Path) -> str | None:
    """Envoy sends the file's bytes as they are, so a trailing newline would break the
    header. Only the size and the last byte are looked at; the key is never read here."""
    try:
        size = path.stat().st_size
        if size == 0:
            return f"key file {path} is empty"
        with path.open("rb") as f:
            f.seek(size - 1)
            if f.read(1) in (b"\n", b"\r"):
                return f"key file {path} ends with a newline (write it with printf '%s')"
    except OSError as e:
        return f"cannot read key file {path}: {e.strerror or e}"
    return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def describe(upstreams: tuple[Upstream, ...]) -> str:
    """One line per upstream for banners: name, URL and provider; never the key."""
    parts = []
    for u in upstreams:
        key = ""
        if u.auth is not None:
            key = f", key from ${u.auth.env}" if u.auth.env else ", key from a file"
        url = f"{u.scheme}://{u.host}:{u.port}{u.path_prefix}"
        parts.append(f"{u.name}={url} ({u.provider}{key})")
    return ", ".join(parts)
