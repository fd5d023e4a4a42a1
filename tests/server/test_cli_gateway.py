from __future__ import annotations

import pytest
import typer
import yaml

from server.cli import main
from server.cli_gateway import parse_upstream
from server.settings import Upstream


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
