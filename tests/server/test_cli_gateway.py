from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml

from irtgate.server.cli import main
from irtgate.server.cli_gateway import parse_upstream
from irtgate.server.settings import DeciderKind, Settings, Upstream


def test_parse_upstream() -> None:
    assert parse_upstream("big=10.0.0.2:8000,m1,m2") == Upstream(
        "big", "10.0.0.2", 8000, ("m1", "m2")
    )
    assert parse_upstream("x=localhost:1") == Upstream("x", "localhost", 1)
    for bad in ("nohost", "a=b", "a=b:port"):
        with pytest.raises(typer.BadParameter):
            parse_upstream(bad)


def test_envoy_config_command(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "envoy-config",
            "--port",
            "9000",
            "--fail-mode",
            "open",
            "--upstream",
            "one=127.0.0.1:7001,m",
            "--upstream",
            "two=127.0.0.1:7002",
        ]
    )
    assert code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 9000
    names = {c["name"] for c in cfg["static_resources"]["clusters"]}
    assert {"one", "two"} <= names and "demo-small" not in names


def test_commands_registered(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("serve", "up", "envoy-config"):
        assert name in out


def test_bad_settings_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy-config", "--default-upstream", "nowhere"]) != 0


def test_parse_route_and_custom_upstreams() -> None:
    from irtgate.server.cli_gateway import build_settings, parse_route
    from irtgate.server.settings import DefaultChoice

    assert parse_route("big/m-1@high") == DefaultChoice("m-1", "big", "high")
    assert parse_route("big/m-1") == DefaultChoice("m-1", "big", None)
    with pytest.raises(typer.BadParameter):
        parse_route("m-1@high")

    def build(
        upstream: list[str] | None,
        route: str | None,
        static: bool = True,
        policy: Path | None = None,
    ) -> Settings:
        return build_settings(
            grpc_port=1,
            admin_port=2,
            port=3,
            envoy_admin_port=4,
            body_limit_mib=16,
            message_timeout=5,
            upstream=upstream,
            policy=policy,
            route=route,
            static=static,
        )

    s = build(["a=127.0.0.1:1,ma", "b=127.0.0.1:2,mb"], None)
    assert s.default_choice == DefaultChoice("ma", "a", None)
    assert s.decider is DeciderKind.STATIC
    s = build(["a=127.0.0.1:1", "b=127.0.0.1:2,mb"], "b/mb@low")
    assert s.default_choice == DefaultChoice("mb", "b", "low")
    with pytest.raises(typer.BadParameter):
        build(["a=127.0.0.1:1"], None)  # nothing to route to
    # Without --static or --route: the policy decides (the embedded default unless --policy).
    s = build(None, None, static=False)
    assert s.decider is DeciderKind.POLICY and s.policy_path is None
    s = build(["a=127.0.0.1:1"], None, static=False, policy=Path("p.yaml"))
    assert s.decider is DeciderKind.POLICY and s.policy_path == Path("p.yaml")
    # --route alone means the static decider; with --policy it is a usage error.
    assert build(None, "demo-large/x", static=False).decider is DeciderKind.STATIC
    with pytest.raises(typer.BadParameter, match="--route"):
        build(None, "demo-large/x", static=False, policy=Path("p.yaml"))
    with pytest.raises(typer.BadParameter, match="--static"):
        build(None, None, static=True, policy=Path("p.yaml"))
    with pytest.raises(typer.BadParameter):
        build(["a=127.0.0.1:1,ma"], "nowhere/m")


def test_envoy_config_exposure_and_tls_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read by envoy-config, only named")
    name = "irtgate.internal"
    args = ["envoy-config", "--listen-host", "0.0.0.0", "--envoy-tls-ca", str(ca),
            "--envoy-tls-server-name", name, "--irtgate-host", name]  # fmt: skip
    assert main(args) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] == (
        "0.0.0.0"
    )
    assert cfg["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    (extproc,) = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "irtgate_extproc"]
    assert extproc["transport_socket"]["typed_config"]["sni"] == "irtgate.internal"


def test_tls_options_must_come_in_pairs(tmp_path: Path) -> None:
    from irtgate.server.cli_exposure import exposure_kwargs

    f = tmp_path / "f.pem"
    for bad in (
        {"grpc_tls_cert": f},
        {"grpc_tls_client_ca": f},
        {"envoy_tls_cert": f, "envoy_tls_key": f},
        {"envoy_tls_ca": f, "envoy_tls_cert": f},
    ):
        with pytest.raises(typer.BadParameter):
            exposure_kwargs(**bad)  # type: ignore[arg-type]
    tls = exposure_kwargs(grpc_tls_cert=f, grpc_tls_key=f, grpc_tls_client_ca=f)["grpc_tls"]
    assert tls.client_ca == f


def test_demo_upstream_command_serves_until_sigterm(tmp_path: Path) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from irtgate.server.testing import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    main_ = "import sys; from irtgate.server.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", main_, "demo-upstream", "--name", "shop", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    answer = json.loads(r.read())
            except OSError:
                time.sleep(0.1)
        assert answer is not None, proc.stderr.read() if proc.stderr else ""
        assert answer["irtgate_demo"]["upstream"] == "shop"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
