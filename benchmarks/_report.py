"""Where the benchmarks write their reports: ``benchmarks/reports/NAME.json`` and ``.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORTS = Path(__file__).resolve().parent / "reports"


def write_report(name: str, result: Any, md: str) -> None:
    """The figures as JSON beside their Markdown rendering, and a line saying where."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (REPORTS / f"{name}.md").write_text(md)
    print(f"wrote {REPORTS / name}.md and .json")
