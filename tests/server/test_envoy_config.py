"""The rendered Envoy bootstrap: structure, the committed copy, and `envoy --mode validate`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from irtgate.server.envoy_config import EnvoyOptions, envoy_binary, render, render_yaml
from irtgate.server.settings import FailMode, MiB, Settings

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
    assert names == ["envoy.filters.http.router"]


def test_committed_config_is_current() -> None:
    committed = REPO / "deploy" / "envoy" / "envoy.yaml"
    assert committed.read_text() == render_yaml(Settings()), (
        "deploy/envoy/envoy.yaml is stale: irtgate envoy-config > deploy/envoy/envoy.yaml"
    )


@pytest.mark.parametrize("fail_mode", list(FailMode))
def test_envoy_validates_rendered_config(tmp_path: Path, fail_mode: FailMode) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render_yaml(Settings(fail_mode=fail_mode, host="localhost")))
    assert yaml.safe_load(path.read_text())["admin"]
    proc = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path),
                           "--use-dynamic-base-id", "-l", "error"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def test_routing_header_never_reaches_an_upstream() -> None:
    # irtgate sets it for gateways that route on it; this config routes on metadata.
    from irtgate.server.extproc import ROUTE_HEADER

    vhost = _hcm(render(Settings()))["route_config"]["virtual_hosts"][0]
    assert vhost["request_headers_to_remove"] == [ROUTE_HEADER]
