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


def _register() -> None:
    # Each module adds its commands to `app` (or a sub-typer) when imported.
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
    except Exception as e:  # click usage errors and friends
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
