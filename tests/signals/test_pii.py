"""PII detectors, the ``pii`` signal and the safety of findings in logs."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

import pytest

from irtgate.signals.base import Resources, SignalContext, WorkBudget, registered
from irtgate.signals.pii import (
    SCRATCH_KEY,
    Finding,
    PIIScanner,
    PIISignal,
    PIIType,
    detect_all,
    find_pii,
    make_pii,
)
from irtgate.signals.pii.names import ner_available
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText
from tests.signals.scaling import QUADRATIC_GUARD, growth


def kinds(text: str) -> list[tuple[str, str]]:
    """(type, matched text) per finding: test-side only, to assert exact spans."""
    return [(f.type.value, text[f.start : f.end]) for f in find_pii(text)]


def request(*turns: tuple[str, str]) -> LLMRequest:
    msgs = tuple(Message(role=r, text=PromptText(t)) for r, t in turns)
    return LLMRequest(api=ApiKind.CHAT, model="auto", messages=msgs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe@example.org now", [("email", "jane.doe@example.org")]),
        ("我的邮箱是zhang.wei@example.cn，谢谢", [("email", "zhang.wei@example.cn")]),
        ("call (202) 555-0143 today", [("phone", "(202) 555-0143")]),
        ("tel +44 20 7946 0958", [("phone", "+44 20 7946 0958")]),
        ("pay 4111 1111 1111 1111 now", [("payment_card", "4111 1111 1111 1111")]),
        ("IBAN DE89 3704 0044 0532 0130 00 IBAN", [("iban", "DE89 3704 0044 0532 0130 00")]),
        ("SSN 123-45-6789.", [("us_ssn", "123-45-6789")]),
        ("from 203.0.113.45.", [("ip_address", "203.0.113.45")]),
        ("peer 2606:4700:4700::1111 up", [("ip_address", "2606:4700:4700::1111")]),
        ("id AKIAIOSFODNN7EXAMPLE ok", [("secret", "AKIAIOSFODNN7EXAMPLE")]),
        ("the password is hunter2!", [("secret", "hunter2")]),
    ],
)
def test_detects_each_type_with_exact_span(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order #2025550143 has shipped.",  # order number, a valid US phone number by digits
        "Invoice no. 4155550198 is overdue.",
        "The meeting is on 2024-05-17 at 10:30.",
        "Date range 2024-05-2025 is malformed.",  # valid digits, wrong grouping for a phone
        "ISBN 978-3-16-148410-0",
        "Test card 4111 1111 1111 1112 declined.",  # Luhn fails
        "IBAN DE88 3704 0044 0532 0130 00 bounced.",  # mod-97 checksum fails
        "SSNs 000-12-3456, 666-12-3456, 900-12-3456, 123-00-4567, 078-05-1120",
        "Upgrade to version 1.2.3.4 then v2.10.1.3; OID 1.3.6.1.4.1.311",
        "At 12:30:45 the MAC 00:1A:2B:3C:4D:5E moved; std::vector and Foo::bar",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "request 550e8400-e29b-41d4-a716-446655440000 failed",
        "Install sk-learn-utilities-package-for-ml; the token limit is 4096.",
        "api_key = os.environ['OPENAI_API_KEY'] and password: ******** and api_key: YOUR_API_KEY",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKo\n-----END PUBLIC KEY-----",
        "Follow @jane_doe; npm i @scope/pkg@1.4.2; ssh deploy@localhost",
        "Sorry, the password is incorrect.",
        "请用三句话解释光合作用。 Schreibe ein Gedicht über den Herbst 🍂 — ¿Qué tal?",
        "",
    ],
)
def test_near_misses_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_low_confidence_findings_are_kept_by_detect_all_only() -> None:
    for text in ("Order #202-555-0143", "Date range 2024-05-2025"):  # id context; odd grouping
        assert find_pii(text) == []
        low = detect_all(text)
        assert [f.type for f in low] == [PIIType.PHONE]
        assert low[0].confidence < 0.5


def test_bare_digit_runs_are_phones_only_when_called_so() -> None:
    assert detect_all("paid 2025550143") == []
    assert kinds("my phone is 2025550143") == [("phone", "2025550143")]


def test_findings_do_not_overlap_and_are_sorted() -> None:
    text = "card 4111111111111111, mail a@b.io, ip 8.8.8.8, ssn 123-45-6789"
    found = find_pii(text)
    assert [f.type.value for f in found] == ["payment_card", "email", "ip_address", "us_ssn"]
    for a, b in itertools.pairwise(found):
        assert a.end <= b.start


def test_jwt_needs_a_json_header() -> None:
    jwt = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    )
    assert kinds(f"Bearer {jwt}") == [("secret", jwt)]
    fake = "eyJub3QganNvbiBhdCBhbGw.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefgh1234"
    assert find_pii(f"x {fake}") == []


def test_pem_private_key_spans_the_whole_block() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbC123\n-----END RSA PRIVATE KEY-----"
    text = f"key:\n{pem}\nthanks"
    assert kinds(text) == [("secret", pem)]


def test_finding_repr_and_logs_carry_no_pii(caplog: pytest.LogCaptureFixture) -> None:
    secret_bits = ["jane.doe@example.org", "4111 1111 1111 1111", "123-45-6789", "hunter2"]
    text = f"{secret_bits[0]} {secret_bits[1]} SSN {secret_bits[2]} password: {secret_bits[3]}!"
    found = find_pii(text)
    assert len(found) == 4
    log = logging.getLogger("test.pii")
    with caplog.at_level(logging.INFO):
        for f in found:
            log.info("finding %s %r", f, f)
        log.info("all: %s", found)
    rendered = caplog.text + "".join(repr(f) + str(f) for f in found)
    for bit in secret_bits:
        assert bit not in rendered
    # The digits are not there in pieces either (the span is positions only).
    assert "4111" not in rendered and "6789" not in rendered


def test_finding_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="span"):
        Finding(PIIType.EMAIL, 5, 5, 0.9)
    with pytest.raises(ValueError, match="confidence"):
        Finding(PIIType.EMAIL, 0, 5, 1.5)


def test_scanner_accepts_prompt_text_and_rejects_other_types() -> None:
    assert find_pii(PromptText("write to a@b.io")) == find_pii("write to a@b.io")
    with pytest.raises(TypeError, match="str or PromptText"):
        find_pii(b"a@b.io")  # type: ignore[arg-type]


def test_phone_regions_widen_national_formats() -> None:
    text = "Ring our London office on 020 7946 0958"
    assert find_pii(text) == []  # national UK format; default region is US
    gb = PIIScanner(phone_regions=["US", "GB"]).scan(text)
    assert [(f.type, text[f.start : f.end]) for f in gb] == [(PIIType.PHONE, "020 7946 0958")]


def test_scanner_type_subset_and_confidence_floor() -> None:
    text = "mail a@b.io from 10.0.0.1"
    only_email = PIIScanner(["email"]).scan(text)
    assert [f.type for f in only_email] == [PIIType.EMAIL]
    strict = PIIScanner(min_confidence=0.8).scan(text)  # private IPs score 0.7
    assert [f.type for f in strict] == [PIIType.EMAIL]


def test_long_input_is_linear_enough() -> None:
    # Adversarial-ish runs for the candidate patterns; must finish quickly (no backtracking
    # blow-up). A timing assert would be flaky, so the size makes a blow-up obvious instead.
    text = ("1 " * 20000) + ("a" * 20000) + ("-----BEGIN RSA PRIVATE KEY-----" + "A" * 5000)
    text += ":" * 5000 + "sk-" * 3000 + "password=" * 2000
    found = find_pii(text)
    assert all(f.type is PIIType.SECRET for f in found)


# --- the signal ------------------------------------------------------------------------


def test_registered_under_its_name() -> None:
    assert registered()["pii"][1] is make_pii


def test_signal_scans_every_turn_including_tool_results() -> None:
    sig = make_pii({}, Resources())
    req = request(
        ("system", "You are a support bot."),
        ("user", "look up my account"),
        ("tool", '{"customer": {"email": "k.tanaka@example.jp", "ip": "203.0.113.9"}}'),
        ("user", "thanks, what is my plan?"),
    )
    ctx = SignalContext(req)
    out = sig.compute(ctx)
    assert out == {"found": True, "types": ("email", "ip_address"), "count": 2, "truncated": False}
    assert set(ctx.scratch[SCRATCH_KEY]) == {2}
    assert not ctx.embedded  # no encoder pass for a pattern signal


def test_signal_remembers_long_turns_by_digest() -> None:
    sig = make_pii({}, Resources())
    assert isinstance(sig, PIISignal)
    history = "Meeting notes, nothing personal here. " * 150 + "Mail ops@example.com."
    calls: list[int] = []
    scan = sig.scanner.scan_within

    def spy(text: str | PromptText, budget: WorkBudget | None) -> tuple[list[Finding], bool]:
        calls.append(len(text))
        return scan(text, budget)

    sig.scanner.scan_within = spy  # type: ignore[method-assign]
    a = sig.compute(SignalContext(request(("system", history), ("user", "hi"))))
    b = sig.compute(SignalContext(request(("system", history), ("user", "hello"))))
    assert a == b == {"found": True, "types": ("email",), "count": 1, "truncated": False}
    assert len([n for n in calls if n > 4096]) == 1  # the long turn was scanned once
    assert all(isinstance(k, bytes) for k in sig._memo)


def test_signal_last_user_scope_ignores_history() -> None:
    sig = make_pii({"scope": "last_user"}, Resources())
    req = request(("user", "my card is 4111 1111 1111 1111"), ("user", "never mind"))
    assert sig.compute(SignalContext(req)) == {
        "found": False,
        "types": (),
        "count": 0,
        "truncated": False,
    }


def test_signal_values_hold_no_prompt_text() -> None:
    sig = make_pii({}, Resources())
    assert isinstance(sig, PIISignal)
    req = request(("user", "reach me at jane.doe@example.org"))
    out = sig.compute(SignalContext(req))
    assert "jane" not in repr(out)
    assert set(out) == set(sig.fields)
    assert set(sig.labels["types"]) == {t.value for t in PIIType}
    for name, typ in sig.fields.items():
        assert isinstance(out[name], typ)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"types": ["email", "passport"]}, "passport"),
        ({"types": "email"}, "types"),
        ({"types": []}, "types"),
        ({"min_confidence": 2}, "min_confidence"),
        ({"min_confidence": "high"}, "min_confidence"),
        ({"scope": "everything"}, "scope"),
        ({"phone_regions": ["XX"]}, "phone_regions"),
        ({"phone_regions": "US"}, "phone_regions"),
        ({"mode": "fast"}, "mode"),
    ],
)
def test_factory_rejects_bad_params_naming_them(params: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make_pii(params, Resources())


@pytest.mark.skipif(not ner_available(), reason="NER extra (spaCy model) not installed")
def test_person_names_with_ner() -> None:
    sig = make_pii({"types": ["person", "email"]}, Resources())
    req = request(("user", "Please forward this to Maria Gonzalez in accounting."))
    out = sig.compute(SignalContext(req))
    assert out["types"] == ("person",)
    text = "Please forward this to Maria Gonzalez in accounting."
    found = PIIScanner(["person"]).scan(text)
    assert [text[f.start : f.end] for f in found] == ["Maria Gonzalez"]


def test_assignment_scan_keeps_what_a_window_search_keeps() -> None:
    """The scan tries only the starts it can keep; it must find what searching the whole
    window around each keyword (the reference below) finds."""
    import random
    import re
    from collections.abc import Iterator

    from irtgate.signals.pii import secrets

    def reference(text: str) -> Iterator[re.Match[str]]:
        lowered = text.lower()
        starts = sorted(
            {i for h in secrets._KEYWORD_HINTS for i in secrets._occurrences(lowered, h)}
        )
        pos = 0
        for i in starts:
            if i < pos:
                continue
            m = secrets._ASSIGNED.search(text, max(0, i - 16), i + 440)
            if m is not None and pos <= m.start() <= i + 8:
                pos = m.end()
                yield m

    frags = [
        "password: hunter2x9", "api_key = 'AbC123xyz789QQ'", "bearer abcdef123456",
        "the key is 'Zq9x8W7v6U5t4'", "client secret: A1b2C3d4E5f6", "passphrase=Tr0ub4dor&3",
        "my key", "secret", "KEY=", "pwd:=abcdef12", "keys", "monkey", "Token: null", " ",
        "\n", "give the key equations or facts where they matter, ",
    ]  # fmt: skip
    rng = random.Random(7)
    found = 0
    for _ in range(400):
        text = "".join(rng.choice(frags) for _ in range(rng.randrange(1, 30)))
        want = [(m.span(), m.groupdict()) for m in reference(text)]
        assert [(m.span(), m.groupdict()) for m in secrets._assignments(text)] == want
        found += len(want)
    assert found > 100


# Bodies made of one kind of finding, repeated: the overlap resolution used to compare each
# finding with every one kept before it (128 KiB of SSNs: 1.5 s, x4 per doubling). SSNs
# themselves are left out: the phone matcher's (linear) cost on them hides the rest here.
_REPEATED = {
    "email": "a.b@example.com ",
    "ipv6": "fe80::1:2 ",
    "credential": "api_key = abcdef123456ABCDEF ",
}


@pytest.mark.parametrize("kind", sorted(_REPEATED))
def test_scan_time_grows_linearly_with_many_findings(kind: str) -> None:
    scanner = PIIScanner(min_confidence=0.0)
    unit = _REPEATED[kind]

    def work(n: int) -> Callable[[], object]:
        text = unit * (n // len(unit))
        return lambda: scanner.scan(text)

    assert growth(work, 16_000) < QUADRATIC_GUARD


def test_signal_reads_at_most_max_chars_newest_turn_first() -> None:
    sig = make_pii({"max_chars": 2000}, Resources())
    old = "filler words " * 200 + "my old mail: a.b@example.com"  # past the bound
    req = request(("user", old), ("assistant", "ok"), ("user", "card 4111 1111 1111 1111"))
    out = sig.compute(SignalContext(req))
    assert out == {"found": True, "types": ("payment_card",), "count": 1, "truncated": True}
    full = make_pii({}, Resources()).compute(SignalContext(req))
    assert full["types"] == ("email", "payment_card") and full["truncated"] is False


@pytest.mark.parametrize(
    "hostile",
    [
        "1234567 " * 20_000,  # phone candidates: ~20 us a character to judge
        "token " * 40_000,  # credential hints with no assignment: ~1M regex calls
        ":1:" * 40_000,  # IPv6 hints with no address
    ],
)
def test_signal_stops_when_its_cpu_budget_is_spent(hostile: str) -> None:
    sig = make_pii({}, Resources())
    assert isinstance(sig, PIISignal)
    budget = WorkBudget(cpu_seconds=0.05)
    ctx = SignalContext(request(("user", hostile)), budget=budget)
    budget.start()
    t0 = time.thread_time()
    out = sig.compute(ctx)
    assert out["truncated"] is True
    assert time.thread_time() - t0 < 0.5  # the whole text takes seconds
    assert sig.memo_size() == (0, 0)  # a partial scan is never remembered


def test_memo_stays_bounded_under_many_distinct_hostile_turns() -> None:
    # issue 10: after 8,984 hostile bodies RSS went from 164 to 409 MB; turns dense with
    # findings (hundreds each) filled a memo bounded only by its number of entries.
    sig = make_pii({}, Resources())
    assert isinstance(sig, PIISignal)
    for i in range(300):
        body = f"{i} " + "a.b@example.com " * 300  # distinct, long, 300 findings each
        sig.compute(SignalContext(request(("user", body))))
        small = f"{i} " + "c@example.org " + "filler " * 700  # distinct, long, 1 finding
        sig.compute(SignalContext(request(("user", small))))
    turns, findings = sig.memo_size()
    assert findings <= PIISignal.MEMO_FINDINGS and turns <= PIISignal.MEMO_SIZE
    assert turns == 300  # the sparse ones are remembered, the dense ones are not
