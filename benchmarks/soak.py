"""Soak: a bounded mixed load through a real Envoy, with hostile clients beside normal ones.

One ``irtgate serve`` (the embedded default policy: pii, length and difficulty signals on
every request), a demo upstream and an Envoy, all on loopback. A load process sends, at a
fixed total rate, for a fixed time:

- normal clients: realistic questions, questions carrying PII (e-mail, phone, SSN) and long
  prompts (~3,000 words);
- hostile clients (from the second quarter of the run on): large bodies (256 KiB of SSNs or
  of one repeated token) and malformed ones (broken JSON, lone surrogates, 5,000-digit
  integers, NaN, duplicate keys, a list as a content type).

It reports errors by class (a normal request that is not a 200, or a hostile one answered
with a 5xx, is an error), p50/p99 per class, the fairness figure (normal clients' p99 while
hostile clients send, against the first quarter without them) and irtgate's RSS over time.

    nice -n 10 .venv/bin/python benchmarks/soak.py [--duration 600] [--rate 100] [--quick]

Writes benchmarks/reports/soak.json and .md (not with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _http import connect, post_bytes  # benchmarks/_http.py, beside this script
from _report import write_report

NORMAL = ("plain", "pii", "long")
HOSTILE = ("large", "malformed")
_TOPICS = (
    "Explain how a hash table resolves collisions, with an example in Python.",
    "What is the capital of Australia, and why is it not Sydney?",
    "Solve for x: 3x + 7 = 22. Show each step.",
    "Summarise the causes of the French Revolution in three sentences.",
    "Write a haiku about autumn rain in a city.",
    "Which is larger, 2^10 or 10^3, and by how much?",
)


def _chat(text: str) -> bytes:
    return json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]}).encode()


def bodies(kind: str, rng: random.Random) -> bytes:
    """One request body of the given class; each call differs, so nothing is cached."""
    n = rng.randrange(1_000_000)
    if kind == "plain":
        return _chat(f"{rng.choice(_TOPICS)} (request {n})")
    if kind == "pii":
        return _chat(
            f"My e-mail is user{n}@example.com and my phone +1 415 555 {n % 10000:04d}; "
            f"my SSN is 123-45-{n % 10000:04d}. {rng.choice(_TOPICS)}"
        )
    if kind == "long":
        words = " ".join(rng.choice(_TOPICS) for _ in range(300))
        return _chat(f"Read this and answer the last question. {words} (request {n})")
    if kind == "large":
        if rng.random() < 0.5:
            return _chat(" ".join(f"123-45-{i % 10000:04d}" for i in range(23_000)))
        return _chat("token " * 43_000)
    bad = (
        b'{"model": "auto", "messages": [',
        b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "n": '
        + b"9" * 5000
        + b"}",
        b'{"model": "auto", "temperature": NaN, "messages": [{"role": "user", "content": "x"}]}',
        b'{"model": "auto", "model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}',
        b'{"model": "auto", "messages": [{"role": "user", "content": [{"type": ["text"]}]}]}',
    )
    return rng.choice(bad)


async def _request(port: int, payload: bytes, limit_s: float) -> tuple[int, float]:
    """(status, ms) on a fresh connection; status 0 = no answer within ``limit_s``."""
    t0 = time.perf_counter()
    try:
        reader, writer = await connect(port)
        try:
            writer.write(post_bytes(port, payload))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limit_s)
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(reader.readexactly(length), limit_s)
        finally:
            writer.close()
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        status = 0
    return status, (time.perf_counter() - t0) * 1000


async def _drive(port: int, duration: float, rate: float, seed: int) -> list[tuple[Any, ...]]:
    """Open-loop load: each request starts on schedule, whatever earlier ones are doing."""
    rng = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    hostile_from = duration / 4

    async def one(kind: str, at: float) -> None:
        status, ms = await _request(port, bodies(kind, rng), limit_s=30.0)
        rows.append((kind, at, status, ms))

    i = 0
    while (now := time.perf_counter() - start) < duration:
        at = i / rate
        if at > now:
            await asyncio.sleep(at - now)
        hostile = at >= hostile_from and rng.random() < 0.1
        kind = rng.choice(HOSTILE) if hostile else rng.choices(NORMAL, weights=(7, 2, 1))[0]
        t = asyncio.create_task(one(kind, at))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        i += 1
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return rows


def _load(port: int, duration: float, rate: float, q: mp.Queue[Any]) -> None:
    q.put(asyncio.run(_drive(port, duration, rate, seed=0)))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(duration: float, rate: float) -> dict[str, Any]:
    from irtgate.server.settings import DeciderKind
    from irtgate.server.testing import running_stack, stack_settings

    settings = stack_settings(decider=DeciderKind.POLICY, policy_watch=False)
    rss: list[tuple[float, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(tmp), settings, processor="subprocess", name="soak") as stack,
    ):
        assert stack.processor is not None
        pid = stack.processor.pid
        ctx = mp.get_context("spawn")
        q: mp.Queue[Any] = ctx.Queue()
        proc = ctx.Process(target=_load, args=(stack.envoy.listen_port, duration, rate, q))
        t0 = time.perf_counter()
        proc.start()
        while proc.is_alive() and q.empty():
            rss.append((time.perf_counter() - t0, _rss_mib(pid)))
            time.sleep(5)
        rows = q.get(timeout=120)
        proc.join(30)
        rss.append((time.perf_counter() - t0, _rss_mib(pid)))
        alive = stack.processor.poll() is None
    return summarise(rows, rss, duration, rate, alive)


def summarise(
    rows: list[tuple[Any, ...]], rss: list[tuple[float, float]], duration: float, rate: float,
    alive: bool,
) -> dict[str, Any]:  # fmt: skip
    classes: dict[str, Any] = {}
    errors = 0
    for kind in (*NORMAL, *HOSTILE):
        mine = [r for r in rows if r[0] == kind]
        statuses: dict[str, int] = {}
        for r in mine:
            statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
        if kind in NORMAL:
            bad = sum(n for s, n in statuses.items() if s != "200")
        else:
            bad = sum(n for s, n in statuses.items() if s == "0" or s.startswith("5"))
        errors += bad
        ms = [r[3] for r in mine]
        classes[kind] = {"n": len(mine), "statuses": statuses, "errors": bad,
                         "p50_ms": _pct(ms, 0.5), "p99_ms": _pct(ms, 0.99)}  # fmt: skip
    quiet = [r[3] for r in rows if r[0] in NORMAL and r[1] < duration / 4]
    loud = [r[3] for r in rows if r[0] in NORMAL and r[1] >= duration / 4]
    warm = [m for t, m in rss if t >= min(60.0, duration / 4)] or [m for _, m in rss]
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_at_end": os.getloadavg()[0],
        },
        "duration_s": duration,
        "rate_rps": rate,
        "requests": len(rows),
        "errors": errors,
        "classes": classes,
        "normal_p99_ms_without_hostile": _pct(quiet, 0.99),
        "normal_p99_ms_with_hostile": _pct(loud, 0.99),
        "normal_p50_ms_with_hostile": _pct(loud, 0.5),
        "rss_mib": [(round(t, 1), round(m, 1)) for t, m in rss],
        # From the first sample after warm-up (a minute, or the first quarter) to the end.
        "rss_growth_pct": (warm[-1] - warm[0]) / warm[0] * 100 if warm else float("nan"),
        "irtgate_alive_at_end": alive,
    }


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Soak: mixed load through Envoy with hostile clients",
        "",
        f"{r['duration_s']:.0f} s at {r['rate_rps']:.0f} requests/s ({r['requests']} requests), "
        f"{r['machine']['cpus']} CPUs, 1-min load average {r['machine']['loadavg_1m_at_end']:.1f} "
        "at the end. Hostile clients (10% of requests) start after the first quarter. "
        "Client, Envoy, irtgate and the demo upstream share the machine.",
        "",
        "| class | requests | statuses | errors | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for kind, c in r["classes"].items():
        st = ", ".join(f"{s}: {n}" for s, n in sorted(c["statuses"].items()))
        lines.append(
            f"| {kind} | {c['n']} | {st} | {c['errors']} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} |"
        )
    lines += [
        "",
        f"- errors: **{r['errors']}** (a normal request that is not 200; a hostile one with "
        "a 5xx or no answer)",
        f"- normal clients' p99: {r['normal_p99_ms_without_hostile']:.1f} ms without hostile "
        f"clients, **{r['normal_p99_ms_with_hostile']:.1f} ms** with them "
        f"(p50 {r['normal_p50_ms_with_hostile']:.1f} ms)",
        f"- irtgate RSS: {r['rss_mib'][0][1]:.0f} MiB at start, {r['rss_mib'][-1][1]:.0f} MiB at "
        f"the end; growth after warm-up **{r['rss_growth_pct']:+.1f}%**",
        f"- irtgate alive at the end: {r['irtgate_alive_at_end']}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Soak: mixed and hostile load through Envoy")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second, in all")
    ap.add_argument("--quick", action="store_true", help="30 s at 50 requests/s (smoke run)")
    args = ap.parse_args(argv)
    duration, rate = (30.0, 50.0) if args.quick else (args.duration, args.rate)
    r = run(duration, rate)
    md = markdown(r)
    print(md)
    if not args.quick:
        write_report("soak", r, md)
    return 0 if r["irtgate_alive_at_end"] else 1


if __name__ == "__main__":
    sys.exit(main())
