"""Every text signal's cost grows linearly with the body (issue 10, defect 1): CPU time on
n and 4n characters of a hostile-ish text, median of a few runs (tests/signals/scaling.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from irtgate.signals.base import Resources, Signal, SignalContext
from irtgate.signals.keyword import make_keyword
from irtgate.signals.language import make_language
from irtgate.signals.length import make_length
from irtgate.signals.pii import make_pii
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText
from tests.signals.scaling import QUADRATIC_GUARD, growth

UNITS = {
    "prose": "The quick brown fox jumps over the lazy dog. ",
    "unicode": "Größe naïve café 東京 Привет мир ",
    "findings": "mail a.b@example.com or 10.0.0.1, key=AbCd1234EfGh5678 ",
    "digits": "12 345 6789 0 ",
}


def request(text: str, turns: int) -> LLMRequest:
    msgs = tuple(Message("user", PromptText(text)) for _ in range(turns))
    return LLMRequest(ApiKind.CHAT, "auto", msgs)


def signals() -> dict[str, Signal]:
    length = make_length({}, Resources())
    length.counter.MEMO_MIN_CHARS = 10**12  # type: ignore[attr-defined]  # measure the work
    pii = make_pii({}, Resources())
    pii.MEMO_MIN_CHARS = 10**12  # type: ignore[attr-defined]
    lists = {"l": {"literals": ["urgent", "asap"], "regexes": [r"\bkey\b.+\d"]}}
    return {
        "length": length,
        "pii": pii,
        "keyword": make_keyword({"lists": lists, "scope": "all"}, Resources()),
        "language": make_language({}, Resources()),
    }


SIGNALS = signals()


@pytest.mark.parametrize("unit", sorted(UNITS))
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_signal_cost_is_linear_in_the_body(name: str, unit: str) -> None:
    sig = SIGNALS[name]

    def work(n: int) -> Callable[[], object]:
        text = UNITS[unit] * (n // len(UNITS[unit]) // 2)
        req = request(text, 2)  # two turns, so scopes over all turns are measured too
        return lambda: sig.compute(SignalContext(req))

    # Digit groups cost the phone matcher ~20 us a character: a smaller n is enough there.
    n = 1500 if (name, unit) == ("pii", "digits") else 8000
    assert growth(work, n) < QUADRATIC_GUARD
