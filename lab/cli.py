"""The lab's commands. ``irtgate eval`` lives here: every router method on the same split, one
table and one report; ``train`` and ``calibrate`` are in :mod:`irtgate.lab.cli_train`.

The serving CLI loads :func:`register` through the ``irtgate.commands`` entry point. Heavy
imports (numpy, sklearn, matplotlib, the encoders) happen inside the commands, after
:func:`require_lab` has checked that the lab extra is installed.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from irtgate.lab.cli_support import require_lab

RouterOpt = Annotated[
    Path | None,
    typer.Option(
        "--router",
        help="Trained router directory: its card gives the encoder and IRT hyper-parameters.",
    ),
]
DataOpt = Annotated[
    list[Path],
    typer.Option("--data", help="Routing data file (JSONL, gzipped or not); repeat to merge."),
]
SplitOpt = Annotated[
    str, typer.Option("--split", help="test: in-distribution; ood: held-out benchmarks.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Directory for report.json/.md/.png.")]
EncoderOpt = Annotated[
    str | None,
    typer.Option("--encoder", help="static or minilm; overrides the router card's encoder."),
]
HoldoutOpt = Annotated[
    list[str] | None,
    typer.Option("--holdout", help="Benchmark to hold out for --split ood (repeat)."),
]
ProtocolOpt = Annotated[
    str,
    typer.Option(
        "--protocol",
        help="auto: RouterDC's protocol when the data has its benchmarks; routerdc; plain.",
    ),
]
NoIrtOpt = Annotated[bool, typer.Option("--no-irt", help="Leave irtgate's IRT model out.")]
PricesOpt = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        help="YAML/JSON price table for data without costs: "
        "configuration: [USD per 1M input tokens, USD per 1M output tokens].",
    ),
]
OutTokOpt = Annotated[
    float, typer.Option("--output-tokens", help="Expected output tokens per answer (prices).")
]


def load_prices(path: Path) -> dict[str, tuple[float, float]]:
    """A price table: ``{config: [input USD/1M tokens, output USD/1M tokens]}``."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise typer.BadParameter(f"{path}: cannot read ({e})", param_hint="--prices") from e
    if not isinstance(raw, dict):
        raise typer.BadParameter(f"{path}: expected a mapping", param_hint="--prices")
    out: dict[str, tuple[float, float]] = {}
    for cfg, val in raw.items():
        ok = isinstance(val, list) and len(val) == 2
        ok = ok and all(isinstance(v, int | float) and v >= 0 for v in val)
        if not ok:
            raise typer.BadParameter(
                f"{path}: {cfg!r} must be [input price, output price] (USD per 1M tokens)",
                param_hint="--prices",
            )
        out[str(cfg)] = (float(val[0]), float(val[1]))
    return out


def _card(router: Path) -> dict[str, Any]:
    import yaml

    from irtgate.signals.irt.runtime import CARD_FILE

    card_file = router / CARD_FILE
    if not card_file.is_file():
        raise typer.BadParameter(
            f"{router} has no router.yaml (router card)", param_hint="--router"
        )
    try:
        card = yaml.safe_load(card_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise typer.BadParameter(f"{card_file}: not valid YAML ({e})", param_hint="--router") from e
    if not isinstance(card, dict):
        raise typer.BadParameter(f"{card_file}: the card must be a mapping", param_hint="--router")
    return card


def run_eval(
    data: list[Path],
    *,
    router: Path | None = None,
    split: str = "test",
    out: Path = Path("eval-report"),
    encoder: str | None = None,
    holdout: list[str] | None = None,
    protocol: str = "auto",
    irt: bool = True,
    progress: bool = True,
    prices: Path | None = None,
    output_tokens: float = 256.0,
) -> dict[str, Any]:
    """Load, split, embed, evaluate and write the reports; return the report."""
    from irtgate.lab.irt import evaluate as ev
    from irtgate.lab.irt.data import DuplicateIdWarning, load_routing_data
    from irtgate.lab.irt.report import write_reports

    table = load_prices(prices) if prices is not None else None  # fail before slow steps
    hyper: dict[str, Any] = {}
    if router is not None:
        card = _card(router)
        enc = card.get("encoder") or {}
        if encoder is None and isinstance(enc, dict) and isinstance(enc.get("name"), str):
            encoder = enc["name"]
        if isinstance(card.get("hyperparameters"), dict):
            hyper = dict(card["hyperparameters"])
    encoder = encoder or "static"
    if encoder not in ("static", "minilm"):
        raise typer.BadParameter(f"unknown encoder {encoder!r}", param_hint="--encoder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DuplicateIdWarning)
        routing = load_routing_data(data)
    for w in caught:
        typer.echo(f"note: {w.message}", err=True)
    if len(routing.configs) < 2:
        raise typer.BadParameter("the data needs scores for at least 2 configurations")
    train, test, how = ev.choose_split(routing, split, protocol=protocol, holdout=holdout)
    X_train, X_test = ev.embed_items(encoder, [train, test], progress=progress)
    methods = ev.default_methods(irt_hyperparameters=hyper)
    if not irt:
        methods = [m for m in methods if m.name != "irtgate"]
    if router is not None:
        # The artifact itself, beside the same model retrained on this split.
        try:
            methods.append(ev.ShippedRouter(router, routing.configs))
        except ValueError as e:
            typer.echo(f"note: {e}; evaluating without the router as shipped", err=True)
    label = f"{', '.join(p.name for p in data)}: {how}; encoder {encoder}"
    report = ev.evaluate(
        train,
        test,
        X_train,
        X_test,
        methods,
        progress=progress,
        label=label,
        prices=table,
        output_tokens=output_tokens,
    )
    report["encoder"] = encoder
    write_reports(report, out, title=f"Router evaluation: {label}")
    return report


def register(app: typer.Typer) -> None:
    from irtgate.lab import cli_train

    cli_train.register(app)

    @app.command("eval")
    def eval_cmd(
        data: DataOpt,
        router: RouterOpt = None,
        split: SplitOpt = "test",
        out: OutOpt = Path("eval-report"),
        encoder: EncoderOpt = None,
        holdout: HoldoutOpt = None,
        protocol: ProtocolOpt = "auto",
        no_irt: NoIrtOpt = False,
        prices: PricesOpt = None,
        output_tokens: OutTokOpt = 256.0,
    ) -> None:
        """Evaluate irtgate and the baseline routers on routing data; write reports."""
        require_lab("eval")
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from irtgate.lab.irt.data import DataError
        from irtgate.lab.irt.report import summary_rows

        # Piped output has no terminal width; the table needs about 150 columns.
        console = Console(width=None if Console().is_terminal else 160)
        try:
            report = run_eval(
                data,
                router=router,
                split=split,
                out=out,
                encoder=encoder,
                holdout=holdout,
                protocol=protocol,
                irt=not no_irt,
                prices=prices,
                output_tokens=output_tokens,
            )
        # SystemExit, not typer.Exit: irtgate.server.cli.main runs click with standalone_mode=False,
        # where click turns typer.Exit into a return value that main drops.
        except DataError as e:
            console.print(f"[red]bad routing data:[/red] {escape(str(e))}", soft_wrap=True)
            raise SystemExit(2) from e
        except ValueError as e:
            console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
            raise SystemExit(2) from e
        header, rows = summary_rows(report)
        table = Table(title=report["label"])
        for h in header:
            if h == "method":
                table.add_column(h, justify="left", no_wrap=True)
            else:
                table.add_column(h, justify="right")
        for r in rows:
            # Org prefixes make the table too wide for a terminal; report.md keeps them.
            table.add_row(r[0].split("/")[-1], *r[1:])
        console.print(table)
        best = report["best_single"]
        console.print(
            f"best single: {best['config']} acc {best['accuracy']:.4f} cost {best['cost']:.4g}"
        )
        console.print(f"reports written to {out}/report.json, report.md, report.png")
