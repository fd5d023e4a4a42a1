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
    name: Annotated[str, typer.Option(help="name of the new configuration")],
    router: Annotated[
        Path | None, typer.Option(help="router directory to extend (default: shipped)")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="live: OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"),
    ] = None,
    model: Annotated[str | None, typer.Option(help="live: model name sent to the endpoint")] = None,
    out: Annotated[Path | None, typer.Option(help="write the extended router here")] = None,
    budget: Annotated[
        str | None,
        typer.Option(help="live: reasoning budget (an effort or thinking tokens), as in a catalog"),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(help="live: budget family: openai, anthropic, qwen, max_tokens, none"),
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="live: environment variable holding the API key")
    ] = None,
    bank: Annotated[
        Path | None, typer.Option(help="live: your own graded item bank (default: shipped)")
    ] = None,
    max_queries: Annotated[int, typer.Option(help="at most this many questions")] = 200,
    concurrency: Annotated[int, typer.Option(help="live: questions in flight at once")] = 4,
    price_in: Annotated[float | None, typer.Option(help="live: USD per 1M input tokens")] = None,
    price_out: Annotated[float | None, typer.Option(help="live: USD per 1M output tokens")] = None,
    answers: Annotated[
        Path | None,
        typer.Option(help="offline: routing data file with the new config's recorded scores"),
    ] = None,
    cost: Annotated[
        float | None, typer.Option(help="offline: expected cost per query, USD")
    ] = None,
) -> None:
    """Add a configuration to a router without retraining, by adaptive testing: live against
    an endpoint (--endpoint, --model, --out), or from recorded answers (--answers)."""
    require_lab("calibrate")
    from irtgate.lab.irt.adaptive import AdaptiveError
    from irtgate.signals.irt.runtime import DEFAULT_ROUTER_DIR

    router = router or DEFAULT_ROUTER_DIR
    if answers is not None:
        live_only = {
            "--endpoint": endpoint,
            "--model": model,
            "--budget": budget,
            "--family": family,
            "--api-key-env": api_key_env,
            "--bank": bank,
            "--price-in": price_in,
            "--price-out": price_out,
        }
        given = [k for k, v in live_only.items() if v is not None]
        if given:
            raise _fail(f"{', '.join(given)}: live-mode options; --answers calibrates offline")
        _calibrate_offline(router, name, answers, max_queries, out, cost)
        return
    need = (("--endpoint", endpoint), ("--model", model), ("--out", out))
    missing = [k for k, v in need if not v]
    if missing:
        raise _fail(f"live calibration needs {', '.join(missing)} (or --answers FILE)")
    if cost is not None:
        raise _fail("--cost is for --answers; live, the cost comes from the endpoint's usage")
    if (price_in is None) != (price_out is None):
        raise _fail("give both --price-in and --price-out, or neither")
    if (price_in is not None and price_in < 0) or (price_out is not None and price_out < 0):
        raise _fail("prices must be >= 0")
    from irtgate.lab.onboard.answer_log import LogError
    from irtgate.lab.onboard.bank import BankError
    from irtgate.lab.onboard.calibrate import Interrupted, LiveSettings, calibrate_live
    from irtgate.lab.onboard.client import EndpointError
    from irtgate.lab.onboard.live import Prices
    from irtgate.signals.irt.runtime import RouterLoadError

    assert endpoint is not None and model is not None and out is not None
    settings = LiveSettings(
        router=router,
        name=name,
        endpoint=endpoint,
        model=model,
        out=out,
        budget=budget,
        family=family,
        api_key_env=api_key_env,
        bank=bank,
        max_queries=max_queries,
        concurrency=concurrency,
        prices=None if price_in is None or price_out is None else Prices(price_in, price_out),
    )
    try:
        res = calibrate_live(settings, log=typer.echo)
    except Interrupted as e:
        typer.echo(f"stopped: {e}", err=True)
        raise SystemExit(130) from e
    except (AdaptiveError, BankError, LogError, EndpointError, RouterLoadError) as e:
        raise _fail(str(e)) from e
    typer.echo(
        f"{name}: {len(res.graded)} questions (stopped by {res.stopped_by}), "
        f"strength {res.strength:+.3f} ± {res.se:.3f}, accuracy on asked {res.accuracy:.3f}"
    )


def _calibrate_offline(
    router: Path, name: str, answers: Path, max_queries: int, out: Path | None, cost: float | None
) -> None:
    from irtgate.lab.irt.adaptive import AdaptiveError, calibrate_from_file

    try:
        res = calibrate_from_file(
            router, name, answers, budget=max_queries, out=out, cost=cost, log=typer.echo
        )
    except (AdaptiveError, ValueError, FileNotFoundError, RuntimeError) as e:
        raise _fail(str(e)) from e
    typer.echo(
        f"{name}: {res.n_asked} questions, ability "
        + " ".join(f"{v:+.2f}" for v in res.theta)
        + f", posterior sd {res.posterior_sd:.3f}"
    )


def predict(
    router: Annotated[Path, typer.Option(help="router directory")],
    data: Annotated[Path, typer.Option(help="routing data file (JSONL, gzipped or not)")],
    out: Annotated[Path, typer.Option(help="JSON Lines file to write")],
) -> None:
    """P(correct) and expected cost of every configuration for every item of a data file:
    one JSON line per item, {"id", "p": {config: P}, "cost": {config: USD}}."""
    require_lab("predict")
    from irtgate.lab.irt.data import DataError
    from irtgate.lab.irt.predict import predict_file
    from irtgate.signals.irt.runtime import RouterLoadError

    if not data.is_file():
        raise _fail(f"no such data file: {data}")
    try:
        n = predict_file(router, data, out)
    except (DataError, RouterLoadError) as e:
        raise _fail(str(e)) from e
    typer.echo(f"{n} items scored: {out}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("calibrate")(calibrate)
    app.command("predict")(predict)
