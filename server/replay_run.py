"""Reading decision logs and running a replay, in one process or several.

A plain log file is cut into byte ranges at line boundaries, one per worker process; each
worker parses its lines with orjson into plain dicts (no validation model per line),
re-decides them (``PolicyReplay.prepare``) and hands back compact columns; the parent
concatenates them in file order and selects (vectorised) once. Workers are forked, so
they share the compiled policies and the router's card without pickling them; they never
run the router's heads. A ``.gz`` log is read by one worker. Line numbers in reports
are the file's own.
"""

from __future__ import annotations

import gzip
import itertools
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from irtgate.policies.compile import Snapshot
from irtgate.server.decision_log import LOG_VERSION
from irtgate.server.replay import (
    BAD_LINES_KEPT,
    BadLine,
    LoggedBaseline,
    PolicyReplay,
    ReplayRefused,
)
from irtgate.signals.irt.router_api import router_identity

MIN_SPLIT_BYTES: Final = 8 * 1024 * 1024  # smaller files are not worth a second process


@dataclass(frozen=True)
class _Task:
    path: Path
    start: int = 0
    end: int | None = None  # byte offset, exclusive; None: to the end


def _well_formed(r: object) -> bool:
    # Cheap type checks only: a line that passes but is still odd fails in the replay
    # step with KeyError/TypeError, and is reported there.
    return (
        type(r) is dict
        and type(r.get("signals")) is dict
        and type(r.get("p")) is dict
        and type(r.get("cost")) is dict
        and type(r.get("computed")) is list
        and type(r.get("model")) is str
        and type(r.get("outcome")) is str
        and type(r.get("decision")) is str
    )


def _first_line_number(path: Path, start: int) -> int:
    n, left = 1, start
    with path.open("rb") as f:
        while left > 0:
            block = f.read(min(left, 1 << 22))
            if not block:
                break
            n += block.count(b"\n")
            left -= len(block)
    return n


def _lines(task: _Task) -> Iterator[tuple[int, bytes | str]]:
    if task.path.suffix == ".gz":
        with gzip.open(task.path, "rt", encoding="utf-8", errors="replace") as g:
            yield from enumerate(g, 1)
        return
    lineno = _first_line_number(task.path, task.start) if task.start else 1
    with task.path.open("rb") as f:
        f.seek(task.start)
        left = None if task.end is None else task.end - task.start
        rest = b""
        while left is None or left > 0:
            block = f.read(_BLOCK if left is None else min(_BLOCK, left))
            if not block:
                break
            if left is not None:
                left -= len(block)
            lines = (rest + block).split(b"\n")
            rest = lines.pop()  # the unfinished last line
            for line in lines:
                yield lineno, line
                lineno += 1
        if rest:
            yield lineno, rest


_BLOCK: Final = 1 << 22


@dataclass
class _Part:
    after: tuple[Any, ...]
    before: tuple[Any, ...] | None
    logged: LoggedBaseline
    bad: list[BadLine]
    counts: Counter[str]


def _bad(bad: list[BadLine], counts: Counter[str], path: Path, lineno: int, why: str) -> None:
    counts["bad"] += 1
    if len(bad) < BAD_LINES_KEPT:
        bad.append(BadLine(str(path), lineno, why))


def _run(task: _Task, new: Snapshot, baseline: Snapshot | None, router: str) -> _Part:
    after = PolicyReplay(new, "new")
    before = PolicyReplay(baseline, "baseline") if baseline is not None else None
    logged = LoggedBaseline()
    bad: list[BadLine] = []
    counts: Counter[str] = Counter()
    decode, path = orjson.loads, task.path
    lines = 0
    for lineno, line in _lines(task):
        if not line or line.isspace():
            continue
        lines += 1
        try:
            r = decode(line)
        except ValueError:  # orjson.JSONDecodeError and invalid UTF-8 included
            _bad(bad, counts, path, lineno, "not valid JSON (corrupt or truncated line)")
            continue
        if not _well_formed(r):
            _bad(bad, counts, path, lineno, "not a decision log record (fields missing)")
            continue
        if r.get("v") != LOG_VERSION:
            raise ReplayRefused(
                f"{path}:{lineno}: log format version {r.get('v')!r}; this irtgate reads "
                f"version {LOG_VERSION}"
            )
        if r.get("router") != router:
            raise ReplayRefused(
                f"{path}:{lineno}: this log was written with router {r.get('router')!r}, but "
                f"the router loaded for the policy is {router!r}. Its P values would not "
                "match the policy's router: replay with the router the log was written "
                "with (--router DIR)."
            )
        try:
            a = after.prepare(r)
            b = before.prepare(r) if before is not None else None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            _bad(bad, counts, path, lineno, f"unreadable record ({type(e).__name__})")
            continue
        after.commit(a)
        if before is not None and b is not None:
            before.commit(b)
        logged.add(r)
    counts["lines"] += lines
    return _Part(
        after.columns(), before.columns() if before is not None else None, logged, bad, counts
    )


def _tasks(paths: Sequence[Path], workers: int) -> list[_Task]:
    out: list[_Task] = []
    for path in paths:
        size = path.stat().st_size
        if workers <= 1 or path.suffix == ".gz" or size < MIN_SPLIT_BYTES:
            out.append(_Task(path))
            continue
        bounds = [0]
        with path.open("rb") as f:
            for j in range(1, workers):
                f.seek(size * j // workers)
                f.readline()  # to the start of the next line
                bounds.append(max(f.tell(), bounds[-1]))
        bounds.append(size)
        out.extend(_Task(path, a, b) for a, b in itertools.pairwise(bounds) if a < b)
    return out


# Set just before the worker processes fork; they read it instead of unpickling policies.
_JOB: tuple[list[_Task], Snapshot, Snapshot | None, str] | None = None


def _work(i: int) -> _Part:
    assert _JOB is not None
    tasks, new, baseline, router = _JOB
    return _run(tasks[i], new, baseline, router)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def replay(
    paths: Sequence[Path],
    new: Snapshot,
    baseline: Snapshot | None = None,
    *,
    workers: int = 1,
) -> tuple[PolicyReplay, PolicyReplay | None, LoggedBaseline, list[BadLine], Mapping[str, int]]:
    """Replay ``paths`` under ``new`` (and ``baseline`` if given). Raises ReplayRefused."""
    global _JOB
    router = router_identity(new.resources.router)
    if baseline is not None and router_identity(baseline.resources.router) != router:
        raise ReplayRefused("the two policies were compiled with different routers")
    tasks = _tasks(paths, workers)
    if len(tasks) == 1 or workers <= 1:
        parts = [_run(t, new, baseline, router) for t in tasks]
    else:
        _JOB = (tasks, new, baseline, router)
        try:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx) as pool:
                parts = list(pool.map(_work, range(len(tasks))))
        finally:
            _JOB = None
    after = PolicyReplay(new, "new")
    before = PolicyReplay(baseline, "baseline") if baseline is not None else None
    logged = LoggedBaseline()
    bad: list[BadLine] = []
    counts: Counter[str] = Counter()
    for part in parts:
        after.absorb(part.after)
        if before is not None and part.before is not None:
            before.absorb(part.before)
        logged.extend(part.logged)
        bad.extend(part.bad)
        counts.update(part.counts)
    after.finish()
    if before is not None:
        before.finish()
    return after, before, logged, bad[:BAD_LINES_KEPT], counts
