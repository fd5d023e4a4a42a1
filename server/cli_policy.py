"""``irtgate policy check|schema`` and ``irtgate explain``: the operator's policy tools."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from irtgate.server.cli_replay import replay_command

if TYPE_CHECKING:
    from irtgate.signals.base import Resources

policy_app = typer.Typer(
    help="Check routing policies and print their JSON Schema.", no_args_is_help=True
)


def _resources(router: Path | None, no_router: bool) -> Resources:
    from irtgate.signals.base import Resources

    if no_router:
        return Resources()
    if router is None:
        from irtgate.policies.runtime import default_resources

        return default_resources()
    from irtgate.signals.irt.runtime import IRTRouter

    r = IRTRouter.load(router)
    return Resources(embedder=r.embedder(), router=r)


RouterOpt = Annotated[
    Path | None,
    typer.Option("--router", help="Router directory (default: the shipped default router)."),
]
NoRouterOpt = Annotated[
    bool,
    typer.Option(
        "--no-router", help="Check without a router (router configurations are not checked)."
    ),
]


@policy_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="Policy YAML file.")],
    router: RouterOpt = None,
    no_router: NoRouterOpt = False,
) -> None:
    """Validate a policy; print every error as file:line: path: message (exit 1), and
    warnings (unused signals, cost weighed over candidates of unknown cost) the same way."""
    from irtgate.policies.compile import compile_policy
    from irtgate.policies.errors import PolicyError
    from irtgate.policies.loader import load_source

    try:
        label, text = load_source(file)
        snap = compile_policy(text, label, _resources(router, no_router))
    except PolicyError as e:
        for p in e.problems:
            typer.echo(str(p), err=True)
        n = len(e.problems)
        typer.echo(f"{file}: {n} error{'s' if n != 1 else ''}", err=True)
        raise SystemExit(1) from None  # typer.Exit codes are dropped by irtgate.server.cli.main
    from irtgate.policies.loader import parse_yaml

    lines = parse_yaml(text, label)
    for w in snap.warnings:
        typer.echo(str(w))
    for name in snap.policy.signals:
        if name not in snap.signals:  # declared, but no decision reads it: never computed
            typer.echo(f"{lines.problem(('signals', name), 'warning: not used by any decision')}")
    from irtgate.policies.borrow import borrow_hint, borrowed_p

    borrowed = borrowed_p(snap.policy.catalog, snap.resources.router)
    for i, entry in enumerate(snap.policy.catalog):
        if entry.name in borrowed:
            msg = "note: " + borrow_hint(entry.name, borrowed[entry.name])
            typer.echo(lines.problem(("catalog", i, "router_config"), msg))
    typer.echo(
        f"{file}: ok ({len(snap.catalog)} configurations, {len(snap.decisions)} "
        f"decisions + default, signals: {', '.join(sorted(snap.signals)) or 'none'})"
    )


@policy_app.command("diff")
def diff(
    old: Annotated[Path, typer.Argument(help="The policy as it is.")],
    new: Annotated[Path, typer.Argument(help="The policy as it would be.")],
) -> None:
    """What changes from OLD to NEW: decisions, thresholds, candidates, objectives, catalog."""
    from irtgate.policies.diff import diff as policy_diff
    from irtgate.policies.errors import PolicyError
    from irtgate.policies.loader import load_source, parse_yaml, validate_schema

    policies = []
    for file in (old, new):
        try:
            label, text = load_source(file)
            policies.append(validate_schema(parse_yaml(text, label)))
        except PolicyError as e:
            for p in e.problems:
                typer.echo(str(p), err=True)
            raise SystemExit(1) from None  # typer.Exit codes are dropped by irtgate.server.cli.main
    changes = policy_diff(policies[0], policies[1])
    for c in changes:
        typer.echo(str(c))
    n = len(changes)
    typer.echo(f"{old} -> {new}: {n} change{'s' if n != 1 else ''}" if n else "no changes")


@policy_app.command("schema")
def schema() -> None:
    """Print the policy JSON Schema (for editor completion and CI)."""
    from irtgate.policies.schema import schema_text

    typer.echo(schema_text(), nl=False)


def explain(
    text: Annotated[str, typer.Argument(help="The user message to route.")],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Policy YAML file (default: the embedded default policy)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Requested model (default: the first alias).")
    ] = None,
    router: RouterOpt = None,
    no_router: NoRouterOpt = False,
) -> None:
    """Route one message and show why: signal values, the matching decision, P per
    candidate, the choice and its expected cost."""
    import asyncio

    from irtgate.policies.errors import PolicyError
    from irtgate.policies.runtime import PolicyRuntime
    from irtgate.signals.errors import ClientError
    from irtgate.signals.request import ApiKind, LLMRequest, Message
    from irtgate.signals.text import PromptText

    try:
        rt = PolicyRuntime.from_file(policy, resources=_resources(router, no_router), watch=False)
    except PolicyError as e:
        typer.echo(str(e), err=True)
        raise SystemExit(1) from None  # typer.Exit codes are dropped by irtgate.server.cli.main
    name = model or rt.aliases()[0]
    body = {"model": name, "messages": [{"role": "user", "content": text}]}
    req = LLMRequest(ApiKind.CHAT, name, (Message("user", PromptText(text)),), body=body)
    try:
        out = asyncio.run(rt.decide(req))
    except ClientError as e:
        typer.echo(f"refused: {e.status} {e.code}: {e.message}")
        raise SystemExit(1) from None  # typer.Exit codes are dropped by irtgate.server.cli.main
    ex = out.explanation
    typer.echo(f"policy    {rt.snapshot.file} ({ex.get('policy')})")
    typer.echo("signals")
    for k, v in ex.items():
        if k.startswith("signal."):
            typer.echo(f"  {k.removeprefix('signal.'):<32} {v}")
    read = [f"{k.removeprefix('router.')} {v}" for k, v in ex.items() if k.startswith("router.")]
    if read:
        typer.echo("router    " + ", ".join(read))
    typer.echo(f"decision  {out.decision}  [{ex.get('objective')}]")
    typer.echo(f"  why     {ex.get('decision.why')}")
    typer.echo("candidates")
    names = [k.removeprefix("cost.") for k in ex if k.startswith("cost.")] or [
        k.removeprefix("p.") for k in ex if k.startswith("p.")
    ]
    from irtgate.policies.borrow import borrowed_p

    borrowed = borrowed_p(rt.snapshot.catalog.values(), rt.snapshot.resources.router)
    for n in names:
        p, c = ex.get(f"p.{n}"), ex.get(f"cost.{n}")
        mark = "*" if n == out.choice.config else " "
        ps = f"P={p:.3f}" if isinstance(p, float) else "P=?"
        cs = f"cost=${c:.6f}" if isinstance(c, float) else f"cost={c or '?'}"
        note = f"  (borrowed: {borrowed[n]})" if n in borrowed else ""
        typer.echo(f" {mark} {n:<24} {ps}  {cs}{note}")
    typer.echo(
        f"choice    {out.choice.config} -> model {out.choice.model} on "
        f"{out.choice.upstream}" + (f", budget {out.choice.budget}" if out.choice.budget else "")
    )
    for k, v in ex.items():
        if k.startswith("plugin."):
            typer.echo(f"  {k:<32} {v}")
    typer.echo(f"reason    {out.reason}")


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.command("explain")(explain)


# `policy replay` lives in its own module (it is larger than the rest together).
policy_app.command("replay")(replay_command)
