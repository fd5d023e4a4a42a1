"""Router commands: ``train``, ``route``, ``calibrate`` and ``router show``.

Heavy imports (numpy, onnxruntime, the encoders) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

router_app = typer.Typer(help="Inspect trained routers.", no_args_is_help=True)


def _fail(msg: str) -> SystemExit:
    # SystemExit rather than typer.Exit: server.cli.main runs click with
    # standalone_mode=False, where typer.Exit's code would be dropped.
    typer.echo(f"error: {msg}", err=True)
    return SystemExit(2)


def train(
    data: Annotated[list[Path], typer.Option("--data", help="routing data file (repeatable)")],
    out: Annotated[Path, typer.Option("--out", help="router directory to write")],
    encoder: Annotated[str, typer.Option(help="static or minilm")] = "static",
    k: Annotated[list[int] | None, typer.Option("--k", help="ability dims to sweep")] = None,
    hidden: Annotated[
        list[int] | None, typer.Option("--hidden", help="hidden units to sweep (0 = linear)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    note: Annotated[
        list[str] | None, typer.Option("--note", help="a note for the router card (repeatable)")
    ] = None,
    family: Annotated[
        bool,
        typer.Option(
            "--family/--no-family",
            help="choose a task-family prior by cross-validation (off: the IRT model alone)",
        ),
    ] = True,
) -> None:
    """Train an IRT router on routing data files and write it to OUT."""
    from signals.irt.data import DataError
    from signals.irt.model import IRTConfig
    from signals.irt.train import train_router

    for f in data:
        if not f.is_file():
            raise _fail(f"no such data file: {f}")
    if encoder not in ("static", "minilm"):
        raise _fail(f"unknown encoder {encoder!r}; expected static or minilm")
    try:
        train_router(
            data,
            out,
            encoder=encoder,
            ks=tuple(k or (8, 16, 32)),
            hiddens=tuple(hidden or (0,)),
            base=IRTConfig(seed=seed),
            seed=seed,
            log=typer.echo,
            notes=tuple(note or ()),
            family=family,
        )
    except (DataError, ValueError, RuntimeError) as e:
        raise _fail(str(e)) from e


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

    from signals.irt.runtime import IRTRouter, RouterLoadError
    from signals.irt.selection import normalize_costs, select_linear, select_target
    from signals.request import ApiKind, LLMRequest, Message
    from signals.text import PromptText

    if not 0.0 <= cost_weight <= 1.0:
        raise _fail("--cost-weight must be in [0, 1]")
    if target is not None and not 0.0 <= target <= 1.0:
        raise _fail("--target must be in [0, 1]")
    try:
        r = IRTRouter.load(router)
    except RouterLoadError as e:
        raise _fail(str(e)) from e
    req = LLMRequest(api=ApiKind.CHAT, model="auto", messages=(Message("user", PromptText(text)),))
    pred = r.predict(r.embedder().embed_request(req))
    p = np.array([pred.p[c] for c in r.configs])
    cost = np.array([r.expected_cost[c] for c in r.configs])
    if target is not None:
        choice = int(select_target(p, cost, target))
        rule = f"cheapest with P >= {target}"
    else:
        choice = int(select_linear(p, cost, cost_weight))
        rule = f"linear, w = {cost_weight}"
    nc = normalize_costs(cost)
    typer.echo(f"router      {r.directory}  (encoder {r.encoder_name})")
    typer.echo(f"difficulty  {pred.difficulty:+.3f}   discrimination {pred.discrimination:.3f}")
    if pred.family:
        top = sorted(pred.family.items(), key=lambda kv: -kv[1])[:3]
        typer.echo("resembles   " + ", ".join(f"{f} {v:.2f}" for f, v in top))
    w = max(len(c) for c in r.configs)
    typer.echo(f"  {'configuration':<{w}}  {'P(correct)':>10}  {'cost $':>10}  {'norm':>5}")
    for i in np.argsort(-p):
        mark = "  <- choice" if i == choice else ""
        typer.echo(f"  {r.configs[i]:<{w}}  {p[i]:>10.3f}  {cost[i]:>10.3g}  {nc[i]:>5.2f}{mark}")
    typer.echo(f"choice      {r.configs[choice]}  ({rule})")


def calibrate(
    router: Annotated[Path, typer.Option(help="router directory to extend")],
    name: Annotated[str, typer.Option(help="name of the new configuration")],
    answers: Annotated[Path, typer.Option(help="routing data file with the new config's scores")],
    budget: Annotated[int, typer.Option(help="at most this many questions")] = 60,
    out: Annotated[Path | None, typer.Option(help="write the extended router here")] = None,
    cost: Annotated[float | None, typer.Option(help="expected cost per query, USD")] = None,
) -> None:
    """Estimate a new configuration's ability by adaptive testing (no retraining)."""
    from signals.irt.adaptive import AdaptiveError, calibrate_from_file

    try:
        res = calibrate_from_file(
            router, name, answers, budget=budget, out=out, cost=cost, log=typer.echo
        )
    except (AdaptiveError, ValueError, FileNotFoundError, RuntimeError) as e:
        raise _fail(str(e)) from e
    typer.echo(
        f"{name}: {res.n_asked} questions, ability "
        + " ".join(f"{v:+.2f}" for v in res.theta)
        + f", posterior sd {res.posterior_sd:.3f}"
    )


@router_app.command("show")
def show(
    directory: Annotated[Path | None, typer.Argument(help="router directory")] = None,
) -> None:
    """Print a router's card: configurations, abilities, training data, metrics."""
    from signals.irt.card import render_card
    from signals.irt.runtime import IRTRouter, RouterLoadError

    try:
        r = IRTRouter.load(directory)
    except RouterLoadError as e:
        raise _fail(str(e)) from e
    typer.echo(render_card(r.card))


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("route")(route)
    app.command("calibrate")(calibrate)
    app.add_typer(router_app, name="router")
