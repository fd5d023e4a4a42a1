"""What every lab command shares: the error exit and the check that the lab extra is installed."""

from __future__ import annotations

import importlib.util

import typer

# What the lab needs beyond the serving core (the `lab` extra), by import name.
LAB_MODULES = ("sklearn", "scipy", "matplotlib", "tqdm", "onnx")


def fail(msg: str) -> SystemExit:
    """An error line and exit code 2. SystemExit rather than typer.Exit: the CLI runs click with
    standalone_mode=False, where typer.Exit's code would be dropped."""
    typer.echo(f"error: {msg}", err=True)
    return SystemExit(2)


def require_lab(command: str) -> None:
    """Stop ``command`` with an install hint when the lab extra is missing."""
    missing = [m for m in LAB_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise fail(
            f"'irtgate {command}' needs the lab extra ({', '.join(missing)} missing): "
            "pip install 'irtgate[lab]'"
        )
