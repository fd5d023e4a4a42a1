"""deploy/Dockerfile: hadolint, and the properties the image promises (serving install only,
non-root, HEALTHCHECK on irtgate's /healthz, every source folder copied)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry

from irtgate.server.admin import admin_app
from irtgate.server.settings import Settings
from tests.deploy.manifests import DEPLOY, REPO, dev_tool

DOCKERFILE = DEPLOY / "Dockerfile"
INSTALL_SCRIPT = DEPLOY / "docker" / "install-serving.sh"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dev_tool("hadolint"), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def test_hadolint_passes() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_live(tmp_path: Path) -> None:
    # The lint must be able to fail: an untagged base image is one of its rules (DL3006).
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN echo hi\n")
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3006" in result.stdout


def test_multi_stage_non_root_final_image() -> None:
    assert sum(word == "FROM" for word, _ in instructions()) >= 2
    final = final_stage()
    users = [args for word, args in final if word == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    # Nothing after USER may need root, and the venv comes from the build stage.
    assert any(word == "COPY" and args.startswith("--from=build") for word, args in final)


def test_healthcheck_asks_irtgates_admin_healthz() -> None:
    checks = [args for word, args in final_stage() if word == "HEALTHCHECK"]
    assert len(checks) == 1
    port = Settings().admin_port
    assert f"127.0.0.1:{port}/healthz" in checks[0]
    routes = admin_app(CollectorRegistry(), lambda: True).router.routes()
    paths = {r.resource.canonical for r in routes if r.resource is not None}
    assert "/healthz" in paths


def test_serving_install_only() -> None:
    text = DOCKERFILE.read_text() + INSTALL_SCRIPT.read_text()
    # The extras carry the lab (scikit-learn, scipy, ...), training (torch) and NER models.
    assert not re.search(r"\[(lab|train|ner|dev)[],]", text)
    runs = [args for word, args in instructions() if word == "RUN"]
    assert any("install-serving.sh" in run for run in runs), "the image must use the tested script"
    # The wheel is built alone, but installed with every dependency it declares.
    installs = [line for line in text.splitlines() if re.search(r"pip\"? install", line)]
    assert installs and not any("--no-deps" in line for line in installs)


def test_every_package_folder_is_copied() -> None:
    # irtgate/ is a folder of symlinks; the build context must include every target.
    copied = {args.split()[0] for word, args in instructions() if word == "COPY"}
    targets = {p.resolve().relative_to(REPO).parts[0] for p in (REPO / "irtgate").iterdir()
               if p.is_symlink()}  # fmt: skip
    assert targets, "irtgate/ should link the top-level folders"
    missing = targets - copied
    assert not missing, f"deploy/Dockerfile does not COPY {sorted(missing)}"
    ignored = {
        line.strip().strip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not (targets | {"irtgate", "deploy", "pyproject.toml", "README.md"}) & ignored
