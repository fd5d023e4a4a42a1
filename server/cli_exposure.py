"""CLI options for what the gateway exposes: bind addresses, TLS on gRPC, the admin token.

Kept apart from ``cli_gateway`` (the commands) so that the option list stays readable there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from irtgate.server.settings import EnvoyTls, ServerTls, Settings

_D = Settings()
_FILE = {"exists": True, "dir_okay": False, "readable": True}

ListenHostOpt = Annotated[
    str, typer.Option(help="Address Envoy's client listener binds to (0.0.0.0: all).")
]
GrpcHostOpt = Annotated[
    str, typer.Option(help="Address irtgate's gRPC port (ext_proc, Decide) binds to.")
]
AdminHostOpt = Annotated[str, typer.Option(help="Address irtgate's admin HTTP binds to.")]
EnvoyAdminHostOpt = Annotated[str, typer.Option(help="Address Envoy's admin binds to.")]
IrtgateHostOpt = Annotated[
    str | None,
    typer.Option(help="Host Envoy connects to for irtgate (default: --grpc-host, or loopback)."),
]
GrpcCertOpt = Annotated[
    Path | None, typer.Option(help="PEM certificate: serve gRPC over TLS.", **_FILE)
]
GrpcKeyOpt = Annotated[Path | None, typer.Option(help="PEM key for --grpc-tls-cert.", **_FILE)]
GrpcClientCaOpt = Annotated[
    Path | None,
    typer.Option(help="PEM CA: gRPC clients must present a certificate it signed.", **_FILE),
]
EnvoyCaOpt = Annotated[
    Path | None,
    typer.Option(help="PEM CA Envoy trusts for irtgate's certificate (TLS to irtgate).", **_FILE),
]
EnvoyCertOpt = Annotated[
    Path | None, typer.Option(help="Envoy's client certificate for irtgate (mTLS).", **_FILE)
]
EnvoyKeyOpt = Annotated[Path | None, typer.Option(help="Key for --envoy-tls-cert.", **_FILE)]
EnvoyServerNameOpt = Annotated[
    str | None,
    typer.Option(help="Name irtgate's certificate must carry (default: the host dialled)."),
]
AdminTokenOpt = Annotated[
    Path | None,
    typer.Option(help="File with the bearer token the admin endpoints require.", **_FILE),
]


def exposure_kwargs(
    *,
    listen_host: str = _D.listen_host,
    grpc_host: str = _D.grpc_host,
    admin_host: str = _D.admin_host,
    envoy_admin_host: str = _D.envoy_admin_host,
    irtgate_host: str | None = None,
    grpc_tls_cert: Path | None = None,
    grpc_tls_key: Path | None = None,
    grpc_tls_client_ca: Path | None = None,
    envoy_tls_ca: Path | None = None,
    envoy_tls_cert: Path | None = None,
    envoy_tls_key: Path | None = None,
    envoy_tls_server_name: str | None = None,
    admin_token_file: Path | None = None,
) -> dict[str, Any]:
    """The :class:`Settings` fields these options set."""
    out: dict[str, Any] = {
        "listen_host": listen_host,
        "grpc_host": grpc_host,
        "admin_host": admin_host,
        "envoy_admin_host": envoy_admin_host,
        "irtgate_host": irtgate_host,
        "admin_token_file": admin_token_file,
    }
    if grpc_tls_cert is not None or grpc_tls_key is not None:
        if grpc_tls_cert is None or grpc_tls_key is None:
            raise typer.BadParameter("--grpc-tls-cert and --grpc-tls-key go together")
        out["grpc_tls"] = ServerTls(grpc_tls_cert, grpc_tls_key, grpc_tls_client_ca)
    elif grpc_tls_client_ca is not None:
        raise typer.BadParameter("--grpc-tls-client-ca needs --grpc-tls-cert and --grpc-tls-key")
    if envoy_tls_ca is not None:
        try:
            out["envoy_tls"] = EnvoyTls(
                envoy_tls_ca, envoy_tls_cert, envoy_tls_key, envoy_tls_server_name
            )
        except ValueError as e:
            raise typer.BadParameter(str(e)) from e
    elif envoy_tls_cert or envoy_tls_key or envoy_tls_server_name:
        raise typer.BadParameter("--envoy-tls-cert/-key/-server-name need --envoy-tls-ca")
    return out
