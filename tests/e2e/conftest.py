"""e2e tier: attach Envoy's (and irtgate serve's) logs to failing tests only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from irtgate.server.testing import active_stacks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for stack in active_stacks():
            report.sections.append((f"stack logs: {stack.name}", stack.logs()))
