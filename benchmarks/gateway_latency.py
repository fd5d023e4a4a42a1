"""Latency through Envoy with irtgate (ext_proc) against the same Envoy without the filter.

One run, same machine, same demo upstream, same request (a small Chat Completions body with
``model: auto``, routed and rewritten by irtgate; forwarded as-is by the baseline):

- sequential: one keep-alive connection per target, requests interleaved between targets;
- concurrent: 16 keep-alive connections, rounds alternating between targets.

irtgate runs as ``irtgate serve`` in its own process (as in production), the demo upstream
in this process, the load generator in a child process so that it does not share a GIL
with either. Prints p50/p99 per target (median over rounds), the p50 difference and the
ratio, and writes ``benchmarks/reports/gateway_latency.{json,md}``.

    nice -n 10 .venv/bin/python benchmarks/gateway_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _http import connect, post_bytes, timed  # benchmarks/_http.py, beside this script
from _report import write_report

REPO = Path(__file__).resolve().parents[1]

BODY = json.dumps(
    {"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
).encode()
CONCURRENCY = 16
TLS = "/tls"  # suffix of the targets whose upstream is behind TLS


async def _sequential(ports: dict[str, int], rounds: int, n: int) -> dict[str, list[list[float]]]:
    conns = {name: await connect(p) for name, p in ports.items()}
    reqs = {name: post_bytes(p, BODY) for name, p in ports.items()}
    for name in ports:  # warm-up
        for _ in range(50):
            await timed(*conns[name], reqs[name])
    out: dict[str, list[list[float]]] = {name: [] for name in ports}
    for _ in range(rounds):
        samples: dict[str, list[float]] = {name: [] for name in ports}
        for _ in range(n):
            for name in ports:  # interleaved: drift hits both targets alike
                samples[name].append(await timed(*conns[name], reqs[name]))
        for name in ports:
            out[name].append(samples[name])
    for _, w in conns.values():
        w.close()
    return out


async def _concurrent(
    ports: dict[str, int], rounds: int, per_conn: int
) -> tuple[dict[str, list[list[float]]], dict[str, list[float]]]:
    conns = {name: [await connect(p) for _ in range(CONCURRENCY)] for name, p in ports.items()}
    reqs = {name: post_bytes(p, BODY) for name, p in ports.items()}
    out: dict[str, list[list[float]]] = {name: [] for name in ports}
    rps: dict[str, list[float]] = {name: [] for name in ports}

    async def worker(name: str, conn: tuple[Any, Any], k: int) -> list[float]:
        return [await timed(*conn, reqs[name]) for _ in range(k)]

    for name in ports:  # warm-up
        await asyncio.gather(*(worker(name, c, 5) for c in conns[name]))
    for _ in range(rounds):
        for name in ports:
            t0 = time.perf_counter()
            parts = await asyncio.gather(*(worker(name, c, per_conn) for c in conns[name]))
            elapsed = time.perf_counter() - t0
            flat = [x for p in parts for x in p]
            out[name].append(flat)
            rps[name].append(len(flat) / elapsed)
    for cs in conns.values():
        for _, w in cs:
            w.close()
    return out, rps


def _load(ports: dict[str, int], quick: bool, queue: mp.Queue[Any]) -> None:
    rounds = 3 if quick else 5
    seq = asyncio.run(_sequential(ports, rounds, 100 if quick else 400))
    conc, rps = asyncio.run(_concurrent(ports, rounds, 20 if quick else 60))
    queue.put({"sequential": seq, "concurrent": conc, "rps": rps})


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def summarise(rounds: list[list[float]]) -> dict[str, float]:
    """Median over rounds of each round's p50/p99 (ms), plus the pooled figures."""
    pooled = [x for r in rounds for x in r]
    return {
        "p50_ms": statistics.median(_pct(r, 0.50) for r in rounds),
        "p99_ms": statistics.median(_pct(r, 0.99) for r in rounds),
        "pooled_p50_ms": _pct(pooled, 0.50),
        "pooled_p99_ms": _pct(pooled, 0.99),
        "n": len(pooled),
    }


def _tls_settings(stack: Any, tmp: Path) -> tuple[Any, Any]:
    """The stack's settings with the routed upstream served over TLS by a second stand-in
    (same demo app, a throwaway CA), so the same irtgate serves both Envoys."""
    import dataclasses

    from irtgate.server.demo_upstream import DemoConfig, DemoUpstream
    from irtgate.server.settings import UpstreamTls
    from irtgate.server.testing_pki import make_pki

    pki = make_pki(tmp / "pki", "upstream.bench")
    name = stack.settings.default_choice.upstream
    tls_up = DemoUpstream(DemoConfig(name), "127.0.0.1", 0, pki.server_context())
    stack.run(tls_up.start())
    ups = tuple(
        dataclasses.replace(u, scheme="https", port=tls_up.port,
                            tls=UpstreamTls(pki.ca_file, "upstream.bench"))
        if u.name == name else u
        for u in stack.settings.upstreams
    )  # fmt: skip
    return stack.settings.replace(upstreams=ups), tls_up


def run(quick: bool, tls: bool = False) -> dict[str, Any]:
    from irtgate.server.envoy_config import EnvoyOptions, render
    from irtgate.server.envoy_process import EnvoyProcess
    from irtgate.server.testing import running_stack, stack_settings

    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(tmp), stack_settings(), processor="subprocess", name="bench") as stack,
    ):
        # Every Envoy without access logs: the comparison is about the filter alone.
        opts = EnvoyOptions(0, 0, stack.settings.grpc_port, stack.settings.admin_port,
                            access_log=False)  # fmt: skip
        base_opts = EnvoyOptions(0, 0, stack.settings.grpc_port, stack.settings.admin_port,
                                 access_log=False, extproc_enabled=False)  # fmt: skip
        stack.envoy.stop()
        variants = {"": stack.settings}
        tls_up = None
        if tls:  # the same pair again, with the upstream behind TLS
            variants[TLS], tls_up = _tls_settings(stack, Path(tmp))
        envoys: dict[str, EnvoyProcess] = {}
        try:
            for suffix, settings in variants.items():
                for name, o in (("envoy", base_opts), ("envoy+irtgate", opts)):
                    workdir = Path(tmp) / f"{name}{suffix}".replace("+", "_").replace("/", "_")
                    envoys[name + suffix] = EnvoyProcess(
                        render(settings, o), workdir, die_with_parent=True
                    ).start()
            ports = {name: e.listen_port for name, e in envoys.items()}
            queue: mp.Queue[Any] = mp.get_context("spawn").Queue()
            proc = mp.get_context("spawn").Process(target=_load, args=(ports, quick, queue))
            proc.start()
            raw = queue.get(timeout=900)
            proc.join()
        finally:
            for e in envoys.values():
                e.stop()
            if tls_up is not None:
                stack.run(tls_up.stop())
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_1m_at_end": os.getloadavg()[0]},
        "concurrency": CONCURRENCY,
        "quick": quick,
        "tls": tls,
    }  # fmt: skip
    for mode in ("sequential", "concurrent"):
        figs = {name: summarise(rounds) for name, rounds in raw[mode].items()}
        for suffix in ("", TLS) if tls else ("",):
            base, irt = figs["envoy" + suffix], figs["envoy+irtgate" + suffix]
            figs["delta_p50_ms" + suffix] = irt["p50_ms"] - base["p50_ms"]  # type: ignore[assignment]
            figs["ratio_p50" + suffix] = irt["p50_ms"] / base["p50_ms"]  # type: ignore[assignment]
            figs["ratio_p99" + suffix] = irt["p99_ms"] / base["p99_ms"]  # type: ignore[assignment]
        result[mode] = figs
    result["concurrent_rps"] = {k: statistics.median(v) for k, v in raw["rps"].items()}
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Gateway latency: Envoy + irtgate vs the same Envoy without ext_proc",
        "",
        f"Machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, "
        f"1-min load average {r['machine']['loadavg_1m_at_end']:.1f} at the end of the run. "
        "Client, Envoy, irtgate and the demo upstream share the machine. "
        "p50/p99 are medians over rounds (ms).",
        "",
        "| mode | target | p50 ms | p99 ms | requests |",
        "|---|---|---|---|---|",
    ]
    targets = ["envoy", "envoy+irtgate"]
    if r.get("tls"):
        targets += ["envoy" + TLS, "envoy+irtgate" + TLS]
    for mode in ("sequential", "concurrent"):
        for target in targets:
            f = r[mode][target]
            lines.append(
                f"| {mode} | {target} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['n']} |"
            )
    lines += ["", "| mode | Δp50 ms | p50 ratio | p99 ratio |", "|---|---|---|---|"]
    for mode in ("sequential", "concurrent"):
        f = r[mode]
        lines.append(
            f"| {mode} | {f['delta_p50_ms']:+.2f} | {f['ratio_p50']:.2f} | {f['ratio_p99']:.2f} |"
        )
    if r.get("tls"):
        lines += [
            "",
            "Upstream behind TLS (Envoy verifies a throwaway CA; same demo app): what irtgate "
            "adds should not change, since TLS is Envoy's work after the decision.",
            "",
            "| mode | Δp50 ms, plain | Δp50 ms, TLS |",
            "|---|---|---|",
        ]
        for mode in ("sequential", "concurrent"):
            f = r[mode]
            lines.append(f"| {mode} | {f['delta_p50_ms']:+.2f} | {f['delta_p50_ms' + TLS]:+.2f} |")
    rps = r["concurrent_rps"]
    lines += [
        "",
        f"Throughput with {r['concurrency']} connections: envoy {rps['envoy']:.0f} rps, "
        f"envoy+irtgate {rps['envoy+irtgate']:.0f} rps.",
        "",
        "Goal for the skeleton (static decider, no ML): at most +2 ms at p50 (sequential).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Envoy+irtgate vs Envoy latency")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument(
        "--tls", action="store_true", help="also measure with the upstream behind TLS"
    )
    args = parser.parse_args()
    r = run(args.quick, args.tls)
    md = markdown(r)
    print(md)
    if not args.quick:
        write_report("gateway_latency", r, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
