"""Offline validation of rendered Kubernetes objects.

- Core kinds: the ``kubernetes-validate`` package's schemas (strict: unknown fields fail).
- Gateway API and Envoy Gateway kinds: the openAPIV3Schema of their CRDs, copied into
  tests/deploy/crds/ (see its README), with ``jsonschema``. CEL rules
  (``x-kubernetes-validations``) are not evaluated.
- Kinds with no schema here (ServiceMonitor, Istio's EnvoyFilter, Envoy Gateway's
  ClientTrafficPolicy): minimal structural checks written for these manifests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

CRDS = Path(__file__).resolve().parent / "crds"
KUBERNETES_VERSION = "1.37.0"
CORE_GROUPS = {
    "",
    "apps",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
}

Obj = dict[str, Any]


def group_version(obj: Obj) -> tuple[str, str]:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    return group, version


@cache
def crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) → openAPIV3Schema, for every CRD file in crds/."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        # libyaml's loader: the Gateway API bundle is 0.7 MB (14 s with the pure-Python one).
        for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                key = (spec["group"], version["name"], spec["names"]["kind"])
                out[key] = version["schema"]["openAPIV3Schema"]
    return out


def _require(obj: Obj, *path: str) -> Any:
    node: Any = obj
    for key in path:
        assert isinstance(node, dict) and key in node, f"{obj['kind']}: missing {'.'.join(path)}"
        node = node[key]
    return node


def check_service_monitor(obj: Obj) -> None:
    assert group_version(obj) == ("monitoring.coreos.com", "v1")
    assert isinstance(_require(obj, "spec", "selector", "matchLabels"), dict)
    endpoints = _require(obj, "spec", "endpoints")
    assert isinstance(endpoints, list) and endpoints
    for ep in endpoints:
        assert set(ep) <= {"port", "path", "interval", "scheme", "scrapeTimeout"}, ep
        assert isinstance(ep["port"], str) and str(ep.get("path", "/metrics")).startswith("/")


def check_envoy_filter(obj: Obj) -> None:
    assert group_version(obj) == ("networking.istio.io", "v1alpha3")
    assert isinstance(_require(obj, "spec", "workloadSelector", "labels"), dict)
    patches = _require(obj, "spec", "configPatches")
    assert isinstance(patches, list) and patches
    for patch in patches:
        assert patch["applyTo"] in {"HTTP_FILTER", "NETWORK_FILTER", "LISTENER", "CLUSTER"}
        assert patch["match"]["context"] in {"GATEWAY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND"}
        assert patch["patch"]["operation"] in {"MERGE", "INSERT_BEFORE", "INSERT_AFTER", "ADD"}
        assert isinstance(patch["patch"]["value"], dict)


def check_client_traffic_policy(obj: Obj) -> None:
    assert group_version(obj) == ("gateway.envoyproxy.io", "v1alpha1")
    refs = _require(obj, "spec", "targetRefs")
    assert refs and all(set(r) == {"group", "kind", "name"} for r in refs)
    assert set(obj["spec"]) <= {"targetRefs", "connection", "headers"}
    assert set(obj["spec"].get("headers", {})) <= {"earlyRequestHeaders"}
    assert set(obj["spec"].get("connection", {})) <= {"bufferLimit"}


OWN_CHECKS: dict[str, Callable[[Obj], None]] = {
    "ServiceMonitor": check_service_monitor,
    "EnvoyFilter": check_envoy_filter,
    "ClientTrafficPolicy": check_client_traffic_policy,
}


def validate(obj: Obj) -> str:
    """Validate one object; return how ("core", "crd", "own"). Raises on a problem."""
    # The base's objects render identically in every overlay; each is checked once.
    return _validate_once(json.dumps(obj, sort_keys=True))


@cache
def _validate_once(text: str) -> str:
    obj = json.loads(text)
    group, version = group_version(obj)
    kind = str(obj["kind"])
    if group in CORE_GROUPS:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        return "core"
    schema = crd_schemas().get((group, version, kind))
    if schema is not None:
        jsonschema.Draft7Validator(schema).validate(obj)
        return "crd"
    if kind in OWN_CHECKS:
        OWN_CHECKS[kind](obj)
        return "own"
    raise AssertionError(f"no way to validate {group}/{version} {kind}")
