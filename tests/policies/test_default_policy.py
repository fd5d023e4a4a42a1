"""The embedded default policy with the shipped router, on real benchmark questions.

Its difficulty thresholds are quantiles of the shipped router's difficulty on the shared
data; a threshold no real question crosses (as an earlier ``p_max < 0.6`` nearly was)
would leave a decision dead. So every band must be reached, and each must route and
rewrite the way the policy file says.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from irtgate.policies.engine import decide_sync
from irtgate.policies.runtime import PolicyRuntime
from irtgate.server.parse import parse_request
from irtgate.signals.request import ApiKind

pytestmark = pytest.mark.shared_data

SAMPLE = 400


def _test_prompts(shared: Path) -> list[str]:
    prompts: list[str] = []
    for name in ("routerdc-7models", "routerbench-arc"):
        with gzip.open(shared / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
            prompts += [d["prompt"] for d in map(json.loads, f) if d.get("split") == "test"]
    return random.Random(7).sample(prompts, SAMPLE)


def test_every_difficulty_band_is_reached_and_routed_as_written(shared_data: Path) -> None:
    runtime = PolicyRuntime.from_file(None, watch=False)
    if runtime.snapshot.resources.router is None:
        pytest.skip("the default router is not shipped in this checkout")
    seen: Counter[str] = Counter()
    for prompt in _test_prompts(shared_data):
        body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
        out = decide_sync(runtime.snapshot, parse_request(ApiKind.CHAT, body.encode()))
        seen[out.decision] += 1
        if out.decision == "sensitive":  # matched first: difficulty is never computed
            assert out.choice.upstream == "demo-small"
            continue
        difficulty = out.explanation["signal.difficulty.difficulty"]
        assert isinstance(difficulty, float)
        if out.decision == "very-hard":
            assert difficulty > 0.05
            assert out.choice.config == "gpt-4@high"
            assert out.body["model"] == "demo-large-1"
            assert out.body["reasoning_effort"] == "high"
        elif out.decision == "hard":
            assert -0.15 < difficulty <= 0.05
            assert "reasoning_effort" not in out.body
        elif out.decision == "default":
            assert difficulty <= -0.15
            assert out.choice.config != "gpt-4@high"
            assert "reasoning_effort" not in out.body
    # Bands by design: about 1 in 10 very hard, 1 in 4 hard or harder.
    assert 0.04 * SAMPLE <= seen["very-hard"] <= 0.25 * SAMPLE, seen
    assert 0.08 * SAMPLE <= seen["hard"] <= 0.35 * SAMPLE, seen
    assert seen["default"] >= 0.4 * SAMPLE, seen
