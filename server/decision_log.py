"""The decision log: one JSON line per routing decision, written off the hot path.

A request only builds a :class:`DecisionRecord` (numbers and labels) and hands it to
:meth:`DecisionLog.submit`, which never blocks: the record goes on a bounded queue, and a
background thread (the standard library's ``QueueListener``) formats and writes it. When the
queue is full the record is dropped and counted; a write error is counted and never reaches
the request. Files rotate by size (``RotatingFileHandler``), or lines go to stdout for a log
shipper.

What a line may hold is a property of the type: every field is a number, a boolean, or a label
(a short string without whitespace or control characters, like a signal's label, a catalog
name or a decision name). Anything else, and in particular
:class:`~irtgate.signals.text.PromptText`, is refused when the record is built.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import math
import queue
import random
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Literal

LOG_VERSION = 1
Mode = Literal["off", "sampled", "full"]


class DecisionLogMode(StrEnum):
    """The :data:`Mode` values, for command-line options."""

    OFF = "off"
    SAMPLED = "sampled"
    FULL = "full"


LabelValue = float | int | bool | str | tuple[str, ...] | None
# Labels: what signals, catalogs and policies name things with. No spaces, so no sentence of
# prompt text fits; bounded, so nothing long does either.
_LABEL = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")


def _label(v: str, where: str) -> str:
    if not isinstance(v, str) or not _LABEL.fullmatch(v):
        raise ValueError(f"decision log: {where} must be a label, not free text")
    return v


def _value(v: object, where: str) -> LabelValue:
    if v is None or isinstance(v, bool | int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, str):
        return _label(v, where)
    if isinstance(v, tuple | list):
        return tuple(_label(x, where) for x in v)
    raise ValueError(f"decision log: {where} has a {type(v).__name__}; numbers and labels only")


@dataclass(frozen=True)
class DecisionRecord:
    """One decision, content-free. Built per request; validated on construction."""

    request_id: str
    time: float  # seconds since the epoch
    api: str  # chat, responses, messages
    decision: str
    outcome: str  # routed, or the client error code (pii_blocked, no_candidate, ...)
    latency_ms: float
    policy: str  # the policy's digest
    router: str  # the router's identity (name and hash), or "none"
    choice: str | None = None  # catalog entry
    why: tuple[str, ...] = ()  # the matched decision's satisfied tests, e.g. "length.tokens<2000"
    # Every computed signal's values, flat: "length.tokens", "difficulty.p_max", ...
    signals: Mapping[str, LabelValue] = field(default_factory=dict)
    # P(correct) for every router configuration (a catalog entry's P is its configuration's),
    # not only the decision's candidates; empty without a router.
    p: Mapping[str, float | None] = field(default_factory=dict)
    # Expected USD for every catalog entry; None where unknown.
    cost: Mapping[str, float | None] = field(default_factory=dict)
    model: str = "other"  # the requested model (an alias or a pinned name), as a label
    computed: tuple[str, ...] = ()  # the signals that ran (a failed one has no values)
    pii: Mapping[str, int] = field(default_factory=dict)  # PII type -> findings
    pii_scanned: bool = False  # a pii plugin scanned the body (so "no findings" is known)
    tokens: float | None = None  # input tokens the prices were applied to
    p_choice: float | None = None  # the router's P for the choice
    # Signals whose "p.<configuration>" fields equal ``p`` and were left out of ``signals``
    # (the difficulty signal's): a line carries each P once.
    p_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("request_id", "api", "decision", "outcome", "policy", "router", "model"):
            _label(getattr(self, name), name)
        if self.choice is not None:
            _label(self.choice, "choice")
        for w in self.why:
            if not isinstance(w, str) or len(w) > 256 or "\n" in w:
                raise ValueError("decision log: why holds short test descriptions")
        object.__setattr__(
            self, "signals", {_label(k, "signal"): _value(v, k) for k, v in self.signals.items()}
        )
        for c in (*self.computed, *self.p_fields):
            _label(c, "computed")
        for k, n in self.pii.items():
            if not isinstance(n, int) or isinstance(n, bool):
                raise ValueError("decision log: pii counts are integers")
            _label(k, "pii")
        for name in ("p", "cost"):
            raw: Mapping[str, object] = getattr(self, name)
            clean = {_label(k, name): _value(v, name) for k, v in raw.items()}
            if any(not (v is None or isinstance(v, float | int)) for v in clean.values()):
                raise ValueError(f"decision log: {name} values are numbers")
            object.__setattr__(self, name, clean)

    def to_json(self) -> str:
        # A shallow row: every value is already a number, a label, or a flat mapping or
        # tuple of them (dataclasses.asdict would deep-copy it all, most of the cost).
        row: dict[str, object] = {"v": LOG_VERSION}
        for name in _FIELDS:
            row[name] = getattr(self, name)
        return json.dumps(row, separators=(",", ":"), allow_nan=False)


_FIELDS = tuple(f.name for f in fields(DecisionRecord))


@dataclass(frozen=True)
class DecisionLogConfig:
    mode: Mode = "off"
    sample: float = 0.01  # share of decisions written in mode "sampled"
    path: Path | None = None  # None: stdout
    max_bytes: int = 64 * 1024 * 1024
    backups: int = 5
    queue_size: int = 10_000

    def __post_init__(self) -> None:
        if self.mode not in ("off", "sampled", "full"):
            raise ValueError(f"decision log mode must be off, sampled or full, not {self.mode!r}")
        if not 0.0 < self.sample <= 1.0:
            raise ValueError("decision log sample must be in (0, 1]")
        if self.max_bytes < 1024 or self.backups < 0 or self.queue_size < 1:
            raise ValueError("decision log: max_bytes >= 1024, backups >= 0, queue_size >= 1")


class _Sink(logging.Handler):
    """Writes each line to the real handler and counts failures instead of raising."""

    def __init__(
        self, inner: logging.Handler, on_write: Callable[[], None], on_error: Callable[[], None]
    ) -> None:
        super().__init__()
        self._inner, self._on_write, self._on_error = inner, on_write, on_error
        self._failed = False
        # The inner handler reports its own errors by printing a traceback per record;
        # note them instead (one writer thread, so a plain flag is enough).
        inner.handleError = self._note  # type: ignore[method-assign]

    def _note(self, record: logging.LogRecord) -> None:
        self._failed = True

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        try:
            self._inner.emit(record)
            self._inner.flush()
        except Exception:  # a log write error never fails a request: count it
            self._failed = True
        (self._on_error if self._failed else self._on_write)()

    def close(self) -> None:
        # Closing a file that already failed may fail again; nothing is lost by ignoring it.
        with contextlib.suppress(Exception):
            self._inner.close()
        super().close()


class _Deferred:
    """A record built when the writer formats it (``LogRecord.getMessage`` calls str)."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[], DecisionRecord]) -> None:
        self.build = build

    def __str__(self) -> str:
        return self.build().to_json()


class _Listener(logging.handlers.QueueListener):
    # The stdlib puts its stop sentinel with put_nowait, which fails on a full bounded queue;
    # at shutdown waiting for room is right (the writer is draining).
    def enqueue_sentinel(self) -> None:
        self.queue.put(self._sentinel)  # type: ignore[attr-defined]


class DecisionLog:
    """Start with :meth:`start`, submit records from any thread, :meth:`close` at shutdown."""

    def __init__(
        self,
        cfg: DecisionLogConfig,
        *,
        on_drop: Callable[[], None] = lambda: None,
        on_error: Callable[[], None] = lambda: None,
        on_write: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self._rng = rng or random.Random()
        self._on_write = on_write
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue(cfg.queue_size)
        self._listener: _Listener | None = None
        self._on_drop, self._on_error = on_drop, on_error

    @property
    def enabled(self) -> bool:
        return self.cfg.mode != "off"

    def start(self) -> None:
        if not self.enabled or self._listener is not None:
            return
        inner: logging.Handler
        if self.cfg.path is None:
            inner = logging.StreamHandler(sys.stdout)
        else:
            self.cfg.path.parent.mkdir(parents=True, exist_ok=True)
            inner = logging.handlers.RotatingFileHandler(
                self.cfg.path,
                maxBytes=self.cfg.max_bytes,
                backupCount=self.cfg.backups,
                encoding="utf-8",
            )
        inner.setFormatter(logging.Formatter("%(message)s"))
        sink = _Sink(inner, self._on_write, self._on_error)
        self._listener = _Listener(self._queue, sink)
        self._listener.start()

    def wanted(self) -> bool:
        """Whether this decision is to be logged (sampling); cheap, call before building."""
        if self.cfg.mode == "full":
            return True
        return self.cfg.mode == "sampled" and self._rng.random() < self.cfg.sample

    def submit(self, record: DecisionRecord) -> None:
        """Queue one record; never blocks, never raises for a full queue."""
        if self._listener is None:
            return
        line = record.to_json()  # validated and formatted here, so the writer only writes
        rec = logging.LogRecord("irtgate.decisions", logging.INFO, "", 0, line, None, None)
        try:
            self._queue.put_nowait(rec)
        except queue.Full:
            self._on_drop()

    def submit_later(self, build: Callable[[], DecisionRecord]) -> None:
        """Queue a record that the writer thread builds and formats: the request only
        pays for the queue. ``build`` must not read anything the request still changes.
        A build that raises is counted as an error, like a failed write."""
        if self._listener is None:
            return
        rec = logging.LogRecord(
            "irtgate.decisions", logging.INFO, "", 0, _Deferred(build), None, None
        )
        try:
            self._queue.put_nowait(rec)
        except queue.Full:
            self._on_drop()

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._listener is not None:
            self._listener.stop()
            for h in self._listener.handlers:
                h.close()
            self._listener = None
