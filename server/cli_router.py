"""Router commands of the serving core: ``route`` and ``router show``.

Training and calibration are the lab's (``irtgate.lab.cli_train``).

Heavy imports (numpy, onnxruntime, the encoders) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

router_app = typer.Typer(help="Inspect trained routers.", no_args_is_help=True)


def _fail(msg: str) -> SystemExit:
    # SystemExit rather than typer.Exit: irtgate.server.cli.main runs click with
    # standalone_mode=False, where typer.Exit's code would be dropped.
    typer.echo(f"error: {msg}", err=True)
    return SystemExit(2)


def route(
    text: Annotated[str, typer.Argument(help="the prompt (the last user turn)")],
    router: Annotated[Path | None, typer.Option(help="router directory (default: shipped)")] = None,
    cost_weight: Annotated[
        float, typer.Option("--cost-weight", help="w in [0,1]: 1 = quality only")
    ] = 0.5,
    target: Annotated[
        float | None, typer.Option(help="cheapest configuration with P >= target instead")
    ] = None,
) -> None:
    """Print difficulty, P(correct) per configuration, expected cost and the choice."""
    import numpy as np

    from irtgate.signals.irt.runtime import IRTRouter, RouterLoadError
    from irtgate.signals.irt.selection import normalize_costs, select_linear, select_target
    from irtgate.signals.request import ApiKind, LLMRequest, Message
    from irtgate.signals.text import PromptText

    if not 0.0 <= cost_weight <= 1.0:
        raise _fail("--cost-weight must be in [0, 1]")
    if target is not None and not 0.0 <= target <= 1.0:
        raise _fail("--target must be in [0, 1]")
    try:
        r = IRTRouter.load(router)
    except RouterLoadError as e:
        raise _fail(str(e)) from e
    req = LLMRequest(api=ApiKind.CHAT, model="auto", messages=(Message("user", PromptText(text)),))
    scores = r.score(r.embedder().embed_request(req))
    p = np.array([scores.p[c] for c in r.configs])
    # An unknown cost (None) is NaN for the selection rules: the top of the cost scale.
    cost = np.array([np.nan if (c := scores.cost[g]) is None else c for g in r.configs])
    if target is not None:
        choice = int(select_target(p, cost, target))
        rule = f"cheapest with P >= {target}"
    else:
        choice = int(select_linear(p, cost, cost_weight))
        rule = f"linear, w = {cost_weight}"
    nc = normalize_costs(cost)
    typer.echo(f"router      {r.directory}  (encoder {r.encoder_name})")
    typer.echo(f"difficulty  {scores.difficulty:+.3f}   discrimination {scores.discrimination:.3f}")
    if scores.family:
        top = sorted(scores.family.items(), key=lambda kv: -kv[1])[:3]
        typer.echo("resembles   " + ", ".join(f"{f} {v:.2f}" for f, v in top))
    w = max(len(c) for c in r.configs)
    typer.echo(f"  {'configuration':<{w}}  {'P(correct)':>10}  {'cost $':>10}  {'norm':>5}")
    for i in np.argsort(-p):
        mark = "  <- choice" if i == choice else ""
        cs = "unknown" if np.isnan(cost[i]) else f"{cost[i]:.3g}"
        typer.echo(f"  {r.configs[i]:<{w}}  {p[i]:>10.3f}  {cs:>10}  {nc[i]:>5.2f}{mark}")
    if np.isnan(cost).any():
        typer.echo("  (an unknown cost counts as the dearest: norm 1.00)")
    typer.echo(f"choice      {r.configs[choice]}  ({rule})")


@router_app.command("show")
def show(
    directory: Annotated[Path | None, typer.Argument(help="router directory")] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="also list this policy's catalog entries and whose P each uses"),
    ] = None,
) -> None:
    """Print a router's card: configurations, abilities, training data, metrics."""
    from irtgate.signals.irt.card import render_card
    from irtgate.signals.irt.runtime import IRTRouter, RouterLoadError

    try:
        r = IRTRouter.load(directory)
    except RouterLoadError as e:
        raise _fail(str(e)) from e
    typer.echo(render_card(r.card))
    if policy is not None:
        _show_catalog(r, policy)


def _show_catalog(router: object, policy: Path) -> None:
    """The policy's catalog against this router: which configuration's P each entry uses."""
    from irtgate.policies.borrow import borrowed_p
    from irtgate.policies.errors import PolicyError
    from irtgate.policies.loader import load_source, parse_yaml, validate_schema

    try:
        label, text = load_source(policy)
        spec = validate_schema(parse_yaml(text, label))
    except PolicyError as e:
        raise _fail(str(e)) from e
    borrowed = borrowed_p(spec.catalog, router)
    typer.echo("")
    typer.echo(f"catalog of {policy}: the router configuration whose P each entry uses")
    for entry in spec.catalog:
        rc = entry.router_config or "(none: P unknown)"
        budget = f" @ {entry.family}:{entry.budget}" if entry.budget is not None else ""
        note = f"  <- borrowed: {borrowed[entry.name]}" if entry.name in borrowed else ""
        typer.echo(f"  {entry.name}{budget} -> {rc}{note}")


def register(app: typer.Typer) -> None:
    app.command("route")(route)
    app.add_typer(router_app, name="router")
