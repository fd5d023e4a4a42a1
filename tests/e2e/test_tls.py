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


def test_envoy_reaches_irtgate_over_mtls_and_routes(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    server, envoy = ca.issue("irtgate"), ca.issue("envoy", client=True)
    settings = stack_settings(
        grpc_tls=ServerTls(server.cert, server.key, client_ca=ca.pem),
        envoy_tls=EnvoyTls(ca.pem, envoy.cert, envoy.key),
    )
    with running_stack(tmp_path / "mtls", settings, name="mtls") as s:
        r = httpx.post(s.url + "/v1/chat/completions", json=CHAT, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["irtgate_demo"]["model"] == "demo-small-1"
        assert r.headers["x-irtgate-model"] == "demo-small-1"
        stats = s.envoy.stats("cluster.irtgate_extproc.ssl")
        assert stats["cluster.irtgate_extproc.ssl.handshake"] >= 1


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
