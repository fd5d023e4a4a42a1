"""The `irtgate` command line. ``main(argv)`` is what the console script and tests call.

Each group of commands lives in its own module; heavy imports (onnxruntime, grpc, numpy)
happen inside the commands, so ``irtgate --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

app = typer.Typer(
    name="irtgate",
    help="IRT-based LLM router beside Envoy (ext_proc).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """IRT-based LLM router beside Envoy (ext_proc)."""


@app.command()
def version() -> None:
    """Print irtgate's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        typer.echo(dist_version("irtgate"))
    except PackageNotFoundError:  # running from a checkout that was never installed
        typer.echo("unknown")


# The serving core's own command groups; each adds its commands to `app` when imported.
_CORE_GROUPS = (
    "irtgate.server.cli_gateway",
    "irtgate.server.cli_router",
    "irtgate.server.cli_policy",
)
# Entry-point group through which packages above the core (the lab) add commands.
PLUGIN_GROUP = "irtgate.commands"
_loaded: set[str] = set()


def _register(command: str | None) -> None:
    import importlib

    for mod in _CORE_GROUPS:
        if mod not in _loaded:
            _loaded.add(mod)
            importlib.import_module(mod).register(app)
    # Plugins are loaded only when the command is not the core's own, so `irtgate serve`,
    # `route` or `policy check` never import the lab or its dependencies.
    if command is not None and command in _core_commands():
        return
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.value not in _loaded:
            _loaded.add(ep.value)
            ep.load()(app)


def _core_commands() -> set[str]:
    names = {
        c.name or (c.callback.__name__.replace("_", "-") if c.callback else "")
        for c in app.registered_commands
    }
    names |= {g.name or "" for g in app.registered_groups}
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (defaults to ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    _register(next((a for a in args if not a.startswith("-")), None))
    try:
        app(args=args, prog_name="irtgate", standalone_mode=False)
    except SystemExit as e:  # typer/click exit paths
        return int(e.code or 0)
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return 1
    except typer.TyperException as e:  # usage errors and friends
        show = getattr(e, "show", None)
        if callable(show):
            show()
        return int(getattr(e, "exit_code", 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
