"""Secret detectors: provider keys by their documented prefixes, JWTs, PEM private keys,
and high-entropy values assigned to a credential-sounding name (``api_key = ...``).

A bare high-entropy string with no such name nearby is not reported: commit hashes,
UUIDs and checksums look exactly like that and are far more common in prompts.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Iterator

from irtgate.signals.base import WorkBudget
from irtgate.signals.pii.types import Finding, PIIType

# (kind, literal hints, pattern): a pattern runs only if one of its hints occurs in the text;
# a substring test costs ~1 us against ~60 us for a regex scan of a 500-token prompt.
_PREFIXED: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    ("anthropic_key", ("sk-ant-",),
     re.compile(r"(?<![\w-])sk-ant-[a-z]{3,5}\d{2}-[A-Za-z0-9_-]{20,200}")),
    ("openai_key", ("sk-",),
     re.compile(r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}")),
    ("stripe_key", ("_live_", "_test_"),
     re.compile(r"(?<!\w)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,200}")),
    ("aws_access_key", ("AKIA", "ASIA", "ABIA", "ACCA"),
     re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])")),
    ("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
     re.compile(r"(?<!\w)gh[pousr]_[A-Za-z0-9]{36,251}(?!\w)")),
    ("github_token", ("github_pat_",),
     re.compile(r"(?<!\w)github_pat_[A-Za-z0-9_]{50,255}(?!\w)")),
    ("slack_token", ("xox",), re.compile(r"(?<![\w-])xox[abposre]-[A-Za-z0-9-]{10,250}")),
    ("google_api_key", ("AIza",), re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])")),
)  # fmt: skip
_KEYWORD_HINTS = ("pass", "pwd", "secret", "token", "key", "credential", "bearer")

_JWT = re.compile(
    r"(?<![\w-])eyJ[A-Za-z0-9_-]{6,2000}\.eyJ[A-Za-z0-9_-]{6,8000}\.[A-Za-z0-9_-]{0,2000}"
)

# Bounded, lazy body so a BEGIN line with no END cannot make the scan quadratic.
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]{0,16000}?-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"|[A-Za-z0-9+/=\s]{0,16000})"
)

_PASSWORD_WORDS = r"pass(?:word|wd|phrase)?|pwd"
_KEY_WORDS = (
    r"secret|token|api[_ -]?key|apikey|access[_ -]?key|auth[_ -]?token|client[_ -]?secret|"
    r"private[_ -]?key|credentials?|session[_ -]?key|signing[_ -]?key"
)
_ASSIGNED = re.compile(
    rf"(?i)\b(?:(?P<pw>{_PASSWORD_WORDS})|(?P<key>{_KEY_WORDS})|(?P<bearer>bearer))\b"
    r"(?(bearer)\s+|[\"'\]]?\s{0,3}(?:[:=]|=>|:=|\bis\b)\s{0,3})"
    r"[\"'`]?(?P<val>[^\s\"'`,;<>()\[\]{}]{6,400})"
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:x+|\*+|\.+|-+|_+|#+|0+|none|null|nil|true|false|undefined|required|optional|"
    r"redacted|changeme|example|placeholder|secret|password|token|string|your[_-].*|my[_-].*|"
    r"<.*>|\$.*|%.*|env\..*|os\.environ.*|process\.env.*|settings\..*|config\..*|self\..*)$"
)


def _entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _random_looking(s: str, min_len: int = 16, min_bits: float = 3.0) -> bool:
    has_digit = any(c.isdigit() for c in s)
    has_alpha = any(c.isalpha() for c in s)
    return len(s) >= min_len and has_digit and has_alpha and _entropy(s) >= min_bits


def _jwt_header_ok(segment: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


def _assignments(text: str, budget: WorkBudget | None = None) -> Iterator[re.Match[str]]:
    """``_ASSIGNED`` matches, searched only in windows around its keywords: finding the
    keywords with str.find is ~4x faster on long code than letting the regex try every
    position (an alternation gives sre no prefix to skip on)."""
    lowered = text.lower()
    starts = sorted(
        {i for h in _KEYWORD_HINTS for i in _occurrences(lowered, h)},
    )
    pos = 0
    # Budget checks on the hints, not on the matches: "token " 43,000 times is 43,000
    # hints and no match, ~1M regex calls.
    for i in starts if budget is None else budget.bounded(starts):
        if i < pos:
            continue
        # The longest keyword ("client secret") starts <= 13 chars before a hint, and a
        # value ends <= 420 chars after it. The leftmost match in that window, tried only
        # at the starts that can be kept (<= 8 chars after the hint): what a search of the
        # window would keep, without trying the ~430 positions after them.
        end = i + 440
        m = None
        for start in range(max(0, i - 16), min(i + 8, len(text)) + 1):
            m = _ASSIGNED.match(text, start, end)
            if m is not None:
                break
        if m is not None and pos <= m.start():
            pos = m.end()
            yield m


def _occurrences(haystack: str, needle: str) -> Iterator[int]:
    i = haystack.find(needle)
    while i != -1:
        yield i
        i = haystack.find(needle, i + 1)


def find_secrets(text: str, budget: WorkBudget | None = None) -> Iterator[Finding]:
    def each(items: Iterator[re.Match[str]]) -> Iterator[re.Match[str]]:
        return items if budget is None else budget.bounded(items)

    for kind, hints, pattern in _PREFIXED:
        if not any(h in text for h in hints):
            continue
        for m in each(pattern.finditer(text)):
            # "sk-learn-is-a-library" has the prefix but not a key's randomness.
            body = m.group().split("-", 1)[-1] if kind != "aws_access_key" else m.group()
            if not _random_looking(body, min_len=16, min_bits=3.0):
                continue
            yield Finding(PIIType.SECRET, m.start(), m.end(), 0.95, kind)
    if "eyJ" in text:
        for m in each(_JWT.finditer(text)):
            if _jwt_header_ok(m.group().split(".", 1)[0]):
                yield Finding(PIIType.SECRET, m.start(), m.end(), 0.95, "jwt")
    if "-----BEGIN" in text:
        for m in each(_PEM.finditer(text)):
            yield Finding(PIIType.SECRET, m.start(), m.end(), 0.99, "private_key")
    for m in _assignments(text, budget):
        val = m.group("val").rstrip(".:!?")
        if len(val) < 6 or _PLACEHOLDER.match(val) or "(" in val:
            continue
        start = m.start("val")
        if m.group("pw"):
            # Passwords are short and not random; a lone lower-case word ("password is
            # incorrect") is prose, anything with a digit, symbol or capital is a credential.
            if val.isalpha() and val.islower():
                continue
            yield Finding(PIIType.SECRET, start, start + len(val), 0.75, "password")
        elif _random_looking(val, min_len=12, min_bits=3.0):
            kind = "bearer_token" if m.group("bearer") else "credential"
            yield Finding(PIIType.SECRET, start, start + len(val), 0.8, kind)
