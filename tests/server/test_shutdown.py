"""SIGTERM ends `irtgate serve` within the drain time, even with a decision stuck in a
worker thread that never looks at its budget (issue 10: SIGTERM could not stop it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc

from irtgate.proto import decide_pb2, decide_pb2_grpc

DRAIN_S = 1.0

# A server whose policy has a signal that hangs (as a worker stuck in one long C call would:
# it never checks the request's budget).
SERVER = textwrap.dedent(
    """
    import asyncio, logging, sys, time
    from pathlib import Path
    from irtgate.server.app import serve
    from irtgate.server.settings import Settings, Upstream
    from irtgate.signals.base import register

    class Stuck:
        name = "t_stuck"
        fields = {"x": int}
        def compute(self, ctx):
            if "hang" not in ctx.request.last_user_text.reveal():  # the start-up warm-up
                return {"x": 0}
            print("stuck", flush=True)
            while True:
                time.sleep(0.05)

    register("t_stuck", Stuck)(lambda params, resources: Stuck())
    logging.basicConfig(level="INFO")
    port, admin, policy, drain = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    settings = Settings(
        grpc_port=port, admin_port=admin, policy_path=Path(policy), policy_watch=False,
        upstreams=(Upstream("local", "127.0.0.1", 1),), default_upstream="local",
        drain_grace_s=drain, message_timeout_s=60,
    )
    asyncio.run(serve(settings))
    """
)
POLICY = """\
version: 1
aliases: [auto]
upstreams: [local]
catalog:
  - {name: one, model: m, upstream: local}
signals:
  stuck: {type: t_stuck}
decisions:
  - name: d
    when: {signal: stuck.x, gt: 0}
    candidates: [one]
    objective: {method: linear, w: 1.0}
default:
  candidates: [one]
  objective: {method: linear, w: 1.0}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_ends_the_process_within_the_drain_time_whatever_runs(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port, admin = free_port(), free_port()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port), str(admin), str(policy), str(DRAIN_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = decide_pb2_grpc.DecideStub(channel)
        body = {"model": "auto", "messages": [{"role": "user", "content": "hang"}]}
        call = stub.Decide.future(
            decide_pb2.DecideRequest(path="/v1/chat/completions", body=json.dumps(body).encode())
        )
        assert proc.stdout is not None
        while "stuck" not in proc.stdout.readline():  # the worker is in the signal now
            pass
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=DRAIN_S + 10)
        elapsed = time.monotonic() - started
        assert elapsed < DRAIN_S + 2.5, f"took {elapsed:.1f} s to exit"
        assert proc.returncode == 1  # forced: the stuck worker was still running
        call.cancel()
        channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
