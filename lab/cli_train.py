"""Lab commands that build routers: ``train`` and ``calibrate``.

Heavy imports happen inside the commands, after
:func:`irtgate.lab.cli_support.require_lab` has checked
that the lab extra is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irtgate.lab.cli_support import fail as _fail
from irtgate.lab.cli_support import require_lab


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
    require_lab("train")
    from irtgate.lab.irt.data import DataError
    from irtgate.lab.irt.model import IRTConfig
    from irtgate.lab.irt.train import train_router

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


def calibrate(
    router: Annotated[Path, typer.Option(help="router directory to extend")],
    name: Annotated[str, typer.Option(help="name of the new configuration")],
    answers: Annotated[Path, typer.Option(help="routing data file with the new config's scores")],
    budget: Annotated[int, typer.Option(help="at most this many questions")] = 60,
    out: Annotated[Path | None, typer.Option(help="write the extended router here")] = None,
    cost: Annotated[float | None, typer.Option(help="expected cost per query, USD")] = None,
) -> None:
    """Estimate a new configuration's ability by adaptive testing (no retraining)."""
    require_lab("calibrate")
    from irtgate.lab.irt.adaptive import AdaptiveError, calibrate_from_file

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


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("calibrate")(calibrate)
