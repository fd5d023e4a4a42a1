"""The wheel: one top-level package, ``irtgate``, that coexists with proto-plus's ``proto``."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("irtgate-*.whl")
    return whl


def test_wheel_has_one_top_level_package_and_the_artifacts(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"irtgate"}
    for part in ("server", "signals", "plugins", "policies", "proto", "lab"):
        assert f"irtgate/{part}/__init__.py" in names
    assert "irtgate/signals/artifacts/routers/default/heads.onnx" in names
    # The graded item bank that onboarding asks from, with its item parameters.
    assert "irtgate/signals/artifacts/bank/bank.jsonl.gz" in names
    assert "irtgate/signals/artifacts/bank/params.npz" in names
    assert "irtgate/policies/default.yaml" in names
    assert "irtgate/proto/decide_pb2.py" in names


def test_wheel_installs_beside_proto_plus(wheel: Path, tmp_path: Path) -> None:
    # A fresh venv with the wheel; its dependencies (and proto-plus, a dev dependency) come from
    # the test's own environment through a .pth placed after the venv's own site-packages.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "zz_host.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import proto, irtgate, irtgate.server.app, irtgate.proto.decide_pb2 as d\n"
        "assert hasattr(proto, 'Message'), proto.__file__  # proto-plus, not ours\n"
        f"assert irtgate.__file__.startswith({site!r}), irtgate.__file__\n"
        "print(proto.__file__)\n"
        "print(d.DESCRIPTOR.package)\n"
    )
    out = subprocess.run(
        [str(py), "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    proto_file, package = out.stdout.split()
    assert not proto_file.startswith(str(REPO / "proto"))
    assert package == "irtgate.v1"
