"""Run every benchmark in turn (what ``make bench`` does); each writes its own report.

Benchmarks run one after another, never together: they share the machine's two cores,
and a latency figure measured beside another benchmark says little. Those that read
``../shared/data`` are skipped, with the reason, where it is absent.

    python benchmarks/run_all.py            # all of them
    python benchmarks/run_all.py router_latency gateway_latency
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parent.parent / "shared" / "data"


@dataclass(frozen=True)
class Bench:
    name: str
    needs_shared: bool = False  # reads ../shared/data
    quick_flag: str | None = "--quick"  # how the script is asked for a short run

    @property
    def script(self) -> Path:
        return HERE / f"{self.name}.py"


# Cheapest first, so that a broken set-up shows up before the long quality runs.
BENCHES: tuple[Bench, ...] = (
    Bench("encoder_latency"),
    Bench("router_latency", quick_flag=None),
    Bench("pii_quality", quick_flag=None),
    Bench("gateway_latency"),
    Bench("decision_latency"),
    Bench("workers"),
    Bench("soak"),
    Bench("router_quality", needs_shared=True, quick_flag=None),
    Bench("onboarding", needs_shared=True),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="short runs where a script has them")
    args = ap.parse_args(argv)

    known = {b.name: b for b in BENCHES}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; known: {sorted(known)}")
    chosen = [known[n] for n in args.names] if args.names else list(BENCHES)

    failed: list[str] = []
    for bench in chosen:
        if not bench.script.exists():
            print(f"== {bench.name}: skipped ({bench.script.name} is not in this checkout)")
            continue
        if bench.needs_shared and not SHARED_DATA.is_dir():
            print(f"== {bench.name}: skipped (needs the shared routing data at {SHARED_DATA})")
            continue
        cmd = [sys.executable, str(bench.script)]
        if args.quick and bench.quick_flag:
            cmd.append(bench.quick_flag)
        print(f"== {bench.name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd, cwd=HERE.parent)
        print(f"== {bench.name}: exit {rc} after {time.perf_counter() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(bench.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    print("reports: benchmarks/reports/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
