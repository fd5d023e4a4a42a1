"""The policy decider the gateway calls: a compiled snapshot, swapped atomically on reload.

``decide`` reads ``self._snapshot`` once and uses that object for the whole request, so a
reload that lands mid-request cannot mix two policies. The watcher compiles a changed
file off the event loop; a broken edit keeps the last good snapshot, logs every problem
with its path, and reports ``on_reload("error", text)`` for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from irtgate.policies.compile import Snapshot, compile_policy, digest
from irtgate.policies.engine import decide_sync
from irtgate.policies.errors import PolicyError, Problem
from irtgate.policies.loader import load_source
from irtgate.policies.outcome import DecisionTrace, Outcome
from irtgate.signals.base import Resources
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

log = logging.getLogger(__name__)

OnReload = Callable[[str, str | None], None]
# Checks a compiled snapshot against things the policy cannot know (the gateway's
# upstreams); returns a problem to refuse the reload with, or None.
Accept = Callable[[Snapshot], str | None]


def warm_up(snap: Snapshot) -> None:
    """Decide one made-up request, so the first real one does not pay for lazy set-up.

    The first decision on a fresh process costs far more than the next (ONNX sessions'
    first runs, detectors and tokenizers built on first use). Only the work is wanted: the
    outcome, and a refusal the policy may well answer it with, are dropped.
    """
    text = "Warm-up: what is the boiling point of water at sea level, in degrees Celsius?"
    names = sorted(snap.aliases) or sorted(snap.pinned)
    if not names:
        return
    alias = names[0]
    body = {"model": alias, "messages": [{"role": "user", "content": text}]}
    request = LLMRequest(ApiKind.CHAT, alias, (Message("user", PromptText(text)),), body=body)
    try:
        decide_sync(snap, request)
    except ClientError:
        pass
    except Exception as e:  # a real request would fail the same way, and be answered 500
        log.warning("policy warm-up failed (%s)", type(e).__name__)


def _log_warnings(snap: Snapshot) -> None:
    for w in snap.warnings:
        log.warning("policy %s", w)


def default_resources() -> Resources:
    """The shipped default router and its encoder, or nothing if it is not available."""
    try:
        from irtgate.signals.irt.runtime import IRTRouter

        router = IRTRouter.load(None)
        return Resources(embedder=router.embedder(), router=router)
    except (ImportError, OSError, ValueError) as e:
        log.warning("default router not available (%s); P(correct) is unknown", e)
        return Resources()


class PolicyRuntime:
    """Implements :class:`irtgate.policies.outcome.Decider`."""

    def __init__(
        self,
        path: Path | None,
        snapshot: Snapshot,
        resources: Resources,
        *,
        watch: bool,
        on_reload: OnReload | None,
        accept: Accept | None = None,
    ) -> None:
        self.path = path
        self._accept = accept
        self._snapshot = snapshot
        self._resources = resources
        self._watch = watch and path is not None
        self._on_reload = on_reload
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @classmethod
    def from_file(
        cls,
        path: Path | None = None,
        *,
        resources: Resources | None = None,
        watch: bool = True,
        on_reload: OnReload | None = None,
        accept: Accept | None = None,
    ) -> PolicyRuntime:
        """Load and compile ``path`` (None: the embedded default). Raises PolicyError."""
        res = resources if resources is not None else default_resources()
        label, text = load_source(path)
        snap = compile_policy(text, label, res)
        log.info("policy %s loaded (%s)", label, snap.digest)
        _log_warnings(snap)
        if accept is not None and (problem := accept(snap)) is not None:
            raise PolicyError([Problem(label, None, (), problem)])
        warm_up(snap)
        return cls(path, snap, res, watch=watch, on_reload=on_reload, accept=accept)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    accepts_trace: ClassVar[bool] = True

    async def decide(self, request: LLMRequest, trace: DecisionTrace | None = None) -> Outcome:
        snap = self._snapshot  # one snapshot for the whole request
        trace = trace if trace is not None else DecisionTrace()
        try:
            return await asyncio.to_thread(decide_sync, snap, request, trace)
        except asyncio.CancelledError:
            # Nobody waits for the answer (Envoy's timeout, a cancelled stream, shutdown):
            # the worker thread stops at its next budget check instead of running on.
            trace.budget.cancel()
            raise

    def upstreams(self) -> tuple[str, ...]:
        return tuple(self._snapshot.policy.upstreams)

    def aliases(self) -> tuple[str, ...]:
        return tuple(self._snapshot.policy.aliases)

    def known_models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.aliases(), *self._snapshot.pinned]))

    def reload(self) -> bool:
        """Re-read the file; swap on success, keep the last good snapshot on error."""
        if self.path is None:
            return False
        try:
            label, text = load_source(self.path)
            if digest(text) == self._snapshot.digest:
                return True  # touched or an unrelated event: nothing to rebuild
            snap = compile_policy(text, label, self._resources)
            if self._accept is not None and (problem := self._accept(snap)) is not None:
                raise PolicyError([Problem(label, None, (), problem)])
            warm_up(snap)  # before the swap: requests never wait for it
            _log_warnings(snap)
        except PolicyError as e:
            log.error("policy reload failed, keeping %s:\n%s", self._snapshot.digest, e)
            self._report("error", str(e))
            return False
        except Exception as e:  # never let a reload take the server down
            log.exception("policy reload failed unexpectedly, keeping the last good one")
            self._report("error", f"{type(e).__name__}: {e}")
            return False
        if snap.digest != self._snapshot.digest:
            self._snapshot = snap
            log.info("policy %s reloaded (%s)", label, snap.digest)
            self._report("ok", None)
        return True

    def _report(self, outcome: str, error: str | None) -> None:
        if self._on_reload is not None:
            try:
                self._on_reload(outcome, error)
            except Exception:
                log.exception("on_reload callback failed")

    async def start(self) -> None:
        if self._watch and self._task is None:
            self._stop = asyncio.Event()
            ready = asyncio.Event()
            self._task = asyncio.create_task(self._run(ready), name="policy-watcher")
            await ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, ready: asyncio.Event) -> None:
        import watchfiles

        assert self.path is not None
        target = self.path.absolute()
        # Watch the folder, not the file: editors and ConfigMaps replace files by rename.
        folder = target.parent

        def ours(change: watchfiles.Change, p: str) -> bool:
            # Kubernetes mounts a ConfigMap as a symlink into a `..data` folder that it
            # swaps atomically, so events name `..data`/`..<timestamp>`, not our file.
            name = Path(p).name
            return name == target.name or name.startswith("..")

        ready.set()
        async for _ in watchfiles.awatch(
            folder, watch_filter=ours, stop_event=self._stop, debounce=200, step=50
        ):
            await asyncio.to_thread(self.reload)
