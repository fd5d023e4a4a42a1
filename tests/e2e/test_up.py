"""``irtgate up`` as an operator meets it: a crash of it leaves Envoy serving per its fail
mode, and no run leaves its temporary folder behind (issue 10, defect 9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from irtgate.server.testing import REPO, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-up")]

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    url: str
    tmp: Path
    out: Path

    def envoy_pid(self) -> int:
        # Children are listed per thread, and Envoy is started from a worker thread.
        tasks = Path(f"/proc/{self.proc.pid}/task").glob("*/children")
        children = " ".join(t.read_text() for t in tasks)
        for pid in map(int, children.split()):
            if Path(f"/proc/{pid}/exe").resolve().name == "envoy":
                return pid
        raise AssertionError(f"no Envoy among the children {children!r}")

    def leftovers(self) -> list[Path]:
        return sorted(self.tmp.glob("irtgate-up-*"))


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    port = free_port()
    args = [
        sys.executable, "-m", "irtgate.server.cli", "up", "--static",
        "--port", str(port), "--envoy-admin-port", str(free_port()),
        "--grpc-port", str(free_port()), "--admin-port", str(free_port()),
        "--upstream", f"demo-small=127.0.0.1:{free_port()},demo-small-1",
        "--upstream", f"demo-large=127.0.0.1:{free_port()},demo-large-1",
        "--route", "demo-small/demo-small-1@low",
    ]  # fmt: skip
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "up.log"
    env = {**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1"}
    with out.open("wb") as log:
        proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    handle = Up(proc, f"http://127.0.0.1:{port}", tmp, out)
    envoy: int | None = None
    try:
        deadline = time.monotonic() + 60
        while b"irtgate is up" not in out.read_bytes():
            assert proc.poll() is None, out.read_text(errors="replace")
            assert time.monotonic() < deadline, out.read_text(errors="replace")
            time.sleep(0.1)
        envoy = handle.envoy_pid()
        yield handle
    finally:
        # Envoy outlives a killed `up` (that is the point): never leave one behind.
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if envoy is not None and Path(f"/proc/{envoy}").exists() and not _zombie(envoy):
            os.kill(envoy, signal.SIGKILL)


def test_kill_9_of_up_leaves_envoy_serving_per_fail_mode(up: Up) -> None:
    assert httpx.post(up.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
    envoy = up.envoy_pid()
    assert up.leftovers() == []  # Envoy has read its config: the folder is gone already
    up.proc.kill()
    up.proc.wait(10)
    try:
        time.sleep(0.5)
        # Fail-closed: irtgate is gone, so Envoy answers for it, as JSON.
        r = httpx.post(up.url + "/v1/chat/completions", json=CHAT, timeout=10)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "routing_unavailable"
    finally:
        with suppress(ProcessLookupError):
            os.kill(envoy, signal.SIGTERM)
    assert up.leftovers() == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_up_stops_everything_and_cleans_up_on_signals(up: Up, sig: signal.Signals) -> None:
    envoy = up.envoy_pid()
    up.proc.send_signal(sig)
    assert up.proc.wait(30) == 0, up.out.read_text(errors="replace")
    assert not Path(f"/proc/{envoy}").exists() or _zombie(envoy)
    assert up.leftovers() == []
    with pytest.raises(httpx.ConnectError):
        httpx.post(up.url + "/v1/chat/completions", json=CHAT, timeout=5)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:  # gone meanwhile
        return True


def test_harness_envoy_dies_with_its_parent(tmp_path: Path) -> None:
    # Test and benchmark harnesses ask for the opposite of `up`: no Envoy outlives them.
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from irtgate.server.envoy_config import EnvoyOptions, render\n"
        "from irtgate.server.envoy_process import EnvoyProcess\n"
        "from irtgate.server.testing import stack_settings\n"
        "e = EnvoyProcess(render(stack_settings(), EnvoyOptions(0, 0, 1, 2)), Path(sys.argv[1]),\n"
        "                 die_with_parent=True).start()\n"
        "print(e.proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        envoy = int(parent.stdout.readline())
        assert Path(f"/proc/{envoy}").exists()
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{envoy}").exists() and not _zombie(envoy):
        assert time.monotonic() < deadline, "Envoy outlived the process that started it"
        time.sleep(0.1)
