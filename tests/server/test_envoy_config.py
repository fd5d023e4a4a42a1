"""The rendered Envoy bootstrap: structure, the committed copy, and `envoy --mode validate`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from irtgate.server.envoy_config import EnvoyOptions, envoy_binary, render, render_yaml
from irtgate.server.settings import EnvoyTls, FailMode, MiB, ServerTls, Settings

REPO = Path(__file__).resolve().parents[2]


def _hcm(cfg: dict[str, Any]) -> dict[str, Any]:
    listener = cfg["static_resources"]["listeners"][0]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def _extproc(cfg: dict[str, Any]) -> dict[str, Any]:
    (f,) = [f for f in _hcm(cfg)["http_filters"] if f["name"] == "envoy.filters.http.ext_proc"]
    tc: dict[str, Any] = f["typed_config"]
    return tc


def test_defaults() -> None:
    s = Settings()
    cfg = render(s)
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    assert listener["per_connection_buffer_limit_bytes"] > s.body_limit >= 8 * MiB
    ep = _extproc(cfg)
    assert ep["failure_mode_allow"] is False
    assert ep["status_on_error"] == {"code": 503}
    assert ep["message_timeout"] == "5s"
    mode = ep["processing_mode"]
    assert (mode["request_header_mode"], mode["request_body_mode"]) == ("SEND", "BUFFERED")
    assert (mode["response_header_mode"], mode["response_body_mode"]) == ("SKIP", "NONE")
    assert ep["grpc_service"]["envoy_grpc"]["max_receive_message_length"] >= s.envoy_buffer_limit
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert set(clusters) == {"irtgate_extproc", "irtgate_admin", "demo-small", "demo-large"}
    assert "typed_extension_protocol_options" in clusters["irtgate_extproc"]


def test_routes_match_metadata_not_headers() -> None:
    routes = _hcm(render(Settings()))["route_config"]["virtual_hosts"][0]["routes"]
    health = [r for r in routes if r["match"].get("path") in ("/healthz", "/readyz")]
    assert len(health) == 2
    assert all(r["typed_per_filter_config"]["envoy.filters.http.ext_proc"]["disabled"]
               for r in health)  # fmt: skip
    for r in routes:
        assert "headers" not in r["match"]
    by_upstream = {r["route"]["cluster"]: r for r in routes if "dynamic_metadata" in r["match"]}
    assert set(by_upstream) == {"demo-small", "demo-large"}
    assert routes[-1]["match"] == {"prefix": "/"}
    assert routes[-1]["route"]["cluster"] == "demo-small"


def test_fail_open_and_baseline() -> None:
    assert _extproc(render(Settings(fail_mode=FailMode.OPEN)))["failure_mode_allow"] is True
    opts = EnvoyOptions(1, 2, 3, 4, extproc_enabled=False)
    names = [f["name"] for f in _hcm(render(Settings(), opts))["http_filters"]]
    assert names == ["envoy.filters.http.header_mutation", "envoy.filters.http.router"]


def test_committed_config_is_current() -> None:
    committed = REPO / "deploy" / "envoy" / "envoy.yaml"
    assert committed.read_text() == render_yaml(Settings()), (
        "deploy/envoy/envoy.yaml is stale: irtgate envoy-config > deploy/envoy/envoy.yaml"
    )


@pytest.mark.parametrize("fail_mode", list(FailMode))
def test_envoy_validates_rendered_config(tmp_path: Path, fail_mode: FailMode) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render_yaml(Settings(fail_mode=fail_mode, listen_host="localhost")))
    assert yaml.safe_load(path.read_text())["admin"]
    proc = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path),
                           "--use-dynamic-base-id", "-l", "error"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def _clusters(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in cfg["static_resources"]["clusters"]}


def _endpoint(cluster: dict[str, Any]) -> str:
    ep = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    address: str = ep["address"]["socket_address"]["address"]
    return address


def test_exposed_listener_keeps_envoy_admin_on_loopback() -> None:
    cfg = render(Settings(listen_host="0.0.0.0"))
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["address"] == "0.0.0.0"
    assert cfg["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    # irtgate bound to all addresses is still dialled on loopback; a named host as given
    clusters = _clusters(render(Settings(grpc_host="0.0.0.0", admin_host="::")))
    assert _endpoint(clusters["irtgate_extproc"]) == "127.0.0.1"
    assert _endpoint(clusters["irtgate_admin"]) == "127.0.0.1"
    clusters = _clusters(render(Settings(irtgate_host="irtgate.internal")))
    assert _endpoint(clusters["irtgate_extproc"]) == "irtgate.internal"
    assert clusters["irtgate_extproc"]["type"] == "STRICT_DNS"


def test_extproc_cluster_tls(tmp_path: Path) -> None:
    ca, crt, key = (tmp_path / n for n in ("ca.pem", "envoy.crt", "envoy.key"))
    assert "transport_socket" not in _clusters(render(Settings()))["irtgate_extproc"]
    cfg = render(Settings(envoy_tls=EnvoyTls(ca, crt, key)))
    sock = _clusters(cfg)["irtgate_extproc"]["transport_socket"]
    ctx = sock["typed_config"]
    common = ctx["common_tls_context"]
    assert common["alpn_protocols"] == ["h2"]
    assert common["validation_context"]["trusted_ca"] == {"filename": str(ca)}
    # the certificate must name the address Envoy dials
    assert common["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "127.0.0.1"}}
    ]
    assert common["tls_certificates"][0]["certificate_chain"] == {"filename": str(crt)}
    assert "sni" not in ctx
    named = render(Settings(envoy_tls=EnvoyTls(ca, server_name="irtgate.internal")))
    ctx = _clusters(named)["irtgate_extproc"]["transport_socket"]["typed_config"]
    assert ctx["sni"] == "irtgate.internal"
    assert "tls_certificates" not in ctx["common_tls_context"]
    # irtgate on TLS but Envoy not told how: refused rather than a config that cannot connect
    with pytest.raises(ValueError, match="envoy-tls-ca"):
        render(Settings(grpc_tls=ServerTls(crt, key)))
    with pytest.raises(ValueError, match="mTLS"):
        Settings(grpc_tls=ServerTls(crt, key, client_ca=ca), envoy_tls=EnvoyTls(ca))


def test_routing_header_never_reaches_an_upstream() -> None:
    # irtgate sets it for gateways that route on it; this config routes on metadata.
    from irtgate.server.extproc import ROUTE_HEADER

    vhost = _hcm(render(Settings()))["route_config"]["virtual_hosts"][0]
    assert vhost["request_headers_to_remove"] == [ROUTE_HEADER]
