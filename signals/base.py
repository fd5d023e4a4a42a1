"""The signal interface: one small typed module per signal, registered by name.

A signal reads a :class:`SignalContext` (the parsed request plus shared, lazily computed
resources such as the one encoder pass) and returns flat named values. Policies compare
those values in their ``when`` trees; signals never decide anything themselves.

Only the signals a loaded policy references are built and computed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

# Re-exported: signals and encoders name it from here.
from irtgate.signals.embedding import EmbeddingSource as EmbeddingSource
from irtgate.signals.request import LLMRequest

if TYPE_CHECKING:
    from irtgate.signals.irt.router_api import Router, RouterScores

# A signal value: numbers, flags, labels, or a set of labels (e.g. PII types found).
Value = float | int | bool | str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TokenIds:
    """Token ids (no special tokens) of whole texts, all from one ``tokenizer``, by text.

    The length signal leaves these in the context so that the encoder can take its window
    from them instead of tokenizing the same text again.
    """

    tokenizer: Any
    by_text: Mapping[str, list[int]]


_T = TypeVar("_T")


class DecisionAbandoned(Exception):
    """The answer is no longer wanted (Envoy's message timeout fired, the client or the
    stream went away, the server is stopping): the decision stops where it is."""


class WorkBudget:
    """How much CPU one request's signals may use, and whether anyone still waits.

    Two bounds. Soft: ``cpu_seconds`` of the deciding thread's own CPU time (time spent
    waiting for the GIL or a core is not counted, so a busy server does not cut normal
    requests short); a signal that finds it spent stops scanning and reports
    ``truncated``. Hard: :meth:`cancel` (any thread) when the answer is no longer wanted;
    the decision then stops at the next check with :class:`DecisionAbandoned`.
    """

    __slots__ = ("_cancelled", "_start", "cpu_seconds")

    CHECK_EVERY = 8  # items between clock reads in :meth:`bounded` (~1 us a read)

    def __init__(self, cpu_seconds: float = math.inf) -> None:
        self.cpu_seconds = cpu_seconds
        self._start: float | None = None
        self._cancelled = False

    def start(self) -> None:
        """Start the clock; called on the thread that does the work."""
        self._start = time.thread_time()

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def spent(self) -> bool:
        """Cancelled, or the soft CPU bound is used up."""
        if self._cancelled:
            return True
        if self._start is None or self.cpu_seconds == math.inf:
            return False
        return time.thread_time() - self._start >= self.cpu_seconds

    def check(self) -> None:
        """Raise :class:`DecisionAbandoned` if cancelled (between steps of a decision)."""
        if self._cancelled:
            raise DecisionAbandoned

    def bounded(self, items: Iterable[_T]) -> Iterator[_T]:
        """``items`` until the budget is spent (checked every :attr:`CHECK_EVERY` items)."""
        for n, item in enumerate(items, 1):
            if n % self.CHECK_EVERY == 0 and self.spent():
                return
            yield item


@dataclass
class SignalContext:
    """Per-request state shared by all signals: one request, at most one encoder pass."""

    request: LLMRequest
    embedder: EmbeddingSource | None = None
    budget: WorkBudget = field(default_factory=WorkBudget)
    _embedding: np.ndarray | None = field(default=None, init=False, repr=False)
    # Values other signals already produced, so a signal may build on another (e.g. the
    # domain head and the IRT heads both read the same embedding).
    scratch: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    # Whole-text token ids a signal already computed (see TokenIds), for the encoder.
    tokens: TokenIds | None = field(default=None, init=False, repr=False)
    # Each router's read-out for this request, by router: computed once, read by the
    # difficulty signal and the engine alike.
    _scores: list[tuple[Router, RouterScores]] = field(default_factory=list, init=False, repr=False)

    def embedding(self) -> np.ndarray:
        if self._embedding is None:
            if self.embedder is None:
                raise RuntimeError("this signal needs an encoder, but none is configured")
            reuse = (
                getattr(self.embedder, "embed_request_reusing", None)
                if self.tokens is not None
                else None
            )
            if reuse is not None:
                self._embedding = reuse(self.request, self.tokens)
            else:
                self._embedding = self.embedder.embed_request(self.request)
        return self._embedding

    def router_scores(self, router: Router) -> RouterScores:
        """``router``'s scores for this request, computed on first use (one heads run)."""
        for r, scores in self._scores:
            if r is router:
                return scores
        scores = router.score(self.embedding())
        self._scores.append((router, scores))
        return scores

    @property
    def embedded(self) -> bool:
        """Whether the encoder has run for this request (tests assert it runs once)."""
        return self._embedding is not None


@runtime_checkable
class Signal(Protocol):
    """A computed signal. ``fields`` declares each output's type for policy validation."""

    name: ClassVar[str]
    fields: ClassVar[Mapping[str, type]]

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]: ...


# A factory builds a signal from its policy parameters (already-parsed YAML mapping) and
# the shared resources (encoder, router). It raises ValueError naming the bad parameter.
SignalFactory = Callable[[Mapping[str, Any], "Resources"], Signal]


@dataclass(frozen=True)
class Resources:
    """Heavy shared objects, loaded once at start-up and handed to signal factories."""

    embedder: EmbeddingSource | None = None
    router: Router | None = None  # e.g. irtgate.signals.irt.runtime.IRTRouter
    extras: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, tuple[type[Signal] | None, SignalFactory]] = {}


def register(
    name: str, cls: type[Signal] | None = None
) -> Callable[[SignalFactory], SignalFactory]:
    """Register a signal factory under ``name`` (decorator)."""

    def deco(factory: SignalFactory) -> SignalFactory:
        if name in _REGISTRY:
            raise ValueError(f"signal {name!r} registered twice")
        _REGISTRY[name] = (cls, factory)
        return factory

    return deco


def registered() -> Mapping[str, tuple[type[Signal] | None, SignalFactory]]:
    _load_builtin()
    return dict(_REGISTRY)


def _load_builtin() -> None:
    # Importing the modules registers them; they import nothing heavy at module level.
    import importlib

    for mod in ("length", "keyword", "language", "pii", "domain", "difficulty"):
        try:
            importlib.import_module(f"irtgate.signals.{mod}")
        except ModuleNotFoundError as e:  # a signal not written yet
            if e.name != f"irtgate.signals.{mod}":
                raise
