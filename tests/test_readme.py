"""The README's example output is what the command prints today."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from irtgate.server.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[tuple[str, list[str]]]:
    """Each fenced block that starts with `$ irtgate ...`: the command and its shown lines."""
    blocks = re.findall(r"```\n(\$ irtgate [^\n]*)\n(.*?)```", README.read_text(), re.S)
    return [(cmd[2:], body.rstrip("\n").split("\n")) for cmd, body in blocks]


def test_the_readme_has_examples() -> None:
    assert any(cmd.startswith("irtgate route ") for cmd, _ in _examples())


@pytest.mark.parametrize("cmd, shown", _examples(), ids=[c for c, _ in _examples()])
def test_readme_example_matches_the_output(
    cmd: str, shown: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(shlex.split(cmd)[1:]) == 0
    got = capsys.readouterr().out.rstrip("\n").split("\n")
    # "  ..." in the README stands for lines left out; the others appear in order.
    it = iter(got)
    for line in shown:
        if line.strip() == "...":
            continue
        assert any(g.rstrip() == line.rstrip() for g in it), (
            f"README line not in the output of `{cmd}` (in order):\n{line}\n\noutput:\n"
            + "\n".join(got)
        )
