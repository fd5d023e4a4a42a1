"""Decisions per second with every signal on, for ``irtgate serve --workers N``.

The policy is decision_latency.py's: all six signals (pii, keyword, language, length,
difficulty, domain) computed for every request, four candidates weighed by the shipped
router's P(correct), ~500-token prompts from a pool of 64. For each N:

- ``irtgate serve --policy <it> --no-watch --workers N`` as its own process group (N = 1:
  plain ``serve``, one process);
- closed-loop clients straight to the gRPC ``Decide`` service: client processes (spawned,
  so they share no GIL with each other), each with several connections of its own (one
  TCP connection each, so ``SO_REUSEPORT`` spreads them) and a few calls in flight on each;
- after a warm-up, decisions completed in a fixed window -> decisions/s; failures counted;
- the resident memory (VmRSS) of every worker and of the supervisor, after the run.

Envoy is left out on purpose: it would take a share of the same cores, and what scales
with N is the decision. Clients and workers share the machine (and with it, other work):
the report gives the load average around each run.

    nice -n 10 .venv/bin/python benchmarks/workers.py [--quick] [--workers 1,2]

Writes benchmarks/reports/workers.json and .md (not with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _report import write_report  # benchmarks/_report.py, beside this script
from decision_latency import POLICY, POOL, body  # benchmarks/, beside this script

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readyz(admin: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2) as r:
            doc: dict[str, Any] = json.loads(r.read())
            return doc
    except OSError:
        return None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def _client(port: int, conns: int, inflight: int, warmup: float, window: float) -> Any:
    import grpc

    from irtgate.proto import decide_pb2, decide_pb2_grpc

    reqs = [
        decide_pb2.DecideRequest(path="/v1/chat/completions", body=body(i)) for i in range(POOL)
    ]
    # A local subchannel pool: otherwise channels to one target share one TCP connection.
    channels = [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(conns)
    ]
    stubs = [decide_pb2_grpc.DecideStub(c) for c in channels]
    t0 = time.monotonic()
    start, end = t0 + warmup, t0 + warmup + window
    done, failed = 0, 0

    async def loop(stub: Any, k: int) -> None:
        nonlocal done, failed
        i = k
        while time.monotonic() < end:
            try:
                await stub.Decide(reqs[i % POOL], timeout=30)
                ok = True
            except grpc.aio.AioRpcError:
                ok = False
            if start <= time.monotonic() <= end:  # completions inside the window only
                done += ok
                failed += not ok
            i += 7

    await asyncio.gather(
        *(loop(s, j * inflight + k) for j, s in enumerate(stubs) for k in range(inflight))
    )
    for c in channels:
        await c.close()
    return done, failed


def _client_proc(
    port: int, conns: int, inflight: int, warmup: float, window: float, q: Any
) -> None:
    q.put(asyncio.run(_client(port, conns, inflight, warmup, window)))


def run_n(
    policy: Path, n: int, clients: int, conns: int, inflight: int, warmup: float, window: float
) -> dict[str, Any]:
    grpc_port, admin = free_port(), free_port()
    args = [
        sys.executable, "-m", "irtgate.server.cli", "serve", "--policy", str(policy), "--no-watch",
        "--grpc-port", str(grpc_port), "--admin-port", str(admin), "--log-level", "warning",
        "--workers", str(n),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while (status := readyz(admin)) is None or status["status"] != "ready":
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"irtgate serve --workers {n} did not become ready")
            time.sleep(0.2)
        pids = [w["pid"] for w in status.get("workers", [])] or [server.pid]
        load_before = os.getloadavg()
        ctx = mp.get_context("spawn")
        q: Any = ctx.Queue()
        procs = [
            ctx.Process(target=_client_proc, args=(grpc_port, conns, inflight, warmup, window, q))
            for _ in range(clients)
        ]
        for p in procs:
            p.start()
        results = [q.get(timeout=warmup + window + 120) for _ in procs]
        for p in procs:
            p.join()
        load_after = os.getloadavg()
        done = sum(r[0] for r in results)
        return {
            "workers": n,
            "decisions": done,
            "failed": sum(r[1] for r in results),
            "decisions_per_s": round(done / window, 1),
            "rss_mib_per_worker": [rss_mib(p) for p in pids],
            "rss_mib_supervisor": rss_mib(server.pid) if n > 1 else None,
            "loadavg_1m": {"before": load_before[0], "after": load_after[0]},
        }
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def run(quick: bool, ns: list[int]) -> dict[str, Any]:
    warmup, window = (3.0, 10.0) if quick else (10.0, 60.0)
    clients, conns, inflight = 2, 4, 2
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "quick": quick,
        "window_s": window,
        "clients": {
            "processes": clients,
            "connections_each": conns,
            "in_flight_per_connection": inflight,
        },
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "all-signals.yaml"
        policy.write_text(POLICY)
        for n in ns:
            print(f"--workers {n}: {warmup:.0f} s warm-up, {window:.0f} s measured ...", flush=True)
            result["runs"].append(run_n(policy, n, clients, conns, inflight, warmup, window))
    by_n = {r["workers"]: r["decisions_per_s"] for r in result["runs"]}
    if 1 in by_n and by_n[1] > 0:
        result["ratio_to_one_worker"] = {str(n): round(v / by_n[1], 2) for n, v in by_n.items()}
    return result


def markdown(r: dict[str, Any]) -> str:
    m, c = r["machine"], r["clients"]
    lines = [
        "# Decisions per second by worker count, every signal on",
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}. Written by `benchmarks/workers.py`"
        f"{' (quick run)' if r['quick'] else ''}. decision_latency.py's policy (all six "
        "signals, four candidates), ~500-token prompts, straight to gRPC `Decide` (no Envoy); "
        f"{c['processes']} client processes x {c['connections_each']} connections x "
        f"{c['in_flight_per_connection']} calls in flight, on the same machine; "
        f"{r['window_s']:.0f} s measured after a warm-up. Other work shared the machine: "
        "see the load averages.",
        "",
        "| workers | decisions/s | ratio to 1 | failed | RSS per worker (MiB) | supervisor RSS "
        "(MiB) | load avg before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = r.get("ratio_to_one_worker", {})
    for run in r["runs"]:
        la = run["loadavg_1m"]
        sup = "-" if run["rss_mib_supervisor"] is None else f"{run['rss_mib_supervisor']:.0f}"
        lines.append(
            f"| {run['workers']} | {run['decisions_per_s']:.1f} | "
            f"{ratios.get(str(run['workers']), '-')} | {run['failed']} | "
            f"{', '.join(f'{x:.0f}' for x in run['rss_mib_per_worker'])} | {sup} | "
            f"{la['before']:.1f} / {la['after']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description="decisions/s by worker count, all signals on")
    ap.add_argument("--quick", action="store_true", help="a 10 s window per worker count")
    ap.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    args = ap.parse_args()
    r = run(args.quick, [int(x) for x in args.workers.split(",")])
    md = markdown(r)
    print(md)
    if not args.quick:
        write_report("workers", r, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
