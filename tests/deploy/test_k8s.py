"""deploy/k8s: every overlay renders with `kubectl kustomize`, every object validates offline,
and each overlay's proxy agrees with the standalone Envoy config irtgate generates (upstreams,
timeouts, fail mode, message timeout, buffer, routing header)."""

from __future__ import annotations

import copy
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from irtgate.server.admin import admin_app
from irtgate.server.envoy_config import EnvoyOptions, envoy_binary, render, render_yaml
from irtgate.server.extproc import METADATA_NAMESPACE, ROUTE_HEADER
from irtgate.server.settings import FailMode, Settings
from tests.deploy.k8s_validate import OWN_CHECKS, validate
from tests.deploy.manifests import (
    K8S,
    dev_tool,
    load_docs,
    policy_upstreams,
    same_policy_as_default,
    serve_settings,
)

OVERLAYS = ("envoy-gateway", "istio", "standalone")
NAMESPACE = "irtgate"
Obj = dict[str, Any]


@cache
def rendered(overlay: str) -> tuple[Obj, ...]:
    result = subprocess.run(
        [dev_tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return tuple(load_docs(result.stdout))


def find(objs: tuple[Obj, ...], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: tuple[Obj, ...], kind: str, name: str | None = None) -> Obj:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def irtgate_container(objs: tuple[Obj, ...]) -> Obj:
    pod = one(objs, "Deployment", "irtgate")["spec"]["template"]["spec"]
    container: Obj = pod["containers"][0]
    return container


def settings_of(objs: tuple[Obj, ...]) -> Settings:
    return serve_settings(irtgate_container(objs)["args"])


def standalone_ext_proc(settings: Settings) -> Obj:
    hcm = render(settings)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = hcm["typed_config"]["http_filters"]
    ext_proc: Obj = next(f for f in filters if f["name"] == "envoy.filters.http.ext_proc")
    return ext_proc


def policy_text(objs: tuple[Obj, ...]) -> str:
    return str(one(objs, "ConfigMap", "irtgate-policy")["data"]["policy.yaml"])


def route_rules(objs: tuple[Obj, ...]) -> tuple[dict[str, Obj], list[Obj]]:
    """HTTPRoute rules: upstream named by the routing header → rule; rules without it."""
    routed: dict[str, Obj] = {}
    plain: list[Obj] = []
    for rule in one(objs, "HTTPRoute", "irtgate")["spec"]["rules"]:
        headers = [h for m in rule["matches"] for h in m.get("headers", [])]
        ours = [h for h in headers if h["name"].lower() == ROUTE_HEADER]
        if ours:
            assert len(ours) == 1 and ours[0]["type"] == "Exact"
            routed[ours[0]["value"]] = rule
        else:
            plain.append(rule)
    return routed, plain


# -- every object validates ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_object_validates(overlay: str) -> None:
    objs = rendered(overlay)
    how = {f"{o['kind']}/{o['metadata']['name']}": validate(o) for o in objs}
    assert "Deployment/irtgate" in how and how["Deployment/irtgate"] == "core"
    # Everything in the overlay's namespace; cluster-scoped kinds have none (kustomize would
    # give one to a kind it does not know, which is why the GatewayClass is kept apart).
    for o in objs:
        expected = None if o["kind"] == "Namespace" else NAMESPACE
        assert o["metadata"].get("namespace") == expected, o["kind"]
    if overlay != "standalone":
        assert how["HTTPRoute/irtgate"] == "crd" and how["Gateway/irtgate"] == "crd"


def test_validation_catches_mistakes() -> None:
    objs = rendered("envoy-gateway")
    deployment = copy.deepcopy(one(objs, "Deployment", "irtgate"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    policy = copy.deepcopy(one(objs, "EnvoyExtensionPolicy"))
    policy["spec"]["extProc"][0]["processingMode"]["request"]["body"] = "Whole"
    with pytest.raises(jsonschema.ValidationError):
        validate(policy)
    route = copy.deepcopy(one(objs, "HTTPRoute"))
    route["spec"]["rules"][0]["timeouts"]["request"] = "five minutes"
    with pytest.raises(jsonschema.ValidationError):
        validate(route)
    monitor = copy.deepcopy(one(objs, "ServiceMonitor"))
    del monitor["spec"]["endpoints"]
    with pytest.raises(AssertionError):
        OWN_CHECKS["ServiceMonitor"](monitor)


# -- base: irtgate itself ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_irtgate_deployment(overlay: str) -> None:
    objs = rendered(overlay)
    settings = settings_of(objs)
    container = irtgate_container(objs)
    pod = one(objs, "Deployment", "irtgate")["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": settings.grpc_port, "admin": settings.admin_port}
    served = {r.resource.canonical for r in admin_app(CollectorRegistry(), lambda: True)
              .router.routes() if r.resource is not None}  # fmt: skip
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in served
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in served
    sec = container["securityContext"]
    assert sec["readOnlyRootFilesystem"] and not sec["allowPrivilegeEscalation"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"]
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]
    ann = pod["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert ann["prometheus.io/port"] == str(settings.admin_port)
    # The policy: a folder mount (a subPath mount never sees ConfigMap updates), watched.
    assert settings.policy_path is not None and settings.policy_watch
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    mount = mounts[str(settings.policy_path.parent)]
    assert "subPath" not in mount
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    configmap = one(objs, "ConfigMap", volume["configMap"]["name"])
    assert settings.policy_path.name in configmap["data"]
    # A stable name, so `kubectl apply` updates it in place and pods hot-reload.
    assert configmap["metadata"]["name"] == "irtgate-policy"
    assert same_policy_as_default(policy_text(objs))
    assert set(policy_upstreams(policy_text(objs))) <= {u.name for u in settings.upstreams}


def test_service_hpa_pdb_and_monitor_select_irtgate() -> None:
    objs = rendered("standalone")
    labels = one(objs, "Deployment", "irtgate")["spec"]["template"]["metadata"]["labels"]
    settings = settings_of(objs)
    service = one(objs, "Service", "irtgate")
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["port"] == settings.grpc_port
    assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"  # gRPC needs HTTP/2
    hpa = one(objs, "HorizontalPodAutoscaler", "irtgate")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "irtgate"
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = one(objs, "PodDisruptionBudget", "irtgate")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    monitor = one(objs, "ServiceMonitor", "irtgate")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] in ports
    # The alert rules expect job="irtgate": the Operator names the job after the Service.
    assert service["metadata"]["name"] == "irtgate"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_demo_upstreams_serve_what_irtgate_names(overlay: str) -> None:
    objs = rendered(overlay)
    for up in settings_of(objs).upstreams:
        service = one(objs, "Service", up.host)
        assert [p["port"] for p in service["spec"]["ports"]] == [up.port]
        args = one(objs, "Deployment", up.host)["spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--name={up.name}" in args and f"--port={up.port}" in args


# -- envoy-gateway ----------------------------------------------------------------------------


def upstream_timeout() -> str:
    return f"{EnvoyOptions.from_settings(Settings()).upstream_timeout_s:g}s"


@pytest.mark.parametrize("overlay", ["envoy-gateway", "istio"])
def test_every_policy_upstream_has_a_route(overlay: str) -> None:
    objs = rendered(overlay)
    settings = settings_of(objs)
    routed, plain = route_rules(objs)
    upstreams = {u.name: u for u in settings.upstreams}
    assert set(policy_upstreams(policy_text(objs))) <= set(routed)
    assert set(routed) == set(upstreams)
    assert len(plain) == 1, "one catch-all rule: what irtgate did not route"
    for name, rule in [*routed.items(), (settings.default_upstream, plain[0])]:
        assert rule["timeouts"]["request"] == upstream_timeout()
        (ref,) = rule["backendRefs"]
        up = upstreams[name]
        if overlay == "envoy-gateway":
            assert (ref["group"], ref["kind"], ref["name"]) == (
                "gateway.envoyproxy.io",
                "Backend",
                name,
            )
            backend = one(objs, "Backend", name)
            (endpoint,) = backend["spec"]["endpoints"]
            assert endpoint["fqdn"] == {"hostname": f"{up.host}.{NAMESPACE}.svc.cluster.local",
                                        "port": up.port}  # fmt: skip
        else:
            assert (ref["kind"], ref["name"], ref["port"]) == ("Service", up.host, up.port)
    for name, rule in routed.items():
        # The header stops at the gateway.
        (flt,) = rule["filters"]
        assert flt["requestHeaderModifier"]["remove"] == [ROUTE_HEADER], name


def test_envoy_gateway_extension_policy_matches_the_standalone_config() -> None:
    objs = rendered("envoy-gateway")
    settings = settings_of(objs)
    ext_proc = standalone_ext_proc(settings)["typed_config"]
    policy = one(objs, "EnvoyExtensionPolicy", "irtgate")
    gateway = one(objs, "Gateway", "irtgate")
    assert policy["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "irtgate"}
    ]
    (entry,) = policy["spec"]["extProc"]
    assert entry["failOpen"] is (settings.fail_mode is FailMode.OPEN)
    assert entry["failOpen"] is ext_proc["failure_mode_allow"]
    assert (
        entry["messageTimeout"] == ext_proc["message_timeout"] == f"{settings.message_timeout_s:g}s"
    )
    assert entry["statusOnError"] == ext_proc["status_on_error"]["code"]
    # Headers and the whole body go to irtgate; nothing of the response (SSE unbuffered).
    assert entry["processingMode"] == {"request": {"body": "Buffered"}}
    assert ext_proc["processing_mode"]["request_body_mode"] == "BUFFERED"
    assert METADATA_NAMESPACE in entry["metadata"]["writableNamespaces"]
    (ref,) = entry["backendRefs"]
    service = one(objs, "Service", ref["name"])
    assert (
        ref["port"] in [p["port"] for p in service["spec"]["ports"]]
        and ref["port"] == settings.grpc_port
    )
    # The class, applied on its own (cluster-scoped), is the one the Gateway names.
    class_file = K8S / "overlays" / "envoy-gateway" / "cluster" / "gatewayclass.yaml"
    (gateway_class,) = load_docs(class_file.read_text())
    assert validate(gateway_class) == "crd" and "namespace" not in gateway_class["metadata"]
    assert gateway_class["metadata"]["name"] == gateway["spec"]["gatewayClassName"]


def parse_quantity(text: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


def test_envoy_gateway_strips_client_routing_headers_and_buffers_bodies() -> None:
    objs = rendered("envoy-gateway")
    settings = settings_of(objs)
    ctp = one(objs, "ClientTrafficPolicy", "irtgate")
    assert ctp["spec"]["targetRefs"][0]["name"] == "irtgate"
    assert ROUTE_HEADER in ctp["spec"]["headers"]["earlyRequestHeaders"]["remove"]
    listener = render(settings)["static_resources"]["listeners"][0]
    limit = parse_quantity(ctp["spec"]["connection"]["bufferLimit"])
    assert limit == listener["per_connection_buffer_limit_bytes"] == settings.envoy_buffer_limit


# -- istio --------------------------------------------------------------------------------------


def envoy_filter_patches(objs: tuple[Obj, ...]) -> dict[str, Obj]:
    patches = one(objs, "EnvoyFilter")["spec"]["configPatches"]
    return {p["applyTo"]: p for p in patches}


def test_istio_envoy_filter_is_the_standalone_ext_proc_filter() -> None:
    objs = rendered("istio")
    settings = settings_of(objs)
    gateway = one(objs, "Gateway", "irtgate")
    flt = one(objs, "EnvoyFilter")
    assert flt["spec"]["workloadSelector"]["labels"] == {
        "gateway.networking.k8s.io/gateway-name": gateway["metadata"]["name"]
    }
    patches = envoy_filter_patches(objs)
    http = patches["HTTP_FILTER"]
    assert http["patch"]["operation"] == "INSERT_BEFORE"
    assert http["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == (
        "envoy.filters.http.router"
    )
    expected = copy.deepcopy(standalone_ext_proc(settings))
    cluster = f"outbound|{settings.grpc_port}||irtgate.{NAMESPACE}.svc.cluster.local"
    expected["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] = cluster
    assert http["patch"]["value"] == expected
    hcm = patches["NETWORK_FILTER"]["patch"]["value"]["typed_config"]
    (early,) = hcm["early_header_mutation_extensions"]
    assert {"remove": ROUTE_HEADER} in early["typed_config"]["mutations"]
    listener = patches["LISTENER"]["patch"]["value"]
    assert listener["per_connection_buffer_limit_bytes"] == settings.envoy_buffer_limit


def test_istio_patches_are_valid_envoy_config(tmp_path: Path) -> None:
    """Apply the EnvoyFilter's three patches to the standalone bootstrap and let Envoy check
    the result (`envoy --mode validate`): the field names and types are Envoy's."""
    objs = rendered("istio")
    settings = settings_of(objs)
    cfg = render(settings)
    patches = envoy_filter_patches(objs)
    listener = cfg["static_resources"]["listeners"][0]
    listener.update(patches["LISTENER"]["patch"]["value"])
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    merged = dict(patches["NETWORK_FILTER"]["patch"]["value"]["typed_config"])
    assert merged.pop("@type") == hcm["@type"]
    hcm.update(merged)
    ext_proc = copy.deepcopy(patches["HTTP_FILTER"]["patch"]["value"])
    # Istio's cluster does not exist in the bootstrap; the standalone one stands in for it.
    ext_proc["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] = "irtgate_extproc"
    hcm["http_filters"] = [ext_proc, hcm["http_filters"][-1]]
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id",
         "-l", "error"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- standalone ---------------------------------------------------------------------------------


STANDALONE = K8S / "overlays" / "standalone" / "envoy.yaml"


def test_standalone_bootstrap_is_generated_and_mounted(tmp_path: Path) -> None:
    objs = rendered("standalone")
    settings = settings_of(objs).replace(listen_host="0.0.0.0", irtgate_host="irtgate-headless")
    assert STANDALONE.read_text() == render_yaml(settings), (
        f"{STANDALONE} is stale: run `make envoy-configs`"
    )
    headless = one(objs, "Service", "irtgate-headless")
    assert headless["spec"]["clusterIP"] == "None"
    envoy = one(objs, "Deployment", "envoy")["spec"]["template"]["spec"]
    (volume,) = envoy["volumes"]
    configmap = one(objs, "ConfigMap", volume["configMap"]["name"])
    assert configmap["data"]["envoy.yaml"] == STANDALONE.read_text()
    (container,) = envoy["containers"]
    assert container["args"][:2] == [
        "-c",
        f"{container['volumeMounts'][0]['mountPath']}/envoy.yaml",
    ]
    cfg = yaml.safe_load(STANDALONE.read_text())
    clusters = {c["name"] for c in cfg["static_resources"]["clusters"]}
    assert set(policy_upstreams(policy_text(objs))) <= clusters
    service_port = one(objs, "Service", "envoy")["spec"]["ports"][0]["port"]
    assert (
        service_port
        == cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
    )
    proc = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(STANDALONE), "--use-dynamic-base-id",
         "-l", "error"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
