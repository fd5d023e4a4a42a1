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


_registered = False


def _register() -> None:
    # Each module adds its commands to `app` (or a sub-typer) when imported.
    global _registered
    if _registered:
        return
    _registered = True
    import importlib

    for mod in (
        "server.cli_gateway",
        "server.cli_router",
        "server.cli_eval",
        "server.cli_policy",
    ):
        try:
            importlib.import_module(mod).register(app)
        except ModuleNotFoundError as e:  # a command group not written yet
            if e.name != mod:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (defaults to ``sys.argv[1:]``); return the exit code."""
    _register()
    args = list(sys.argv[1:] if argv is None else argv)
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
