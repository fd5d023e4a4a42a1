"""A redeploy or crash of irtgate must not cut responses already flowing (issue 10, defect 2).

irtgate decides once, on the request body, and then closes the ext_proc stream; the
response (here an SSE stream of a few seconds) no longer depends on irtgate at all.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from irtgate.server.settings import FailMode
from irtgate.server.testing import Stack, running_stack, stack_settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-restarts")]

EVENTS, INTERVAL = 10, 0.5  # a 4.5 s stream: it outlives a kill, or a stop and a restart
BODY = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def read_stream(url: str, started: threading.Event) -> tuple[int, list[str]]:
    """Status and the ``data:`` lines of one streamed chat completion."""
    lines: list[str] = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=BODY, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                lines.append(line)
                started.set()
    return r.status_code, lines


def start_stream(pool: ThreadPoolExecutor, url: str) -> Future[tuple[int, list[str]]]:
    started = threading.Event()
    future = pool.submit(read_stream, url, started)
    assert started.wait(15), "the stream did not start"
    return future


def assert_complete(result: tuple[int, list[str]]) -> None:
    status, lines = result
    assert status == 200
    assert len(lines) == EVENTS + 1 and lines[-1] == "data: [DONE]", lines[-3:]
    assert '"model": "demo-small-1"' in lines[0]  # routed by irtgate before it went away


@pytest.mark.parametrize("fail_mode", [FailMode.CLOSED, FailMode.OPEN])
def test_streams_in_flight_survive_sigterm_and_kill_9_of_irtgate(
    tmp_path: Path, fail_mode: FailMode
) -> None:
    settings = stack_settings(fail_mode=fail_mode)
    with (
        running_stack(
            tmp_path,
            settings,
            processor="subprocess",
            stream_events=EVENTS,
            stream_interval_s=INTERVAL,
            name=f"restarts-{fail_mode}",
        ) as s,  # fmt: skip
        ThreadPoolExecutor(2) as pool,
    ):
        proc = _processor(s)
        first = start_stream(pool, s.url)
        # A redeploy: SIGTERM. Nothing is left to drain, so the process ends at once
        # instead of holding on (and then cutting the stream) for the drain grace.
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - began < 3.0
        s.restart_processor()

        second = start_stream(pool, s.url)
        proc = _processor(s)
        proc.kill()  # a crash: kill -9
        proc.wait(10)
        assert not second.done()  # still flowing
        assert_complete(first.result(30))
        assert_complete(second.result(30))  # routed by the restarted irtgate, then cut loose
        # No ext_proc stream was open when irtgate went away: none failed.
        stats = s.envoy.stats("http.irtgate.ext_proc")
        assert stats["http.irtgate.ext_proc.streams_failed"] == 0
        assert stats["http.irtgate.ext_proc.streams_closed"] == 2  # closed by irtgate, with OK


def _processor(stack: Stack) -> subprocess.Popen[bytes]:
    assert stack.processor is not None
    return stack.processor
