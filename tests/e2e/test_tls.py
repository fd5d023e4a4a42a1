"""Envoy → irtgate over TLS and mTLS, with a CA made in the test (issue 10, defect 5)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from irtgate.server.settings import EnvoyTls, ServerTls
from irtgate.server.testing import running_stack, stack_settings
from irtgate.server.testing_tls import TestCA

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-tls")]

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def test_envoy_reaches_irtgate_serve_over_mtls_and_routes(tmp_path: Path) -> None:
    # The real `irtgate serve` command, so its TLS and token options are exercised too.
    ca = TestCA(tmp_path / "ca")
    server, envoy = ca.issue("irtgate"), ca.issue("envoy", client=True)
    token = tmp_path / "admin-token"
    token.write_text("t0ken")
    settings = stack_settings(
        grpc_tls=ServerTls(server.cert, server.key, client_ca=ca.pem),
        envoy_tls=EnvoyTls(ca.pem, envoy.cert, envoy.key),
        admin_token_file=token,
    )
    with running_stack(tmp_path / "mtls", settings, processor="subprocess", name="mtls") as s:
        r = httpx.post(s.url + "/v1/chat/completions", json=CHAT, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["irtgate_demo"]["model"] == "demo-small-1"
        assert r.headers["x-irtgate-model"] == "demo-small-1"
        stats = s.envoy.stats("cluster.irtgate_extproc.ssl")
        assert stats["cluster.irtgate_extproc.ssl.handshake"] >= 1
        # health through Envoy stays open; metrics need the token
        assert httpx.get(s.url + "/readyz", timeout=10).status_code == 200
        assert httpx.get(s.admin_url + "/metrics", timeout=10).status_code == 401
        auth = {"Authorization": "Bearer t0ken"}
        assert httpx.get(s.admin_url + "/metrics", headers=auth, timeout=10).status_code == 200


def test_envoy_refuses_irtgate_certificate_for_another_name(tmp_path: Path) -> None:
    # Signed by the trusted CA, but not for the address Envoy dials: no routing, a JSON 503.
    ca = TestCA(tmp_path / "ca")
    server = ca.issue("irtgate", sans=("someone-else.example",))
    settings = stack_settings(
        grpc_tls=ServerTls(server.cert, server.key), envoy_tls=EnvoyTls(ca.pem)
    )
    with running_stack(tmp_path / "tls", settings, name="tls-wrong-name") as s:
        r = httpx.post(s.url + "/v1/chat/completions", json=CHAT, timeout=10)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "routing_unavailable"
