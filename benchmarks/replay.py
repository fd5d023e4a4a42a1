"""Replay throughput: ``irtgate policy replay`` over a synthetic decision log.

Writes a log of N lines shaped like the gateway's (the cost-saver example policy's signals,
the shipped router's P for every configuration, every entry's cost), then times the replay
of ``policies/examples/cost-saver.yaml`` over it, reading and parsing included, and the
summary. The target (issue 12): 1,000,000 lines in under a minute on 2 cores.

    nice -n 10 .venv/bin/python benchmarks/replay.py [--quick] [--lines N] [--keep FILE]

Prints lines/s; writes benchmarks/reports/replay.json (not with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from irtgate.policies.compile import compile_policy
from irtgate.server.decision_log import LOG_VERSION
from irtgate.server.replay_report import summarise
from irtgate.server.replay_run import replay
from irtgate.signals.base import Resources
from irtgate.signals.irt.router_api import router_identity
from irtgate.signals.irt.runtime import IRTRouter

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "examples" / "cost-saver.yaml"
REPORTS = REPO / "benchmarks" / "reports"
TARGET_S = 60.0


def write_log(path: Path, n: int, router: IRTRouter, catalog: dict[str, str | None]) -> None:
    rng = np.random.default_rng(0)
    configs = list(router.configs)
    ident = router_identity(router)
    g = len(configs)
    chunk = 10_000
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, n, chunk):
            k = min(chunk, n - start)
            p = rng.beta(6, 2, size=(k, g))
            tokens = rng.lognormal(5.5, 1.2, size=k).astype(int) + 1
            lines = []
            for i in range(k):
                row = p[i].tolist()
                best = int(np.argmax(row))
                signals = {
                    "length.tokens": int(tokens[i]),
                    "length.messages": 2,
                    "length.has_tools": False,
                    "difficulty.difficulty": float(-row[best]),
                    "difficulty.discrimination": 2.5,
                    "difficulty.p_max": row[best],
                    "difficulty.best": configs[best],
                }
                rec = {
                    "v": LOG_VERSION,
                    "request_id": f"r{start + i}",
                    "time": 1.7e9 + start + i,
                    "api": "chat",
                    "decision": "default",
                    "outcome": "routed",
                    "latency_ms": 3.2,
                    "policy": "bench",
                    "router": ident,
                    "choice": "mistral-7b",
                    "why": ["no decision matched (easy, hard)"],
                    "signals": signals,
                    "p": dict(zip(configs, row, strict=True)),
                    "cost": {
                        name: router.expected_cost.get(cfg) if cfg else None
                        for name, cfg in catalog.items()
                    },
                    "model": "auto",
                    "computed": ["length", "difficulty"],
                    "pii": {},
                    "pii_scanned": False,
                    "tokens": float(tokens[i]),
                    "p_choice": row[0],
                    "p_fields": ["difficulty"],
                }
                lines.append(json.dumps(rec, separators=(",", ":")))
            f.write("\n".join(lines) + "\n")


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100,000 lines, no report file")
    ap.add_argument("--lines", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="write the log here and keep it")
    ap.add_argument("--workers", type=int, default=2, help="replay processes (default 2)")
    args = ap.parse_args()
    n = args.lines or (100_000 if args.quick else 1_000_000)
    router = IRTRouter.load(None)
    snap = compile_policy(POLICY.read_text(), str(POLICY), Resources(router=router))
    catalog = {e.name: e.router_config for e in snap.catalog.values()}
    tmp = None
    if args.keep is None:
        tmp = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)  # noqa: SIM115
        tmp.close()
    path = args.keep or Path(tmp.name)  # type: ignore[union-attr]
    try:
        t0 = time.perf_counter()
        if args.keep is None or not args.keep.exists():
            write_log(path, n, router, catalog)
        size = path.stat().st_size
        print(f"log: {n} lines ({size / 1e6:.0f} MB), ready in {time.perf_counter() - t0:.1f} s")
        load0 = os.getloadavg()[0]
        cpu0 = _cpu()
        t0 = time.perf_counter()
        after, before, logged, bad, counts = replay([path], snap, workers=args.workers)
        s = summarise(after, before, logged, bad, counts)
        elapsed = time.perf_counter() - t0
        cpu = _cpu() - cpu0
    finally:
        if tmp is not None:
            path.unlink(missing_ok=True)
    rate = n / elapsed
    print(
        f"replayed {s.compared} of {n} lines in {elapsed:.1f} s: {rate:,.0f} lines/s "
        f"(1M lines: {1e6 / rate:.0f} s; target < {TARGET_S:.0f} s); "
        f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores"
    )
    print(
        f"CPU time (this process and its workers) {cpu:.1f} s: {n / cpu:,.0f} lines per "
        f"CPU-second; on 2 otherwise idle cores about {cpu / 2 * 1e6 / n:.0f} s per 1M lines"
    )
    print(f"choice changes for {s.changed} ({100 * s.changed_share:.1f}%)")
    if not args.quick:
        REPORTS.mkdir(parents=True, exist_ok=True)
        (REPORTS / "replay.json").write_text(
            json.dumps(
                {
                    "lines": n,
                    "bytes": size,
                    "seconds": round(elapsed, 2),
                    "lines_per_s": round(rate),
                    "cpu_seconds": round(cpu, 2),
                    "workers": args.workers,
                    "target_s_per_million": TARGET_S,
                    "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
                    "cpus": os.cpu_count(),
                    "python": sys.version.split()[0],
                    "machine": platform.machine(),
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
