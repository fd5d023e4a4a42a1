"""Pattern detectors for structured PII: a cheap regex proposes, a validator disposes.

Every regex here is linear (no nested unbounded repeats) and proposes candidates only;
checksums (Luhn, IBAN mod 97), number-plan validation (``phonenumbers``), SSN range rules
(``python-stdnum``) and ``ipaddress`` then reject look-alikes such as order numbers, dates,
version strings and ISBNs. Context words nearby raise or lower the confidence.

Library imports are deferred to the first scan (they cost ~50 ms at import).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from irtgate.signals.base import WorkBudget
from irtgate.signals.pii.types import Finding, PIIType

_T = TypeVar("_T")


def _each(items: Iterator[_T], budget: WorkBudget | None) -> Iterator[_T]:
    """The candidates a detector may still look at: all of them, or until the request's
    work budget is spent (then the scan is reported truncated)."""
    return items if budget is None else budget.bounded(items)


# Words just before a number that say "this is an identifier, not personal data".
_ID_CONTEXT = re.compile(
    r"(?i)(?:\b(?:order|invoice|ref(?:erence)?|tracking|ticket|case|po|sku|isbn|serial|part|"
    r"item|build|version|ver|release|id|no|confirmation)\b|#|\b(?:order|invoice|tracking|"
    r"account|customer|confirmation|case|ticket|serial|part)\s+(?:number|num|no|id)\b)\W{0,3}$"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|sms|text me|contact|reach)"
)
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssns?|social security|soc\.? sec|taxpayer)\b")
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:version|ver|release|build|v)\.?\s*$")


def _before(text: str, start: int, n: int = 24) -> str:
    return text[max(0, start - n) : start]


def _around(text: str, start: int, end: int, n: int = 40) -> str:
    return text[max(0, start - n) : end + n]


# --- email -------------------------------------------------------------------------------

# Local parts: ASCII plus Latin letters. Wider \w would swallow CJK text written right
# before an address ("邮箱zhang@example.cn") into the span.
_LOCAL = r"A-Za-z0-9\u00C0-\u024F%+_\-"
_EMAIL = re.compile(
    rf"(?<![{_LOCAL}.])[{_LOCAL}](?:[{_LOCAL}.]{{0,62}}[{_LOCAL}])?"
    r"@(?:[^\W_](?:[^\W_]|-){0,62}\.){1,8}[^\W\d_]{2,24}(?![\w-])"
)


def find_emails(text: str, budget: WorkBudget | None = None) -> Iterator[Finding]:
    if "@" not in text:
        return
    for m in _each(_EMAIL.finditer(text), budget):
        local = m.group().split("@", 1)[0]
        if ".." in local:
            continue
        yield Finding(PIIType.EMAIL, m.start(), m.end(), 0.95, "email")


# --- phone numbers -----------------------------------------------------------------------

# Runs of digits with phone punctuation and at least 7 digits; ``phonenumbers`` judges them.
# Scanning only these windows keeps the matcher (pure Python, slow on long text) cheap.
# This and the patterns below start with a character class and assert what precedes it
# afterwards (``\d(?<!x\d)``): sre can then skip ahead on the class, ~3x faster on prose
# than a leading lookbehind.
_PHONE_CANDIDATE = re.compile(r"[+(\d](?<![\w+][+(\d])[\d \t().\-/]{5,60}\d(?!\w)")
# Candidates not worth the matcher's time (it is ~0.1 ms a call): decimals and ISO dates.
_NOT_PHONE = re.compile(r"\d+\.\d+|\d{4}-\d\d-\d\d")


def find_phones(
    text: str, regions: Sequence[str], budget: WorkBudget | None = None
) -> Iterator[Finding]:
    import phonenumbers

    leniency = phonenumbers.Leniency
    for cand in _each(_PHONE_CANDIDATE.finditer(text), budget):
        window = cand.group()
        if sum(c.isdigit() for c in window) < 7 or _NOT_PHONE.fullmatch(window):
            continue
        if window.isdigit() and not _PHONE_CONTEXT.search(_before(text, cand.start(), 40)):
            continue  # a bare digit run is an identifier or a constant unless called a phone
        seen: set[tuple[int, int]] = set()
        for region in regions:
            found = list(phonenumbers.PhoneNumberMatcher(window, region, leniency.VALID))
            if not found:
                continue  # most candidates (dates, amounts, ids): one matcher pass only
            # Numbers whose digit groups do not follow the country's plan ("2024-05-2025")
            # are kept only when a word like "phone" says so.
            strict = {
                (m.start, m.end)
                for m in phonenumbers.PhoneNumberMatcher(window, region, leniency.STRICT_GROUPING)
            }
            for pm in found:
                start, end = cand.start() + pm.start, cand.start() + pm.end
                if (start, end) in seen:
                    continue
                seen.add((start, end))
                conf = _phone_confidence(text, start, end, (pm.start, pm.end) in strict)
                yield Finding(PIIType.PHONE, start, end, conf, "phone")


def _phone_confidence(text: str, start: int, end: int, grouped: bool) -> float:
    raw = text[start:end]
    if _PHONE_CONTEXT.search(_before(text, start, 40)):
        return 0.95
    if _ID_CONTEXT.search(_before(text, start)):
        return 0.3
    if not grouped:
        return 0.4
    if raw.startswith(("+", "00")):
        return 0.85
    if any(c in raw for c in " ()-."):
        return 0.75
    # A bare digit run that happens to be a valid number: as likely an identifier.
    return 0.45


# --- payment cards -----------------------------------------------------------------------

# Not part of a longer digit run (tracking numbers, tables): no digit one separator away.
_CARD = re.compile(r"\d(?<![\d.-]\d)(?<!\d[ -]\d)(?:[ -]?\d){11,18}(?!-?\d|[ .]\d)")

# (prefix ranges, allowed lengths) per brand; a Luhn-valid number outside them is rarely a card.
_CARD_BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...], tuple[int, ...]], ...] = (
    ("visa", ((4, 4),), (13, 16, 19)),
    ("mastercard", ((51, 55), (2221, 2720)), (16,)),
    ("amex", ((34, 34), (37, 37)), (15,)),
    ("discover", ((6011, 6011), (644, 649), (65, 65)), (16, 17, 18, 19)),
    ("jcb", ((3528, 3589),), (16, 17, 18, 19)),
    ("diners", ((300, 305), (36, 36), (38, 39)), (14, 15, 16, 17, 18, 19)),
    ("unionpay", ((62, 62),), (16, 17, 18, 19)),
    ("maestro", ((5018, 5018), (5020, 5020), (5038, 5038), (6304, 6304), (6759, 6763)),
     (12, 13, 14, 15, 16, 17, 18, 19)),
)  # fmt: skip

# Accepted groupings when separators are present (4-4-4-4, Amex 4-6-5, Diners 4-6-4...).
_CARD_GROUPS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 4, 2),
                (4, 4, 4, 3), (4, 4, 4, 4, 2), (4, 4, 4, 4, 1)}  # fmt: skip


def _card_brand(digits: str) -> str | None:
    for brand, ranges, lengths in _CARD_BRANDS:
        if len(digits) not in lengths:
            continue
        for lo, hi in ranges:
            width = len(str(lo))
            if lo <= int(digits[:width]) <= hi:
                return brand
    return None


def find_cards(text: str, budget: WorkBudget | None = None) -> Iterator[Finding]:
    from stdnum import luhn

    for m in _each(_CARD.finditer(text), budget):
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        if not 12 <= len(digits) <= 19 or not luhn.is_valid(digits):
            continue
        seps = set(re.findall(r"\D", raw))
        if len(seps) > 1:
            continue
        if seps and tuple(len(g) for g in re.split(r"\D", raw)) not in _CARD_GROUPS:
            continue
        brand = _card_brand(digits)
        if brand is None:
            continue
        conf = 0.95
        if _ID_CONTEXT.search(_before(text, m.start())):
            conf = 0.5
        yield Finding(PIIType.PAYMENT_CARD, m.start(), m.end(), conf, brand)


# --- IBAN --------------------------------------------------------------------------------

_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}(?![a-z0-9])")


def find_ibans(text: str, budget: WorkBudget | None = None) -> Iterator[Finding]:
    from stdnum import iban

    for m in _each(_IBAN.finditer(text), budget):
        raw = m.group()
        # Positions of the non-space characters, so a valid prefix maps back to a span: the
        # greedy pattern can run on into a following upper-case word ("... 00 IBAN").
        idx = [i for i, c in enumerate(raw) if c != " "]
        compact = "".join(raw[i] for i in idx)
        for n in range(len(compact), 14, -1):
            if iban.is_valid(compact[:n], check_country=False):
                yield Finding(PIIType.IBAN, m.start(), m.start() + idx[n - 1] + 1, 0.97, "iban")
                break


# --- US social security numbers ----------------------------------------------------------

_SSN = re.compile(r"\d(?<![\d-]\d)\d\d([- ])\d\d\1\d{4}(?![\d-])")
_SSN_BARE = re.compile(r"\d(?<![\d-]\d)\d{8}(?![\d-])")


def find_ssns(text: str, budget: WorkBudget | None = None) -> Iterator[Finding]:
    from stdnum.us import ssn

    for m in _each(_SSN.finditer(text), budget):
        if not ssn.is_valid(re.sub(r"\D", "", m.group())):
            continue
        keyword = bool(_SSN_CONTEXT.search(_around(text, m.start(), m.end())))
        if keyword:
            conf = 0.97
        elif _ID_CONTEXT.search(_before(text, m.start())):
            conf = 0.3
        else:
            conf = 0.85 if m.group(1) == "-" else 0.55
        yield Finding(PIIType.US_SSN, m.start(), m.end(), conf, "ssn")
    # An undelimited 9-digit run is an SSN only when the text says so.
    for m in _each(_SSN_BARE.finditer(text), budget):
        if ssn.is_valid(m.group()) and _SSN_CONTEXT.search(_before(text, m.start(), 40)):
            yield Finding(PIIType.US_SSN, m.start(), m.end(), 0.8, "ssn")


# --- IP addresses ------------------------------------------------------------------------

# Loose octets here; ``ipaddress`` rejects 999.1.1.1 and leading zeros.
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?!\w|\.\d)")
# Every IPv6 address has two colons at most four hex digits apart; this literal-first hint
# is ~5x faster to scan for than the full pattern, which then runs only in a window.
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w{1,16})?(?![\w:])")


def find_ips(text: str, budget: WorkBudget | None = None) -> Iterator[Finding]:
    for m in _each(_IPV4.finditer(text), budget):
        addr_s = m.group().split("/", 1)[0]
        try:
            addr = ipaddress.IPv4Address(addr_s)
        except ValueError:
            continue
        if _VERSION_CONTEXT.search(_before(text, m.start(), 12)):
            conf = 0.3
        elif addr.is_unspecified or addr_s.startswith("255."):
            conf = 0.4  # 0.0.0.0 and netmasks are configuration, not someone's address
        elif addr.is_private or addr.is_loopback or addr.is_link_local:
            conf = 0.7
        else:
            conf = 0.9
        yield Finding(PIIType.IP_ADDRESS, m.start(), m.end(), conf, "ipv4")
    seen: set[int] = set()
    for m in _ipv6_candidates(text, budget):
        if m.start() in seen:
            continue
        seen.add(m.start())
        raw = m.group().split("%", 1)[0]
        try:
            addr6 = ipaddress.IPv6Address(raw)
        except ValueError:  # times (12:30:45), MAC addresses, C++ scopes
            continue
        if sum(c not in ":" for c in raw) < 4 and raw != "::1":
            continue  # "a::b" is more likely code than an address
        conf = 0.7 if (addr6.is_private or addr6.is_loopback or addr6.is_link_local) else 0.9
        yield Finding(PIIType.IP_ADDRESS, m.start(), m.end(), conf, "ipv6")


def _ipv6_candidates(text: str, budget: WorkBudget | None) -> Iterator[re.Match[str]]:
    pos = 0
    # Budget checks on the hints: ":1:" repeated yields hints but no address.
    for hint in _each(_IPV6_HINT.finditer(text), budget):
        if hint.start() < pos:
            continue  # inside the address just found
        # An address starts at most 40 characters before any of its colons and is at most
        # 56 long (39 + a zone id); the window leaves room for the lookarounds.
        m = _IPV6.search(text, max(pos, hint.start() - 40), hint.end() + 100)
        if m is not None and m.start() <= hint.start():
            pos = m.end()
            yield m


def import_validators() -> Any:
    """Import the validation libraries now (at factory time), not on the first request."""
    import phonenumbers
    from stdnum import iban, luhn
    from stdnum.us import ssn

    iban.is_valid("DE89370400440532013000")  # loads the country registry once
    return (phonenumbers, luhn, ssn)
