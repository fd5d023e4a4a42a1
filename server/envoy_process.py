"""Start and stop an Envoy process for a rendered config (used by ``up``, tests, benchmarks).

Ports may be 0: Envoy writes its admin address to a file (``--admin-address-path``) and the
listener's bound port is read back from the admin API, so parallel runs never collide.
Hot restart is off (``--disable-hot-restart``): it is not used, it would need a unique base id
per Envoy on a host, and with it on, Envoy exits when the process that started it dies, so a
crash of ``irtgate up`` (irtgate in process) took Envoy down instead of leaving it to serve
per its fail mode.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Final

import yaml

from irtgate.server.envoy_config import envoy_binary


class EnvoyError(RuntimeError):
    pass


_PR_SET_PDEATHSIG: Final = 1
# Resolved before any fork: the child only makes the call (no import, no lock between fork
# and exec).
_prctl: Callable[..., int] | None = None
if sys.platform == "linux":
    _prctl = ctypes.CDLL(None, use_errno=True).prctl


_setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
_SETPRIV: Final[list[str]] = [_setpriv, "--pdeathsig", "TERM", "--"] if _setpriv else []


def _parent_death_signal() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM.value)


class EnvoyProcess:
    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        log_level: str = "warn",
        log_to: IO[bytes] | None = None,
        die_with_parent: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``die_with_parent``: Envoy gets SIGTERM when the thread that starts it ends (Linux),
        for test and benchmark harnesses; ``irtgate up`` leaves it off, so that Envoy keeps
        serving per its fail mode if ``up`` is killed."""
        self.die_with_parent = die_with_parent
        self.config = config
        self.workdir = workdir
        self.log_level = log_level
        self.config_path = workdir / "envoy.yaml"
        self.log_path = workdir / "envoy.log"
        self._log_to = log_to
        # Envoy reads upstream keys from its environment (auth: {env: ...}); None: ours.
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self._own_log: IO[bytes] | None = None
        self.admin_url = ""
        self.listen_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    def start(self, timeout: float = 15.0) -> EnvoyProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        admin_path = self.workdir / "admin-address"
        admin_path.unlink(missing_ok=True)
        out = self._log_to
        if out is None:
            out = self._own_log = self.log_path.open("wb")
        # setpriv (util-linux) sets the parent-death signal and execs Envoy: no Python runs
        # between fork and exec, which a preexec_fn would do in a process with gRPC threads
        # (seen here as an aborted child). The preexec_fn is only a fallback.
        launcher = _SETPRIV if self.die_with_parent and _SETPRIV else []
        self.proc = subprocess.Popen(
            [
                *launcher,
                envoy_binary(),
                "-c",
                str(self.config_path),
                "--disable-hot-restart",
                # Access log lines within a second (Envoy's default waits up to 10 s).
                "--file-flush-interval-msec",
                "1000",
                "--admin-address-path",
                str(admin_path),
                "-l",
                self.log_level,
                "--log-format",
                "[%Y-%m-%d %T.%e][%l] %v",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_parent_death_signal if self.die_with_parent and not launcher else None,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EnvoyError(f"envoy exited with {self.proc.returncode}:\n{self.log_tail()}")
            if admin_path.exists() and admin_path.read_text().strip():
                self.admin_url = "http://" + admin_path.read_text().strip()
                port = self._listener_port()
                if port:
                    self.listen_port = port
                    return self
            time.sleep(0.02)
        self.stop()
        raise EnvoyError(f"envoy not ready after {timeout} s:\n{self.log_tail()}")

    def _listener_port(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1) as r:
                if r.status != 200:
                    return 0
            with urllib.request.urlopen(f"{self.admin_url}/listeners?format=json", timeout=1) as r:
                doc = json.load(r)
        except OSError:
            return 0
        for listener in doc.get("listener_statuses", []):
            port = listener.get("local_address", {}).get("socket_address", {}).get("port_value")
            if port:
                return int(port)
        return 0

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Counters and gauges from the admin API (``name → value``)."""
        with urllib.request.urlopen(
            f"{self.admin_url}/stats?format=json&filter={prefix}", timeout=2
        ) as r:
            doc = json.load(r)
        return {s["name"]: s["value"] for s in doc.get("stats", []) if "value" in s}

    def log_tail(self, max_chars: int = 20000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return "(no envoy log file)"

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._own_log is not None:
            self._own_log.close()
            self._own_log = None
