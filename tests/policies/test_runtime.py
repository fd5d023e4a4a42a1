"""PolicyRuntime: atomic reload with a real watcher, last good snapshot on a broken edit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from irtgate.policies.errors import PolicyError
from irtgate.policies.runtime import PolicyRuntime
from tests.policies.fakes import BASE, alias_bomb, chat, fake_resources


def policy(default_choice: str) -> str:
    return (
        BASE + f"default:\n  candidates: [{default_choice}]\n"
        "  objective: {method: linear, w: 1.0}\n"
    )


async def wait_for(cond: Callable[[], object]) -> None:
    async with asyncio.timeout(10):
        while not cond():  # noqa: ASYNC110 - the watcher runs in its own thread
            await asyncio.sleep(0.05)


async def test_hot_reload_swaps_and_keeps_last_good_on_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy("small"))
    events: list[tuple[str, str | None]] = []
    rt = PolicyRuntime.from_file(
        path, resources=fake_resources(), on_reload=lambda o, e: events.append((o, e))
    )
    assert rt.upstreams() == ("local", "cloud")
    assert rt.aliases() == ("auto",)
    assert set(rt.known_models()) == {"auto", "small", "mid", "big", "small-m", "mid-m", "big-m"}
    await rt.start()
    try:
        await asyncio.sleep(0.3)  # let the watcher settle
        assert (await rt.decide(chat({}))).choice.config == "small"

        path.write_text(policy("big"))
        await wait_for(lambda: events)
        assert events == [("ok", None)]
        assert (await rt.decide(chat({}))).choice.config == "big"

        # A broken edit: the last good snapshot keeps serving, the error names the path.
        with caplog.at_level(logging.ERROR):
            path.write_text(policy("nonexistent"))
            await wait_for(lambda: len(events) == 2)
        outcome, error = events[1]
        assert outcome == "error" and error is not None
        assert f"{path}:11: default.candidates[0]: unknown catalog entry 'nonexistent'" in error
        assert "default.candidates[0]" in caplog.text
        assert (await rt.decide(chat({}))).choice.config == "big"

        # An editor-style replace (write elsewhere, rename over) is seen too.
        tmp = tmp_path / ".policy.yaml.swp"
        tmp.write_text(policy("mid"))
        tmp.replace(path)
        await wait_for(lambda: len(events) == 3)
        assert events[2] == ("ok", None)
        assert (await rt.decide(chat({}))).choice.config == "mid"
    finally:
        await rt.stop()


async def test_a_request_uses_one_snapshot_throughout(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(policy("small"))
    rt = PolicyRuntime.from_file(path, resources=fake_resources(), watch=False)
    before = rt.snapshot
    task = asyncio.create_task(rt.decide(chat({})))
    await asyncio.sleep(0)  # the request has started: it holds the old snapshot
    path.write_text(policy("big"))
    assert rt.reload()  # swaps while the first request may be in flight
    assert (await task).choice.config == "small"
    assert rt.snapshot is not before
    assert (await rt.decide(chat({}))).choice.config == "big"


async def test_reload_reports_nothing_when_the_content_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(policy("small"))
    events: list[tuple[str, str | None]] = []
    rt = PolicyRuntime.from_file(
        path, resources=fake_resources(), watch=False, on_reload=lambda o, e: events.append((o, e))
    )
    assert rt.reload() and events == []
    path.unlink()
    assert not rt.reload()
    assert events[0][0] == "error" and "cannot read" in (events[0][1] or "")


def test_a_broken_file_at_start_up_raises_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(policy("nope").replace("w: 1.0", "w: 2"))
    with pytest.raises(PolicyError) as ei:
        PolicyRuntime.from_file(path, resources=fake_resources(), watch=False)
    # The schema error and the unknown candidate, both in one report.
    assert [(p.line, p.path) for p in ei.value.problems] == [
        (11, ("default", "candidates", 0)),
        (12, ("default", "objective", "w")),
    ]


async def test_decide_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(policy("small"))
    rt = PolicyRuntime.from_file(path, resources=fake_resources(), watch=False)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(ticker())
    await asyncio.gather(*(rt.decide(chat({})) for _ in range(20)))
    t.cancel()
    assert ticks > 1  # the loop kept running while decisions were computed in threads


async def test_reload_through_a_kubernetes_style_configmap_swap(tmp_path: Path) -> None:
    # Kubernetes' atomic writer: policy.yaml -> ..data/policy.yaml, ..data -> ..<ts>/,
    # and an update swaps the ..data symlink by rename; policy.yaml itself never changes.
    v1 = tmp_path / "..2026_01"
    v1.mkdir()
    (v1 / "policy.yaml").write_text(policy("small"))
    (tmp_path / "..data").symlink_to(v1.name)
    path = tmp_path / "policy.yaml"
    path.symlink_to("..data/policy.yaml")
    events: list[tuple[str, str | None]] = []
    rt = PolicyRuntime.from_file(
        path, resources=fake_resources(), on_reload=lambda o, e: events.append((o, e))
    )
    await rt.start()
    try:
        await asyncio.sleep(0.3)
        v2 = tmp_path / "..2026_02"
        v2.mkdir()
        (v2 / "policy.yaml").write_text(policy("mid"))
        (tmp_path / "..data_tmp").symlink_to(v2.name)
        (tmp_path / "..data_tmp").replace(tmp_path / "..data")
        await wait_for(lambda: events)
        assert events == [("ok", None)]
        assert (await rt.decide(chat({}))).choice.config == "mid"
    finally:
        await rt.stop()


def test_reload_refuses_an_alias_bomb_and_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy("small"))
    events: list[tuple[str, str | None]] = []
    rt = PolicyRuntime.from_file(
        path,
        resources=fake_resources(),
        watch=False,
        on_reload=lambda o, e: events.append((o, e)),
    )
    good = rt.snapshot
    path.write_text(alias_bomb())
    assert rt.reload() is False
    assert rt.snapshot is good
    ((outcome, error),) = events
    assert outcome == "error" and error is not None
    assert f"{path}:3: l1[0]: YAML aliases" in error
