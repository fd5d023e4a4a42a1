"""The decision log writer: content-free records, bounded queue, rotation, no blocking."""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from irtgate.server.decision_log import DecisionLog, DecisionLogConfig, DecisionRecord
from irtgate.signals.text import PromptText


def _record(i: int = 0, **kw: Any) -> DecisionRecord:
    base: dict[str, object] = dict(
        request_id=f"r{i}",
        time=1.7e9 + i,
        api="chat",
        decision="easy",
        outcome="routed",
        latency_ms=1.5,
        policy="abc123",
        router="default-8090f8e6",
        choice="mistral-7b",
        why=("length.tokens<2000",),
        signals={
            "length.tokens": 42,
            "pii.found": False,
            "language.code": "en",
            "pii.types": ("email",),
            "difficulty.p_max": float("nan"),
        },
        p={"mistral-7b": 0.61, "gpt-4": 0.8, "new-model": None},
        cost={"mistral-7b": 0.0001, "gpt-4": 0.005, "new-model": None},
    )
    base.update(kw)
    return DecisionRecord(**base)  # type: ignore[arg-type]


def test_a_record_is_numbers_and_labels() -> None:
    row = json.loads(_record().to_json())
    assert row["v"] == 1 and row["choice"] == "mistral-7b"
    assert row["signals"]["pii.types"] == ["email"]
    assert row["signals"]["difficulty.p_max"] is None  # NaN is not JSON
    assert row["p"]["new-model"] is None


@pytest.mark.parametrize(
    "kw",
    [
        {"signals": {"keyword.text": "my password is hunter2"}},  # free text: has spaces
        {"signals": {"x": PromptText("secret")}},
        {"signals": {"x": "line\nbreak"}},
        {"signals": {"x": "a" * 200}},
        {"decision": "two words"},
        {"p": {"gpt-4": "high"}},
        {"why": ("a\nb",)},
    ],
)
def test_text_cannot_get_into_a_record(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="decision log"):
        _record(**kw)


def test_lines_rotate_by_size(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    written = []
    log = DecisionLog(
        DecisionLogConfig(mode="full", path=path, max_bytes=4096, backups=2),
        on_write=lambda: written.append(1),
    )
    log.start()
    for i in range(100):
        log.submit(_record(i))
    log.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["decisions.jsonl", "decisions.jsonl.1", "decisions.jsonl.2"]
    assert all(f.stat().st_size <= 4096 for f in files)
    ids = [json.loads(line)["request_id"] for line in path.read_text().splitlines()]
    assert ids[-1] == "r99" and len(written) == 100


def test_sampling() -> None:
    log = DecisionLog(DecisionLogConfig(mode="sampled", sample=0.25), rng=random.Random(1))
    share = sum(log.wanted() for _ in range(10_000)) / 10_000
    assert 0.22 < share < 0.28
    assert not DecisionLog(DecisionLogConfig()).wanted()
    assert DecisionLog(DecisionLogConfig(mode="full")).wanted()


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    gate = threading.Event()
    drops: list[int] = []
    log = DecisionLog(
        DecisionLogConfig(mode="full", path=tmp_path / "d.jsonl", queue_size=10),
        on_drop=lambda: drops.append(1),
    )
    log.start()
    # Hold the writer thread inside its first write, so the queue fills up.
    assert log._listener is not None
    (sink,) = log._listener.handlers
    real = sink.emit

    def slow(rec: logging.LogRecord) -> None:
        gate.wait(5)
        real(rec)

    sink.emit = slow  # type: ignore[method-assign,assignment]
    t0 = time.perf_counter()
    for i in range(100):
        log.submit(_record(i))
    assert time.perf_counter() - t0 < 1.0  # never waited for the writer
    assert len(drops) >= 100 - 10 - 1
    gate.set()
    log.close()
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 100 - len(drops)


def test_a_write_error_is_counted_not_raised(tmp_path: Path) -> None:
    errors: list[int] = []
    log = DecisionLog(
        DecisionLogConfig(mode="full", path=tmp_path / "d.jsonl"), on_error=lambda: errors.append(1)
    )
    log.start()
    assert log._listener is not None
    (sink,) = log._listener.handlers
    sink._inner.stream.close()  # type: ignore[attr-defined]
    log.submit(_record())
    log.close()
    assert errors == [1]


def test_off_writes_nothing(tmp_path: Path) -> None:
    log = DecisionLog(DecisionLogConfig(path=tmp_path / "d.jsonl"))
    log.start()
    log.submit(_record())
    log.close()
    assert not (tmp_path / "d.jsonl").exists()


def test_bad_config() -> None:
    for kw in ({"mode": "some"}, {"sample": 0}, {"max_bytes": 10}, {"queue_size": 0}):
        with pytest.raises(ValueError):
            DecisionLogConfig(**kw)
    assert queue  # the module under test uses a bounded queue.Queue
