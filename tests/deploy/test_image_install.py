"""The image's install steps, run outside Docker: deploy/docker/install-serving.sh (the script
the Dockerfile runs) builds the wheel from this tree and installs it, with no extras, into a
fresh venv; then the installed CLI and server are used with nothing from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.manifests import DEPLOY, REPO

pytestmark = pytest.mark.slow


def test_serving_install_in_a_fresh_venv(tmp_path: Path) -> None:
    venv, wheels = tmp_path / "venv", tmp_path / "wheels"
    # Nothing may leak in from the checkout or this venv: no PYTHONPATH, another cwd.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHON"] = sys.executable
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    script = DEPLOY / "docker" / "install-serving.sh"
    result = subprocess.run(
        ["sh", str(script), str(REPO), str(venv), str(wheels)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ": ok (" in result.stdout  # `irtgate policy check` on the installed default policy

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    # The installed package is the wheel's, not this checkout's.
    where = run(str(venv / "bin" / "python"), "-c", "import irtgate; print(irtgate.__file__)")
    assert where.returncode == 0 and str(venv) in where.stdout, where.stdout + where.stderr
    helped = run(str(venv / "bin" / "irtgate"), "--help")
    assert helped.returncode == 0
    for command in ("serve", "envoy-config", "demo-upstream", "policy"):
        assert command in helped.stdout
    # The shipped router's files are package data: listed in the wheel's RECORD.
    record = run(
        str(venv / "bin" / "python"), "-c",
        "from importlib.metadata import files; print('\\n'.join(str(f) for f in files('irtgate')))",
    )  # fmt: skip
    listed = record.stdout.splitlines()
    assert any(f.endswith(".onnx") for f in listed)
    assert any(f.endswith("policies/default.yaml") for f in listed)
