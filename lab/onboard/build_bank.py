"""Rebuild the shipped item bank from ``../shared/data/item-bank.jsonl.gz``.

    python -m irtgate.lab.onboard.build_bank [--src FILE] [--router DIR] [--out DIR]

Writes ``bank.jsonl.gz`` (the items, validated, in a stable order) and ``params.npz`` (each
item's discrimination and intercept under ``--router``, default the shipped router) to
``--out`` (default ``signals/artifacts/bank``). Run it again whenever the default router is
retrained: the parameters belong to its item heads.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from irtgate.lab.onboard.bank import (
    BANK_DIR,
    BANK_FILE,
    PARAMS_FILE,
    load_bank,
    params_from_router,
    save_params,
)

SHARED_BANK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "item-bank.jsonl.gz"


def build(src: Path, out: Path, router_dir: Path | None = None) -> int:
    """Write the bank and its parameters; return the item count."""
    from irtgate.signals.irt.runtime import IRTRouter

    items = load_bank(src, merge_repeats=True)  # validates every line
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "id": it.id,
            "benchmark": it.benchmark,
            "prompt": it.prompt,
            "answer": it.answer,
            "answer_type": it.answer_type,
            **({"choices": list(it.choices)} if it.choices else {}),
        }
        for it in items
    ]
    # mtime=0: the same input gives the same bytes, so a rebuild shows no spurious diff.
    with (
        open(out / BANK_FILE, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz,
    ):
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    router = IRTRouter.load(router_dir)
    a, b = params_from_router(router, [it.prompt for it in items])
    save_params(out / PARAMS_FILE, [it.id for it in items], a, b, router)
    return len(items)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=SHARED_BANK)
    ap.add_argument("--router", type=Path, default=None, help="default: the shipped router")
    ap.add_argument("--out", type=Path, default=BANK_DIR)
    args = ap.parse_args(argv)
    if not args.src.is_file():
        raise SystemExit(f"error: no bank at {args.src} (pass --src)")
    n = build(args.src, args.out, args.router)
    files = sorted(args.out.iterdir())
    sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e3:.0f} kB" for f in files)
    print(f"{n} items: {sizes}")


if __name__ == "__main__":
    main()
