"""Decision latency through Envoy with every signal on, for the static and minilm encoders.

One policy uses all six signals (pii, keyword, language, length, difficulty, domain) in
decisions that a plain ~500-token question does not match, so every signal is computed
for every request, and the default decision weighs four candidates by the router's P.
For each encoder, in one run on this machine:

- ``irtgate serve --policy <that policy>`` in its own process (the shipped default router
  for ``static``; for ``minilm`` the router given with ``--minilm-router``, else a stand-in
  with the same configurations and random heads, whose cost depends only on their shapes),
  a demo upstream, an Envoy with the ext_proc filter and the same Envoy without it;
- sequential requests, one keep-alive connection per Envoy, interleaved between the two
  (so drift hits both alike), each a different ~500-token prompt from a pool;
- the added latency: p50/p99 with the filter minus p50/p99 without it (medians over rounds);
- irtgate's own decision time as served: ``irtgate_decision_latency_seconds`` and the mean
  per signal from ``irtgate_signal_latency_seconds`` (scraped from ``/metrics``);
- irtgate's decision time measured exactly, in process, without Envoy or gRPC
  (``GatewayCore.decide`` on the same policy and prompts), after the Envoy run.

The load generator runs in a child process so that it shares no GIL with anything else.
The machine is shared with other work: the report gives the load average around each run.

    nice -n 10 .venv/bin/python benchmarks/decision_latency.py [--quick] [--minilm-router DIR]

Writes benchmarks/reports/decision_latency.json and .md (not with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from _http import connect, post_bytes, timed  # benchmarks/_http.py, beside this script

REPO = Path(__file__).resolve().parents[1]

REPORTS = REPO / "benchmarks" / "reports"
TARGETS = {"static_added_p50_ms": 5.0, "static_added_p99_ms": 12.0}
POOL = 64  # distinct prompts, used in turn
PROMPT_CHARS = 2110  # ~500 tokens of this English text (the report prints the measured count)

POLICY = """\
version: 1
aliases: [auto]
upstreams: [demo-small, demo-large]
catalog:
  - {name: mistral-7b, model: demo-small-1, upstream: demo-small, local: true,
     router_config: mistralai/mistral-7b-chat}
  - {name: mixtral-8x7b, model: demo-small-1, upstream: demo-small, local: true,
     router_config: mistralai/mixtral-8x7b-chat}
  - {name: gpt-3.5, model: demo-large-1, upstream: demo-large, router_config: gpt-3.5-turbo-1106,
     family: openai, budget: low}
  - {name: gpt-4, model: demo-large-1, upstream: demo-large, router_config: gpt-4-1106-preview,
     family: openai, budget: high}
signals:
  pii: {}
  urgent:
    type: keyword
    params:
      lists:
        urgent: {literals: [asap, urgent, "right now", immediately]}
        legal: {regexes: ['\\bsubpoena\\b', '\\bcease and desist\\b']}
  language: {}
  length: {}
  difficulty: {}
  domain: {}
decisions:
  - {name: personal, priority: 90, when: {signal: pii.found, eq: true}, candidates: ["*"],
     objective: {method: linear, w: 0.8}, plugins: [{pii: {action: restrict}}]}
  - {name: urgent, priority: 80, when: {signal: urgent.matched, contains_any: [urgent, legal]},
     candidates: [gpt-4], objective: {method: linear, w: 0.8}}
  - {name: german, priority: 70, when: {signal: language.code, eq: de},
     candidates: [mixtral-8x7b], objective: {method: linear, w: 0.8}}
  - {name: long, priority: 60, when: {signal: length.total, gt: 100000},
     candidates: [gpt-4], objective: {method: linear, w: 0.8}}
  - {name: very-hard, priority: 50, when: {signal: difficulty.p_max, lt: 0.05},
     candidates: [gpt-4], objective: {method: linear, w: 0.8}}
  - {name: law, priority: 40, when: {signal: domain.label, in: [law]},
     candidates: [gpt-4], objective: {method: linear, w: 0.8}}
default:
  candidates: ["*"]
  objective: {method: linear, w: 0.8}
"""

_TOPICS = (
    "the thermodynamics of a heat engine and the efficiency limits set by the second law",
    "the causes of the French Revolution and how its finances shaped the outcome",
    "the way a compiler turns a loop into vectorised machine code",
    "the structure of a protein and how folding errors can lead to disease",
    "how central banks set interest rates when inflation rises faster than wages",
    "the rules of evidence for hearsay in a civil trial",
    "how photosynthesis converts light into chemical energy in a leaf",
    "the design of a bridge that has to carry trains over a wide river",
)
_FILLER = (
    "Please explain it step by step, give the key equations or facts where they matter, "
    "say which assumptions are usually made and when they fail, compare two standard "
    "approaches and their trade-offs, and finish with a short worked example that a "
    "second-year student could follow without further reading. "
)


def prompt(i: int) -> str:
    """A ~500-token English question (different for each i)."""
    topic = _TOPICS[i % len(_TOPICS)]
    parts = [f"Question {i}: I am studying {topic}."]
    k = 0
    while sum(len(p) for p in parts) < PROMPT_CHARS:
        parts.append(f"Point {k + 1} ({i}): {_FILLER}")
        k += 1
    # Cut at a word boundary: whole filler parts step by ~70 tokens, too coarse for ~500.
    return " ".join(parts)[:PROMPT_CHARS].rsplit(" ", 1)[0]


def body(i: int) -> bytes:
    doc = {"model": "auto", "messages": [{"role": "user", "content": prompt(i)}]}
    return json.dumps(doc).encode()


async def _sequential(ports: dict[str, int], rounds: int, n: int) -> dict[str, list[list[float]]]:
    conns = {name: await connect(p) for name, p in ports.items()}
    reqs = {name: [post_bytes(p, body(i)) for i in range(POOL)] for name, p in ports.items()}
    for name in ports:  # warm-up (also the first encoder passes, ONNX arenas)
        for i in range(40):
            await timed(*conns[name], reqs[name][i % POOL])
    out: dict[str, list[list[float]]] = {name: [] for name in ports}
    k = 0
    for _ in range(rounds):
        samples: dict[str, list[float]] = {name: [] for name in ports}
        for _ in range(n):
            for name in ports:  # interleaved; both get the same prompt
                samples[name].append(await timed(*conns[name], reqs[name][k % POOL]))
            k += 1
        for name in ports:
            out[name].append(samples[name])
    for _, w in conns.values():
        w.close()
    return out


def _load(ports: dict[str, int], rounds: int, n: int, queue: mp.Queue[Any]) -> None:
    queue.put(asyncio.run(_sequential(ports, rounds, n)))


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q * 100))


def summarise(rounds: list[list[float]]) -> dict[str, float]:
    pooled = [x for r in rounds for x in r]
    return {
        "p50_ms": round(statistics.median(_pct(r, 0.50) for r in rounds), 3),
        "p99_ms": round(statistics.median(_pct(r, 0.99) for r in rounds), 3),
        "pooled_p50_ms": round(_pct(pooled, 0.50), 3),
        "pooled_p99_ms": round(_pct(pooled, 0.99), 3),
        "n": len(pooled),
    }


def _scrape(admin_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text: str = r.read().decode()
    return text


def histogram(text: str, name: str, label: str, value: str) -> dict[str, Any]:
    """Count, mean and bucket-interpolated p50/p99 (ms) of one labelled histogram."""
    sel = f'{label}="{value}"'
    buckets: list[tuple[float, float]] = []
    for m in re.finditer(rf"^{name}_bucket\{{(.*)\}} (\S+)$", text, re.M):
        labels = m.group(1)
        if sel in labels:
            le = re.search(r'le="([^"]+)"', labels)
            assert le is not None
            buckets.append((float(le.group(1)), float(m.group(2))))
    count = re.search(rf"^{name}_count\{{{sel}\}} (\S+)$", text, re.M)
    total = re.search(rf"^{name}_sum\{{{sel}\}} (\S+)$", text, re.M)
    if not count or not total or float(count.group(1)) == 0:
        return {"count": 0}
    n, s = float(count.group(1)), float(total.group(1))
    buckets.sort()

    def quantile(q: float) -> float:  # Prometheus' histogram_quantile, in ms
        rank, lo, prev = q * n, 0.0, 0.0
        for le, c in buckets:
            if c >= rank:
                if le == float("inf"):
                    return lo * 1000
                return (lo + (le - lo) * (rank - prev) / max(c - prev, 1e-9)) * 1000
            lo, prev = le, c
        return lo * 1000

    return {
        "count": int(n),
        "mean_ms": round(s / n * 1000, 3),
        "p50_ms_from_buckets": round(quantile(0.5), 2),
        "p99_ms_from_buckets": round(quantile(0.99), 2),
    }


def served(policy: Path | None, router: Path | None, rounds: int, n: int) -> dict[str, Any]:
    """The Envoy run for one router: added latency and irtgate's histograms.

    ``policy`` None: the static decider, i.e. the gateway's own cost for the same requests.
    """
    from irtgate.server.envoy_config import EnvoyOptions, render
    from irtgate.server.envoy_process import EnvoyProcess
    from irtgate.server.settings import DeciderKind
    from irtgate.server.testing import running_stack, stack_settings

    if policy is None:
        settings = stack_settings()
    else:
        settings = stack_settings(
            decider=DeciderKind.POLICY, policy_path=policy, policy_watch=False, router_path=router
        )
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(tmp), settings, processor="subprocess", name="bench") as stack,
    ):
        s = stack.settings
        # Both Envoys without access logs: the comparison is about the filter alone.
        stack.envoy.stop()
        opts = EnvoyOptions(0, 0, s.grpc_port, s.admin_port, access_log=False)
        with_filter = EnvoyProcess(
            render(s, opts), Path(tmp) / "with", die_with_parent=True
        ).start()
        base_opts = EnvoyOptions(
            0, 0, s.grpc_port, s.admin_port, access_log=False, extproc_enabled=False
        )
        baseline = EnvoyProcess(
            render(s, base_opts), Path(tmp) / "base", die_with_parent=True
        ).start()
        try:
            ports = {"envoy": baseline.listen_port, "envoy+irtgate": with_filter.listen_port}
            ctx = mp.get_context("spawn")
            queue: mp.Queue[Any] = ctx.Queue()
            proc = ctx.Process(target=_load, args=(ports, rounds, n, queue))
            proc.start()
            raw = queue.get(timeout=1800)
            proc.join()
            metrics = _scrape(s.admin_port)
        finally:
            with_filter.stop()
            baseline.stop()
    figs: dict[str, Any] = {name: summarise(r) for name, r in raw.items()}
    base, irt = figs["envoy"], figs["envoy+irtgate"]
    figs["added_p50_ms"] = round(irt["p50_ms"] - base["p50_ms"], 3)
    figs["added_p99_ms"] = round(irt["p99_ms"] - base["p99_ms"], 3)
    figs["decision_histogram"] = histogram(
        metrics, "irtgate_decision_latency_seconds", "api", "chat_completions"
    )
    figs["signals_mean_ms"] = {
        sig: histogram(metrics, "irtgate_signal_latency_seconds", "signal", sig).get("mean_ms")
        for sig in ("pii", "keyword", "language", "length", "difficulty", "domain")
    }
    figs["signals_count"] = {
        sig: histogram(metrics, "irtgate_signal_latency_seconds", "signal", sig).get("count")
        for sig in ("pii", "keyword", "language", "length", "difficulty", "domain")
    }
    figs["loadavg_1m"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    return figs


def in_process(policy: Path, router: Path | None, n: int) -> dict[str, Any]:
    """GatewayCore.decide timed exactly, without Envoy or gRPC (parse + decide + metrics)."""
    from prometheus_client import CollectorRegistry

    from irtgate.server.core import GatewayCore
    from irtgate.server.deciders import load_decider
    from irtgate.server.metrics import Metrics
    from irtgate.server.settings import DeciderKind, Settings
    from irtgate.signals.request import ApiKind

    s = Settings(
        decider=DeciderKind.POLICY, policy_path=policy, policy_watch=False, router_path=router
    )
    metrics = Metrics.create(CollectorRegistry())
    core = GatewayCore(s, load_decider(s, metrics), metrics)
    bodies = [body(i) for i in range(POOL)]

    async def go() -> list[float]:
        for i in range(40):
            await core.decide(ApiKind.CHAT, bodies[i % POOL])
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            await core.decide(ApiKind.CHAT, bodies[i % POOL])
            out.append((time.perf_counter() - t0) * 1000)
        return out

    ms = asyncio.run(go())
    return {
        "p50_ms": round(_pct(ms, 0.5), 3),
        "p99_ms": round(_pct(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "n": n,
    }


def stand_in_minilm_router(out: Path) -> Path:
    """The default router's configurations with random heads on 384-d (minilm) inputs."""
    from irtgate.lab.irt.export import export_router
    from irtgate.lab.irt.model import IRTModel
    from irtgate.signals.irt.runtime import IRTRouter

    default = IRTRouter.load(None)
    rng = np.random.default_rng(0)
    k = len(default.card["configurations"][0]["ability"])
    x = rng.normal(size=(400, 384))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    model = IRTModel(k=k, max_epochs=2, knn_p_blend=0.0)
    model.fit(x, rng.random((400, len(default.configs))))
    card = dict(default.card)
    card["encoder"] = {"name": "minilm", "hash": "stand-in"}
    return export_router(model, out, configs=list(default.configs), card=card)


def prompt_tokens() -> float:
    from irtgate.signals.base import SignalContext, registered
    from irtgate.signals.request import ApiKind, LLMRequest, Message
    from irtgate.signals.text import PromptText

    length = registered()["length"][1]({}, None)  # type: ignore[arg-type]
    counts = []
    for i in range(8):
        req = LLMRequest(ApiKind.CHAT, "auto", (Message("user", PromptText(prompt(i))),))
        counts.append(float(length.compute(SignalContext(req))["tokens"]))  # type: ignore[arg-type]
    return round(statistics.fmean(counts), 1)


def run(quick: bool, minilm_router: Path | None) -> dict[str, Any]:
    rounds, n, n_inproc = (2, 100, 200) if quick else (5, 300, 1000)
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "prompt_tokens": prompt_tokens(),
        "requests_per_target": rounds * n,
        "quick": quick,
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "all-signals.yaml"
        policy.write_text(POLICY)
        routers: dict[str, Path | None] = {"static": None}
        if minilm_router is not None:
            routers["minilm"] = minilm_router
            result["minilm_heads"] = "trained"
        else:
            print("building a stand-in minilm router ...", flush=True)
            routers["minilm"] = stand_in_minilm_router(Path(tmp) / "minilm-router")
            result["minilm_heads"] = "stand-in (random heads, same shape)"
        print(f"static decider (no signals): {rounds} x {n} requests per target ...", flush=True)
        result["no_signals"] = served(None, None, rounds, n)
        for encoder, router in routers.items():
            print(f"{encoder}: {rounds} x {n} sequential requests per target ...", flush=True)
            figs = served(policy, router, rounds, n)
            print(f"{encoder}: {n_inproc} decisions in process ...", flush=True)
            figs["in_process"] = in_process(policy, router, n_inproc)
            result[encoder] = figs
    s = result["static"]
    result["checks"] = {
        "static_added_p50_ok": s["added_p50_ms"] <= TARGETS["static_added_p50_ms"],
        "static_added_p99_ok": s["added_p99_ms"] <= TARGETS["static_added_p99_ms"],
    }
    return result


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "# Decision latency: every signal on, through Envoy",
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}. Written by "
        "`benchmarks/decision_latency.py`. A policy with all six signals (pii, keyword, "
        "language, length, difficulty, domain; every one computed for every request) and "
        f"four candidates scored by the router; prompts of {r['prompt_tokens']} tokens "
        f"(length signal count), {r['requests_per_target']} sequential requests per target, "
        "interleaved between the same Envoy with and without irtgate. Client, Envoy, irtgate "
        "and the demo upstream share the machine, which other work was also using (load "
        "averages below). p50/p99: medians over rounds, ms.",
        "",
        "The first row is the gateway alone (the static decider, no signals) on the same "
        "requests: what is left of the added latency once the decision is free.",
        "",
        "| encoder | Envoy p50 | Envoy p99 | +irtgate p50 | +irtgate p99 | **added p50** "
        "| **added p99** | load avg before / after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for enc in ("no_signals", "static", "minilm"):
        f = r[enc]
        b, i = f["envoy"], f["envoy+irtgate"]
        la = f["loadavg_1m"]
        label = "none (static decider)" if enc == "no_signals" else enc
        lines.append(
            f"| {label} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {i['p50_ms']:.2f} | "
            f"{i['p99_ms']:.2f} | **{f['added_p50_ms']:.2f}** | **{f['added_p99_ms']:.2f}** | "
            f"{la['before']:.1f} / {la['after']:.1f} |"
        )
    lines += [
        "",
        "irtgate's own decision time (parse, signals, selection, rewrite):",
        "",
        "| encoder | served: mean | served: p50 / p99 (from buckets) | in process: p50 "
        "| in process: p99 | in process: mean |",
        "|---|---|---|---|---|---|",
    ]
    for enc in ("static", "minilm"):
        h, ip = r[enc]["decision_histogram"], r[enc]["in_process"]
        lines.append(
            f"| {enc} | {h.get('mean_ms', float('nan')):.2f} | "
            f"{h.get('p50_ms_from_buckets', float('nan')):.1f} / "
            f"{h.get('p99_ms_from_buckets', float('nan')):.1f} | {ip['p50_ms']:.2f} | "
            f"{ip['p99_ms']:.2f} | {ip['mean_ms']:.2f} |"
        )
    sigs = ("pii", "keyword", "language", "length", "difficulty", "domain")
    lines += [
        "",
        "Mean time per signal as served (ms; the first learned signal, difficulty, also pays "
        "for the request's one encoder pass, which domain then reuses):",
        "",
        "| encoder | " + " | ".join(sigs) + " |",
        "|---|" + "---|" * len(sigs),
    ]
    for enc in ("static", "minilm"):
        means = r[enc]["signals_mean_ms"]
        lines.append(
            f"| {enc} | "
            + " | ".join("-" if means[s] is None else f"{means[s]:.2f}" for s in sigs)
            + " |"
        )
    c, t = r["checks"], r["targets"]
    lines += [
        "",
        f"Targets (static): added p50 <= {t['static_added_p50_ms']} ms: "
        f"{'met' if c['static_added_p50_ok'] else 'MISSED'}; added p99 <= "
        f"{t['static_added_p99_ms']} ms: {'met' if c['static_added_p99_ok'] else 'MISSED'}.",
        f"minilm heads: {r['minilm_heads']}.",
        "",
    ]
    return "\n".join(lines)


# The report's analysis is written by hand below this line; a new run keeps it.
NOTES_MARK = "<!-- hand-written notes below: decision_latency.py keeps them when it rewrites -->"


def kept_notes(previous: str) -> str:
    """The hand-written part of the previous report (from NOTES_MARK on), if any."""
    i = previous.find(NOTES_MARK)
    return "\n" + previous[i:] if i >= 0 else ""


def main() -> int:
    ap = argparse.ArgumentParser(description="decision latency through Envoy, all signals on")
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--minilm-router", type=Path, default=None, help="a trained minilm router")
    args = ap.parse_args()
    r = run(args.quick, args.minilm_router)
    md = markdown(r)
    print(md)
    if not args.quick:
        REPORTS.mkdir(parents=True, exist_ok=True)
        report = REPORTS / "decision_latency.md"
        notes = kept_notes(report.read_text() if report.is_file() else "")
        (REPORTS / "decision_latency.json").write_text(json.dumps(r, indent=2) + "\n")
        report.write_text(md + notes)
        print(f"wrote {REPORTS / 'decision_latency.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
