"""TLS and mTLS on irtgate's gRPC port, certificate rotation, and the admin bearer token."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509

from irtgate.proto import decide_pb2, decide_pb2_grpc
from irtgate.server.app import Gateway
from irtgate.server.settings import ServerTls, Settings
from irtgate.server.static_decider import StaticDecider
from irtgate.server.testing_tls import Issued, TestCA
from irtgate.server.tls import CertificateFiles

BODY = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "x"}]}).encode()
REQUEST = decide_pb2.DecideRequest(path="/v1/chat/completions", body=BODY)


async def started(settings: Settings) -> Gateway:
    gw = Gateway(settings, StaticDecider.from_settings(settings))
    await gw.start()
    return gw


async def decide(port: int, creds: grpc.ChannelCredentials) -> decide_pb2.DecideResponse:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        resp: decide_pb2.DecideResponse = await decide_pb2_grpc.DecideStub(channel).Decide(
            REQUEST, timeout=5
        )
        return resp


def creds(ca: TestCA, client: Issued | None = None) -> grpc.ChannelCredentials:
    chain = key = None
    if client is not None:
        chain, key = client.cert.read_bytes(), client.key.read_bytes()
    return grpc.ssl_channel_credentials(ca.pem.read_bytes(), key, chain)


def served_serial(port: int, ca: TestCA) -> int:
    """The serial number of the certificate the server presents to a new connection."""
    ctx = ssl.create_default_context(cafile=str(ca.pem))
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


@pytest.fixture
async def mtls(tmp_path: Path, ca: TestCA) -> AsyncIterator[Gateway]:
    server = ca.issue("irtgate")
    tls = ServerTls(server.cert, server.key, client_ca=ca.pem)
    gw = await started(Settings(grpc_port=0, admin_port=0, grpc_tls=tls))
    yield gw
    await gw.stop(grace=0)


async def test_mtls_decide_needs_a_client_certificate_from_the_ca(
    mtls: Gateway, ca: TestCA, tmp_path: Path
) -> None:
    good = ca.issue("decide-client", client=True)
    resp = await decide(mtls.grpc_port, creds(ca, good))
    assert (resp.outcome, resp.model) == ("routed", "demo-small-1")

    stranger = TestCA(tmp_path / "other-ca", name="other CA").issue("intruder", client=True)
    for bad in (creds(ca), creds(ca, stranger)):  # no certificate; one from another CA
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await decide(mtls.grpc_port, bad)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # and plaintext gets nowhere either
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await decide_pb2_grpc.DecideStub(channel).Decide(REQUEST, timeout=5)


def replace(src: Path, dst: Path) -> None:
    """Swap a file in atomically, as a certificate manager does."""
    tmp = dst.with_suffix(".new")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)


async def test_rotated_certificate_is_picked_up_without_restart(tmp_path: Path, ca: TestCA) -> None:
    live = tmp_path / "live"
    first = ca.issue("irtgate", folder=live)
    gw = await started(
        Settings(grpc_port=0, admin_port=0, grpc_tls=ServerTls(first.cert, first.key))
    )
    try:
        port = gw.grpc_port
        assert await asyncio.to_thread(served_serial, port, ca) == first.serial
        assert (await decide(port, creds(ca))).outcome == "routed"

        second = ca.issue("irtgate", folder=tmp_path / "next")
        replace(second.cert, first.cert)  # half-way: the new cert with the old key
        assert await asyncio.to_thread(served_serial, port, ca) == first.serial  # kept
        replace(second.key, first.key)
        assert await asyncio.to_thread(served_serial, port, ca) == second.serial
        assert (await decide(port, creds(ca))).outcome == "routed"
        assert gw.certificates is not None and gw.certificates.reloads == 1
        first.key.unlink()  # a file briefly missing: the pair in force keeps serving
        assert await asyncio.to_thread(served_serial, port, ca) == second.serial
        assert gw.certificates.reloads == 1
    finally:
        await gw.stop(grace=0)


def test_mismatched_pair_is_refused_at_start(ca: TestCA) -> None:
    a, b = ca.issue("a"), ca.issue("b")
    with pytest.raises(ValueError, match="do not belong together"):
        CertificateFiles(ServerTls(a.cert, b.key))


async def test_admin_token_guards_metrics_but_not_health(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    gw = await started(Settings(grpc_port=0, admin_port=0, admin_token_file=token_file))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.admin_port}") as c:
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/readyz")).status_code == 200
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                r = await c.get("/metrics", headers=headers)
                assert r.status_code == 401
                assert r.headers["www-authenticate"] == "Bearer"
                assert r.json()["error"]["code"] == "unauthorized"
                assert "irtgate_" not in r.text
            assert (await c.get("/nowhere")).status_code == 401  # unknown paths too
            r = await c.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
            assert r.status_code == 200 and "irtgate_streams_active" in r.text
    finally:
        await gw.stop(grace=0)


async def test_exposing_the_listener_keeps_admin_and_grpc_on_loopback() -> None:
    gw = await started(Settings(listen_host="0.0.0.0", grpc_port=0, admin_port=0))
    try:
        assert listening(gw.grpc_port) == {"127.0.0.1"}
        assert listening(gw.admin_port) == {"127.0.0.1"}
    finally:
        await gw.stop(grace=0)
    # each is exposed only when asked
    gw = await started(Settings(grpc_host="0.0.0.0", grpc_port=0, admin_port=0))
    try:
        assert listening(gw.grpc_port) & {"0.0.0.0", "::"}
        assert listening(gw.admin_port) == {"127.0.0.1"}
    finally:
        await gw.stop(grace=0)


def listening(port: int) -> set[str]:
    """The addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    out = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if fields[3] != "0A" or int(hexport, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr)  # 32-bit words in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(words)
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            out.add(str(mapped or ip))
    return out
