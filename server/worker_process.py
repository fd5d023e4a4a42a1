"""One worker process of ``irtgate serve --workers N`` (see :mod:`irtgate.server.workers`).

Started by the supervisor as a fresh interpreter. Its stdin brings the settings (pickled,
from its own parent) and then stays open: EOF means the supervisor is gone, and the worker
stops. Its stdout carries one JSON line per event (``ready``, ``draining``); anything else
the process prints goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import sys
import threading
from typing import TextIO

from irtgate.server.settings import Settings


def main() -> None:
    """Entry point of one worker process (started by ``WorkerGroup``)."""
    # Stdout carries events to the supervisor; anything else printed goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    settings, index, level = pickle.load(sys.stdin.buffer)
    logging.basicConfig(
        level=level, format=f"%(asctime)s %(levelname)s worker {index} %(name)s: %(message)s"
    )
    asyncio.run(_worker(settings, channel))


async def _worker(settings: Settings, channel: TextIO) -> None:
    from irtgate.server.app import EXIT_MARGIN_S, build, exit_after, wait_for_signal

    loop = asyncio.get_running_loop()
    orphaned = asyncio.Event()

    def watch_parent() -> None:
        # The raw fd, not sys.stdin: a daemon thread blocked inside a buffered reader
        # aborts the interpreter's shutdown.
        while os.read(0, 4096):
            pass  # EOF: the supervisor is gone
        with contextlib.suppress(RuntimeError):  # the loop may have closed already
            loop.call_soon_threadsafe(orphaned.set)

    threading.Thread(target=watch_parent, daemon=True, name="parent-watch").start()
    gateway = build(settings, admin=False, reuse_port=True)
    await gateway.start()
    _tell(channel, "ready")
    waits = [asyncio.ensure_future(wait_for_signal()), asyncio.ensure_future(orphaned.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        # Gone within the drain time even with a worker thread stuck in signal work.
        exit_after(settings.drain_grace_s + EXIT_MARGIN_S)
        _tell(channel, "draining")
        await gateway.stop()


def _tell(channel: TextIO, event: str) -> None:
    with contextlib.suppress(OSError):  # the supervisor may be gone already
        channel.write(json.dumps({"event": event, "pid": os.getpid()}) + "\n")
