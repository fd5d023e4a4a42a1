"""Policy problems: every error carries file, line and YAML path, and all are reported at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PathT = tuple[str | int, ...]


def format_path(path: PathT) -> str:
    """``('decisions', 2, 'when', 'all', 0)`` -> ``decisions[2].when.all[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    path: PathT
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {format_path(self.path)}: {self.message}"


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` lists every error found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
