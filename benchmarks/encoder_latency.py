"""Encoder latency, throughput and memory: MiniLM (int8 ONNX, capped window) and static.

Measured in one run on this machine:

- per-text latency (p50/p99 of ``encode([text])``: tokenization, window, inference) for
  prompts of 16/64/128/256/500 tokens; MiniLM sees at most its window (64 with specials);
- MiniLM intra-op thread sweep (1 vs 2) at 128 tokens;
- throughput for calls of 8 and 32 texts (~100 tokens each), MiniLM unbatched (default,
  batch-independent vectors) and padded-batched;
- resident memory (RSS) of a fresh process after loading each encoder and encoding once.

Writes ``benchmarks/reports/encoder_latency.{json,md}``. The machine is shared: the load
average at start and end goes into the report.

    nice -n 10 .venv/bin/python benchmarks/encoder_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import write_report  # benchmarks/_report.py, beside this script

REPO = Path(__file__).resolve().parents[1]

LENGTHS = (16, 64, 128, 256, 500)
# Varied vocabulary so that token counts are realistic and no cache trick applies.
_PROSE = (
    "the committee reviewed annual budget forecasts while engineers measured bridge "
    "vibrations under heavy traffic; which statement best explains why photosynthesis "
    "requires light energy and how enzymes lower activation energy in cells? consider "
    "a train leaving at noon with 240 passengers, the derivative of sin(x) times x squared, "
    "and a Python function that parses ISO dates."
)
WORDS = tuple(_PROSE.split())


def text_of(n_tokens: int, tokenizer: Any, seed: int = 0) -> str:
    """A prompt of exactly ``n_tokens`` MiniLM word pieces (without [CLS]/[SEP])."""
    rng = np.random.default_rng(seed + n_tokens)
    words: list[str] = []
    while len(tokenizer.encode(" ".join(words), add_special_tokens=False).ids) < n_tokens:
        words.append(str(rng.choice(WORDS)))
    ids = tokenizer.encode(" ".join(words), add_special_tokens=False).ids[:n_tokens]
    return str(tokenizer.decode(ids))


def timed(fn: Any, repeat: int, warmup: int = 5) -> tuple[list[float], list[float]]:
    """Wall and CPU (this process, all threads) milliseconds per call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    return wall, cpu


def summary(runs: tuple[list[float], list[float]]) -> dict[str, float]:
    # CPU time is the steadier figure on a shared machine: waiting for a core is not in it.
    wall, cpu = runs
    return {
        "p50_ms": round(float(np.percentile(wall, 50)), 3),
        "p99_ms": round(float(np.percentile(wall, 99)), 3),
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
        "n": len(wall),
    }


def rss_after_load(name: str) -> float:
    code = (
        "from irtgate.signals.encoders.load import load_encoder\n"
        f"e = load_encoder({name!r}); e.encode(['warm up the session'])\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(out.stdout.strip()) / 1024.0, 1)


def rss_baseline() -> float:
    code = (
        "import numpy\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(out.stdout.strip()) / 1024.0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeat = 30 if args.quick else 200

    from irtgate.signals.encoders.load import load_encoder
    from irtgate.signals.encoders.minilm import MiniLMEncoder
    from irtgate.signals.encoders.static import StaticEncoder
    from irtgate.signals.encoders.tokenizer import load_tokenizer

    load_start = os.getloadavg()
    minilm = load_encoder("minilm")
    static = load_encoder("static")
    assert isinstance(minilm, MiniLMEncoder) and isinstance(static, StaticEncoder)
    tok = load_tokenizer(minilm.info.path / "tokenizer.json")
    texts = {n: text_of(n, tok) for n in LENGTHS}

    per_text: dict[str, dict[str, Any]] = {"minilm": {}, "static": {}}
    for n in LENGTHS:
        for name, enc in (("minilm", minilm), ("static", static)):
            t = texts[n]
            per_text[name][str(n)] = summary(timed(lambda e=enc, t=t: e.encode([t]), repeat))
            print(f"{name:7s} {n:4d} tokens: {per_text[name][str(n)]}", flush=True)

    threads: dict[str, Any] = {}
    for th in (1, 2):
        enc = MiniLMEncoder(minilm.info.path, threads=th)
        threads[str(th)] = summary(timed(lambda e=enc: e.encode([texts[128]]), repeat))
        print(f"minilm threads={th} 128 tokens: {threads[str(th)]}", flush=True)

    batched = MiniLMEncoder(minilm.info.path, batched=True)
    rng = np.random.default_rng(1)
    throughput: dict[str, Any] = {}
    for size in (8, 32):
        batch = [text_of(int(rng.integers(60, 140)), tok, seed=1000 + i) for i in range(size)]
        reps = max(5, repeat // size)
        for label, enc2 in (("minilm", minilm), ("minilm_batched", batched), ("static", static)):
            ms, _ = timed(lambda e=enc2, b=batch: e.encode(b), reps, warmup=2)
            med = float(np.median(ms))
            throughput.setdefault(label, {})[str(size)] = {
                "call_p50_ms": round(med, 2),
                "texts_per_s": round(size / med * 1000.0, 1),
            }
            print(f"{label:15s} batch {size:2d}: {throughput[label][str(size)]}", flush=True)

    rss = {"python_numpy_baseline": rss_baseline()}
    for name in ("static", "minilm"):
        rss[name] = rss_after_load(name)
    print(f"RSS MiB: {rss}", flush=True)

    sizes = {
        name: round(
            sum(
                f.stat().st_size
                for f in (REPO / "signals" / "artifacts" / "encoders" / name).iterdir()
            )
            / 2**20,
            1,
        )
        for name in ("static", "minilm")
    }
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "windows": {"minilm": minilm.window.to_json(), "static": static.window.to_json()},
        "minilm_threads_default": minilm._session.get_session_options().intra_op_num_threads,
        "per_text_latency": per_text,
        "minilm_threads_128_tokens": threads,
        "throughput": throughput,
        "rss_mib": rss,
        "artifact_mib": sizes,
        "repeat": repeat,
    }
    write_report("encoder_latency", report, markdown(report))


def _window(w: dict[str, int]) -> str:
    return f"{w['max_tokens']} tokens ({w['head']} head + {w['max_tokens'] - w['head']} tail)"


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "# Encoder latency",
        "",
        f"{m['cpus']} CPUs, Python {m['python']}, load average {m['loadavg_start'][0]} at start"
        f" and {m['loadavg_end'][0]} at end (shared machine). {r['repeat']} runs per cell.",
        f"Windows: MiniLM {_window(r['windows']['minilm'])} + [CLS]/[SEP], static"
        f" {_window(r['windows']['static'])}; MiniLM intra-op threads"
        f" {r['minilm_threads_default']}. Longer prompts cost MiniLM only their tokenization:"
        " it never sees more than its window.",
        "CPU p50 is the process's CPU time per call, the steadier figure when other jobs"
        " share the cores (wall time then includes waiting for one).",
        "",
        "## Per-text latency, `encode([text])` (ms)",
        "",
        "| prompt tokens | MiniLM p50 | MiniLM p99 | MiniLM CPU p50 | static p50 | static p99 |"
        " static CPU p50 |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in LENGTHS:
        a, b = r["per_text_latency"]["minilm"][str(n)], r["per_text_latency"]["static"][str(n)]
        lines.append(
            f"| {n} | {a['p50_ms']} | {a['p99_ms']} | {a['cpu_p50_ms']} | {b['p50_ms']} |"
            f" {b['p99_ms']} | {b['cpu_p50_ms']} |"
        )
    lines += [
        "",
        "## MiniLM intra-op threads, 128 tokens (ms)",
        "",
        "| threads | p50 | p99 | CPU p50 (all threads) |",
        "|---:|---:|---:|---:|",
    ]
    for th, s in r["minilm_threads_128_tokens"].items():
        lines.append(f"| {th} | {s['p50_ms']} | {s['p99_ms']} | {s['cpu_p50_ms']} |")
    lines += [
        "",
        "## Throughput, one call with a batch of texts (~60-140 tokens each)",
        "",
        "| encoder | batch | call p50 (ms) | texts/s |",
        "|---|---:|---:|---:|",
    ]
    for label, by_size in r["throughput"].items():
        for size, s in by_size.items():
            lines.append(f"| {label} | {size} | {s['call_p50_ms']} | {s['texts_per_s']} |")
    rss = r["rss_mib"]
    lines += [
        "",
        "## Memory and size",
        "",
        f"RSS of a fresh process after loading and one encode: static {rss['static']} MiB,"
        f" MiniLM {rss['minilm']} MiB (python + numpy alone: {rss['python_numpy_baseline']}"
        " MiB).",
        f"Artifacts on disk: static {r['artifact_mib']['static']} MiB, MiniLM"
        f" {r['artifact_mib']['minilm']} MiB.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
