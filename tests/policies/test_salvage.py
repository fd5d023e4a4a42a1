"""One `policy check` run reports structural and cross-reference errors together."""

from __future__ import annotations

import pytest

from irtgate.policies.compile import compile_policy
from irtgate.policies.errors import PolicyError

# Seven structural errors (lines 3, 5, 7, 13, 21, 27, 30) and six cross-reference errors
# (lines 6, 10, 19, 20, 25, 29) in one file.
MANY = """\
version: 1
aliases: [auto]
upstreams: [local, cloud, 7]
catalog:
  - {name: small, model: s, upstream: local, local: true, cost: 0.001, colour: red}
  - {name: big, model: b, upstream: nowhere, cost: 0.01}
  - {name: mid, model: m, upstream: cloud, cost: "cheap"}
signals:
  length: {}
  ghost: {type: nonexistent}
decisions:
  - name: short
    priority: high
    when: {signal: length.tokens, lt: 2000}
    candidates: [small]
    objective: {method: linear, w: 0.5}
  - name: long
    priority: 10
    when: {signal: lenght.tokens, gte: 2000}
    candidates: [small, gtp-4]
    objective: {method: linear, w: 1.5}
  - name: other
    priority: 5
    when: {signal: length.tokens, gte: 100}
    candidates: [bigg]
    objective: {method: target, target: 0.7}
    plugins: [{nonplugin: {}}]
default:
  candidates: [small, big, huge]
  objective: {method: linear}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as e:
        compile_policy(text, "p.yaml")
    return [str(p) for p in e.value.problems]


def test_structural_errors_do_not_hide_cross_reference_errors() -> None:
    got = _problems(MANY)
    lines = [int(p.split(":")[1]) for p in got]
    assert lines == [3, 5, 6, 7, 10, 13, 19, 20, 21, 25, 27, 29, 30], got
    assert "p.yaml:6: catalog[1].upstream: unknown upstream 'nowhere'" in got[2]
    assert "p.yaml:19: decisions[1].when.signal: unknown signal 'lenght'" in got
    assert "p.yaml:29: default.candidates[2]: unknown catalog entry 'huge'" in got


def test_a_consequence_names_the_error_it_follows_from() -> None:
    # The entry 'mid' cannot be repaired (its name is broken), so it is dropped; the decision
    # naming it gets an error that points at the cause instead of a bare "unknown".
    text = MANY.replace(
        '  - {name: mid, model: m, upstream: cloud, cost: "cheap"}',
        "  - {name: mid, model: [m], upstream: cloud}",
    ).replace("candidates: [bigg]", "candidates: [mid]")
    got = _problems(text)
    assert "p.yaml:7: catalog[2].model: Input should be a valid string" in got
    assert (
        "p.yaml:25: decisions[2].candidates[0]: unknown catalog entry 'mid' "
        "(follows from the error at line 7: catalog[2].model)"
    ) in got


def test_a_repaired_policy_is_never_served() -> None:
    # Repairs only serve the check: a policy with any error still fails to compile.
    with pytest.raises(PolicyError):
        compile_policy(MANY.replace("priority: high", "priority: 1"), "p.yaml")
