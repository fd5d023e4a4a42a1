"""``irtgate policy replay``: what a policy edit would do to the traffic already logged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from irtgate.policies.compile import Snapshot
    from irtgate.signals.base import Resources


def _compile(path: Path, res: Resources) -> Snapshot:
    from irtgate.policies.compile import compile_policy
    from irtgate.policies.errors import PolicyError
    from irtgate.policies.loader import load_source

    try:
        label, text = load_source(path)
        return compile_policy(text, label, res)
    except PolicyError as e:
        for p in e.problems:
            typer.echo(str(p), err=True)
        typer.echo(f"{path}: not a valid policy (see `irtgate policy check`)", err=True)
        raise SystemExit(2) from None


def _router_only(router: Path | None, no_router: bool) -> Resources:
    """The router's card and heads, never its encoder: replay runs no model."""
    from irtgate.signals.base import Resources

    if no_router:
        return Resources()
    from irtgate.signals.irt.runtime import IRTRouter

    return Resources(router=IRTRouter.load(router))


def replay_command(
    log: Annotated[
        list[Path], typer.Option("--log", help="Decision log file (repeat; .gz is read too).")
    ],
    policy: Annotated[Path, typer.Option("--policy", help="The policy to replay (NEW).")],
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Replay this policy too and compare with it (default: the logged choices)."
        ),
    ] = None,
    router: Annotated[
        Path | None,
        typer.Option("--router", help="Router directory (default: the shipped default router)."),
    ] = None,
    no_router: Annotated[
        bool, typer.Option("--no-router", help="Replay a log written without a router.")
    ] = False,
    md: Annotated[
        Path | None, typer.Option("--md", help="Also write the report as Markdown.")
    ] = None,
    png: Annotated[
        Path | None, typer.Option("--png", help="Also draw it (needs the lab extra).")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Processes reading the log (0: one per core, up to 8).")
    ] = 0,
) -> None:
    """Re-decide every logged request under --policy from the logged signal values and P,
    with no model and no upstream; report what changes (choice, expected accuracy and
    cost, traffic per model, budget and decision, newly blocked requests)."""
    from irtgate.server.replay import ReplayRefused
    from irtgate.server.replay_report import (
        MissingExtra,
        render_markdown,
        render_png,
        render_text,
        summarise,
    )
    from irtgate.server.replay_run import default_workers, replay

    for f in log:
        if not f.is_file():
            typer.echo(f"irtgate: error: no decision log {f}", err=True)
            raise SystemExit(2)
    res = _router_only(router, no_router)
    new = _compile(policy, res)
    old = _compile(baseline, res) if baseline is not None else None
    started = time.perf_counter()
    try:
        after, before, logged, bad, counts = replay(
            log, new, old, workers=workers or default_workers()
        )
    except ReplayRefused as e:
        typer.echo(f"irtgate: replay refused: {e}", err=True)
        raise SystemExit(1) from None
    summary = summarise(after, before, logged, bad, counts)
    elapsed = time.perf_counter() - started
    title = f"{policy.name}" + (f" vs {baseline.name}" if baseline is not None else "")
    typer.echo(render_text(summary), nl=False)
    typer.echo(f"({summary.lines} lines in {elapsed:.1f} s)")
    if md is not None:
        md.write_text(render_markdown(summary, title), encoding="utf-8")
    if png is not None:
        try:
            render_png(summary, png, title)
        except MissingExtra as e:
            typer.echo(f"irtgate: error: {e}", err=True)
            raise SystemExit(1) from None
