"""deploy/compose.yaml: the Compose specification's schema, and agreement with the shipped
Envoy config generator, Prometheus config, Grafana provisioning and policy."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from irtgate.server.cli import main
from irtgate.server.envoy_config import envoy_binary
from tests.deploy.manifests import (
    DEPLOY,
    options,
    policy_upstreams,
    same_policy_as_default,
    serve_settings,
)

COMPOSE = DEPLOY / "compose.yaml"
SCHEMA = DEPLOY / "schemas" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    svc = compose["services"][name]
    assert isinstance(svc, dict)
    return svc


def binds(svc: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts: container path → host path (relative to the compose file)."""
    return {
        v["target"]: (COMPOSE.parent / v["source"]).resolve()
        for v in svc.get("volumes", [])
        if isinstance(v, dict) and v["type"] == "bind"
    }


def test_compose_file_validates_against_the_spec_schema(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []
    # The schema is not a rubber stamp: a misspelt key is refused.
    broken = copy.deepcopy(compose)
    broken["services"]["irtgate"]["healthchek"] = broken["services"]["irtgate"]["healthcheck"]
    assert any("healthchek" in e for e in schema_errors(broken))


def test_every_service_has_an_image_and_existing_mounts(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        # The spec's own constraint (definitions/constraints/service), not enforced by the schema.
        assert "image" in svc or "build" in svc, name
        for target, source in binds(svc).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"


def envoy_config_args(compose: dict[str, Any]) -> list[str]:
    """`irtgate envoy-config` for the stack: irtgate's own routing options, plus where Envoy
    listens and how it finds irtgate on the compose network."""
    opts = options(service(compose, "irtgate")["command"][1:])
    args = ["envoy-config", "--listen-host", "0.0.0.0", "--irtgate-host", "irtgate"]
    for name in ("upstream", "default-upstream", "fail-mode", "message-timeout"):
        args += [f"--{name}={value}" for value in opts.get(name, [])]
    return args


def test_envoy_config_is_generated_from_irtgates_settings(
    compose: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mounted = binds(service(compose, "envoy"))["/etc/envoy/envoy.yaml"]
    assert main(envoy_config_args(compose)) == 0
    generated = capsys.readouterr().out
    assert mounted.read_text() == generated, (
        f"{mounted} is stale: run `make envoy-configs` "
        f"(irtgate {' '.join(envoy_config_args(compose))})"
    )
    proc = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(mounted), "--use-dynamic-base-id",
         "-l", "error"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_services_envoy_needs_exist_on_their_ports(compose: dict[str, Any]) -> None:
    settings = serve_settings(service(compose, "irtgate")["command"])
    cfg = yaml.safe_load(binds(service(compose, "envoy"))["/etc/envoy/envoy.yaml"].read_text())
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}

    def endpoint(name: str) -> tuple[str, int]:
        sock = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        addr = sock["address"]["socket_address"]
        return addr["address"], addr["port_value"]

    assert endpoint("irtgate_extproc") == ("irtgate", settings.grpc_port)
    assert endpoint("irtgate_admin") == ("irtgate", settings.admin_port)
    irtgate_ports = {str(p) for p in service(compose, "irtgate")["expose"]}
    assert {str(settings.grpc_port), str(settings.admin_port)} <= irtgate_ports
    for up in settings.upstreams:
        assert endpoint(up.name) == (up.host, up.port)
        demo = service(compose, up.host)  # each upstream host is a compose service
        assert options(demo["command"][1:])["port"] == [str(up.port)]
        assert options(demo["command"][1:])["name"] == [up.name]
    listen = cfg["static_resources"]["listeners"][0]["address"]["socket_address"]
    published = service(compose, "envoy")["ports"]
    assert any(str(p).endswith(f":{listen['port_value']}") for p in published)


def test_policy_is_mounted_as_a_folder_and_matches_the_upstreams(compose: dict[str, Any]) -> None:
    irtgate = service(compose, "irtgate")
    settings = serve_settings(irtgate["command"])
    assert settings.policy_path is not None and settings.policy_watch
    mounts = binds(irtgate)
    folder = str(settings.policy_path.parent)
    # A folder mount: editors replace the file by rename, which a file mount would not see.
    assert folder in mounts and mounts[folder].is_dir()
    text = (mounts[folder] / settings.policy_path.name).read_text()
    assert same_policy_as_default(text)
    assert set(policy_upstreams(text)) <= {u.name for u in settings.upstreams}


def test_prometheus_uses_the_shipped_rules_and_jobs(compose: dict[str, Any]) -> None:
    prom = service(compose, "prometheus")
    mounts = binds(prom)
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    ours, shipped = (
        yaml.safe_load(config_path.read_text()),
        yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text()),
    )
    # The shipped rule file, where the config's rule_files entry points.
    for rule_file in ours["rule_files"]:
        assert mounts[f"/etc/prometheus/{rule_file}"] == (DEPLOY / "prometheus" / rule_file)

    def without_targets(cfg: dict[str, Any]) -> dict[str, Any]:
        cfg = copy.deepcopy(cfg)
        for job in cfg["scrape_configs"]:
            job.pop("static_configs")
        return cfg

    assert without_targets(ours) == without_targets(shipped)
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in ours["scrape_configs"]
    }
    settings = serve_settings(service(compose, "irtgate")["command"])
    assert targets["irtgate"] == [f"irtgate:{settings.admin_port}"]
    assert targets["envoy"] == ["envoy:9901"]


def test_grafana_provisions_the_shipped_dashboard(compose: dict[str, Any]) -> None:
    grafana = service(compose, "grafana")
    mounts = binds(grafana)
    provisioning = mounts["/etc/grafana/provisioning/dashboards"]
    assert provisioning == (DEPLOY / "grafana" / "provisioning" / "dashboards")
    provider = yaml.safe_load((provisioning / "irtgate.yml").read_text())["providers"][0]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "irtgate.json").exists()
    shipped = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/irtgate-prometheus.yml").read_text()
    )
    ours = yaml.safe_load(
        mounts["/etc/grafana/provisioning/datasources/irtgate-prometheus.yml"].read_text()
    )
    assert ours["datasources"][0].pop("url") == "http://prometheus:9090"
    shipped["datasources"][0].pop("url")
    assert ours == shipped
