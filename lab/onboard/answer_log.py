"""The calibration log: every question sent and every graded answer, appended before use.

One JSON object per line. The first line says what is being calibrated (name, model,
budget, endpoint host, bank digest, router fingerprint); a rerun with the same target
resumes from the log, and one with a different target is refused rather than mixed in.
Then ``sent`` lines (written before a question goes out) and ``graded`` lines (written, and
flushed to disk, before the answer is used). A question sent but never graded, because the
run was killed while it was in flight, is not asked again: it was paid for once already.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

LOG_VERSION = 1


class LogError(ValueError):
    """The log belongs to another calibration, or a line of it is not readable."""


@dataclass
class AnswerLog:
    path: Path
    header: dict[str, Any]
    graded: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> graded record
    sent: set[str] = field(default_factory=set)
    _f: TextIO | None = None

    @classmethod
    def open(cls, path: Path, header: Mapping[str, Any]) -> AnswerLog:
        """Open ``path`` for appending, reading what an earlier run recorded."""
        want = {"kind": "header", "version": LOG_VERSION, **header}
        log = cls(path, dict(want))
        if path.is_file() and path.stat().st_size > 0:
            log._read(want)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        log._f = path.open("a", encoding="utf-8")
        if not log.graded and not log.sent and path.stat().st_size == 0:
            log._write(want)
        return log

    def _read(self, want: Mapping[str, Any]) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                if n == len(lines):
                    continue  # a line cut short by a kill: the answer was never used
                raise LogError(f"{self.path}:{n}: not JSON ({e.msg})") from e
            kind = rec.get("kind") if isinstance(rec, dict) else None
            if n == 1:
                if kind != "header":
                    raise LogError(f"{self.path}: the first line is not a calibration header")
                diff = [k for k in want if k != "started" and rec.get(k) != want[k]]
                if diff:
                    raise LogError(
                        f"{self.path} is the log of another calibration ({', '.join(diff)} "
                        "differ); use another --out or remove it"
                    )
                self.header = rec
            elif kind == "sent":
                self.sent.add(str(rec["id"]))
            elif kind == "graded":
                self.graded[str(rec["id"])] = rec

    def _write(self, rec: Mapping[str, Any]) -> None:
        assert self._f is not None, "log not open"
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def mark_sent(self, item_id: str) -> None:
        self.sent.add(item_id)
        self._write({"kind": "sent", "id": item_id})

    def add_graded(self, rec: Mapping[str, Any]) -> None:
        full = {"kind": "graded", **rec}
        self._write(full)
        self.graded[str(rec["id"])] = full

    @property
    def lost(self) -> set[str]:
        """Sent by an earlier run that was killed before the answer came back."""
        return self.sent - set(self.graded)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
