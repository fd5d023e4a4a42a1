"""Envoy clusters, routes and secrets for the upstreams: Envoy does the transport.

Per upstream: one cluster (TLS with SNI and verification against the system CA bundle or
the upstream's ``ca_file``), and a route action with its host rewrite, path prefix,
timeout and retries. The client's own credentials are removed on every route; the
upstream's key is added by a credential injector running as an *upstream* HTTP filter of
its cluster, so it is added after the route's header removal and only on the way to that
upstream. The key comes from an Envoy secret that names an environment variable or a file:
neither irtgate nor the rendered config (``irtgate envoy-config``) ever holds its value.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Final

from irtgate.server.settings import Upstream
from irtgate.server.upstreams import CREDENTIAL_HEADERS, is_ip

T: Final = "type.googleapis.com/envoy.extensions"
# Where distributions keep the system bundle, when Python's own default is not a file.
CA_BUNDLES: Final = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # macOS, Alpine
    "/etc/ssl/ca-bundle.pem",  # openSUSE
)
RETRY_ON: Final = "connect-failure,refused-stream,reset,retriable-status-codes"
RETRY_STATUS: Final = (429, 502, 503)


def system_ca_bundle() -> str:
    default = ssl.get_default_verify_paths().cafile
    for path in (default, *CA_BUNDLES):
        if path and Path(path).is_file():
            return path
    raise ValueError("no system CA bundle found; give the upstream tls: {ca_file: ...}")


def secret_name(u: Upstream) -> str:
    return f"irtgate_key_{u.name}"


def credential_secrets(upstreams: tuple[Upstream, ...]) -> list[dict[str, Any]]:
    """Static generic secrets, one per upstream with a key: a variable name or a path."""
    out = []
    for u in upstreams:
        if u.auth is None:
            continue
        source = (
            {"environment_variable": u.auth.env}
            if u.auth.env is not None
            else {"filename": str(u.auth.file)}
        )
        out.append({"name": secret_name(u), "generic_secret": {"secret": source}})
    return out


def _endpoint(name: str, host: str, port: int) -> dict[str, Any]:
    return {
        "cluster_name": name,
        "endpoints": [
            {
                "lb_endpoints": [
                    {
                        "endpoint": {
                            "address": {"socket_address": {"address": host, "port_value": port}}
                        }
                    }
                ]
            }
        ],
    }


def _tls_socket(u: Upstream) -> dict[str, Any]:
    assert u.tls is not None
    ca = str(u.tls.ca_file) if u.tls.ca_file is not None else system_ca_bundle()
    # The certificate must name what we asked for: the SNI if set, else the URL's host.
    name = u.tls.sni or u.host
    san = "IP_ADDRESS" if is_ip(name) else "DNS"
    context: dict[str, Any] = {
        "common_tls_context": {
            "validation_context": {
                "trusted_ca": {"filename": ca},
                "match_typed_subject_alt_names": [{"san_type": san, "matcher": {"exact": name}}],
            }
        }
    }
    if not is_ip(name):  # an IP address is not a valid SNI
        context["sni"] = name
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {"@type": f"{T}.transport_sockets.tls.v3.UpstreamTlsContext", **context},
    }


def _credential_filters(u: Upstream) -> list[dict[str, Any]]:
    assert u.auth is not None
    return [
        {
            "name": "envoy.filters.http.credential_injector",
            "typed_config": {
                "@type": f"{T}.filters.http.credential_injector.v3.CredentialInjector",
                "overwrite": True,
                "credential": {
                    "name": "envoy.http.injected_credentials.generic",
                    "typed_config": {
                        "@type": f"{T}.http.injected_credentials.generic.v3.Generic",
                        "credential": {"name": secret_name(u)},
                        "header": u.auth.header,
                        **({"header_value_prefix": u.auth.prefix} if u.auth.prefix else {}),
                    },
                },
            },
        },
        {
            "name": "envoy.filters.http.upstream_codec",
            "typed_config": {"@type": f"{T}.filters.http.upstream_codec.v3.UpstreamCodec"},
        },
    ]


def _discovery(u: Upstream) -> str:
    if is_ip(u.host):
        return "STATIC"
    # A hosted API's name resolves to a large, changing pool: connect to one address at a
    # time. A local name (a Compose service, a headless Service) is balanced over all.
    return "LOGICAL_DNS" if u.scheme == "https" else "STRICT_DNS"


def upstream_cluster(u: Upstream, port: int | None = None) -> dict[str, Any]:
    """The cluster for ``u`` (``port`` overrides its port: tests bind upstreams to 0)."""
    port = u.port if port is None else port
    cluster: dict[str, Any] = {
        "name": u.name,
        "type": _discovery(u),
        "connect_timeout": "5s" if u.tls is not None else "1s",
        "load_assignment": _endpoint(u.name, u.host, port),
    }
    if not is_ip(u.host):
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if u.tls is not None:
        cluster["transport_socket"] = _tls_socket(u)
    if u.auth is not None:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": f"{T}.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
                "http_filters": _credential_filters(u),
            }
        }
    return cluster


def _host(u: Upstream) -> str:
    name = u.tls.sni if u.tls is not None and u.tls.sni else u.host
    default = 443 if u.scheme == "https" else 80
    return name if u.port == default else f"{name}:{u.port}"


def upstream_route(
    u: Upstream, match: dict[str, Any], name: str, default_timeout_s: float
) -> dict[str, Any]:
    """A route entry sending ``match`` to ``u``, shaped for that upstream."""
    action: dict[str, Any] = {
        "cluster": u.name,
        "timeout": f"{u.timeout_s or default_timeout_s:g}s",
    }
    if u.scheme == "https" or u.auth is not None:
        # Hosted APIs route on Host; a plain local server (the old --upstream) keeps the
        # client's, as before.
        action["host_rewrite_literal"] = _host(u)
    if u.path_prefix != "/v1":
        # The client speaks /v1/...; the upstream's base path replaces that /v1.
        action["regex_rewrite"] = {
            "pattern": {"regex": "^[^?]*?/v1/"},
            "substitution": u.path_prefix.rstrip("/") + "/",
        }
    if u.retries:
        action["retry_policy"] = {
            "retry_on": RETRY_ON,
            "retriable_status_codes": list(RETRY_STATUS),
            "num_retries": u.retries,
            "retry_back_off": {"base_interval": "0.25s", "max_interval": "4s"},
            # A 429's Retry-After wins over the exponential back-off.
            "rate_limited_retry_back_off": {
                "reset_headers": [{"name": "retry-after", "format": "SECONDS"}],
                "max_interval": "20s",
            },
        }
    route: dict[str, Any] = {
        "name": name,
        "match": match,
        "route": action,
        # The client's credentials are for the gateway, never for a provider.
        "request_headers_to_remove": sorted(CREDENTIAL_HEADERS),
    }
    if u.headers:
        route["request_headers_to_add"] = [
            {
                # Envoy reads % as a format command in header values.
                "header": {"key": k, "value": v.replace("%", "%%")},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" if overwrite else "ADD_IF_ABSENT",
            }
            for k, v, overwrite in u.headers
        ]
    return route
