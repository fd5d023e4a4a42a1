"""The PII scanner: runs the detectors, applies a confidence floor, resolves overlaps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial

from irtgate.signals.base import WorkBudget
from irtgate.signals.pii import detectors, names, secrets
from irtgate.signals.pii.types import PATTERN_TYPES, Finding, PIIType
from irtgate.signals.text import PromptText

# A detector: text and an optional work budget to stop at -> findings.
Detector = Callable[[str, WorkBudget | None], Iterator[Finding]]
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US",)


def parse_types(values: Iterable[str]) -> frozenset[PIIType]:
    """PII type names to types; raises ValueError naming the unknown ones."""
    out: set[PIIType] = set()
    bad: list[str] = []
    for v in values:
        try:
            out.add(PIIType(str(v)))
        except ValueError:
            bad.append(repr(v))
    if bad:
        known = ", ".join(t.value for t in PIIType)
        raise ValueError(f"unknown PII type(s) {', '.join(bad)}; known: {known}")
    return frozenset(out)


class PIIScanner:
    """A configured set of detectors. Build once (validates and loads libraries), scan often."""

    def __init__(
        self,
        types: Iterable[PIIType | str] | None = None,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
    ) -> None:
        self.types = parse_types(types) if types is not None else frozenset(PATTERN_TYPES)
        if not self.types:
            raise ValueError("types: at least one PII type is needed")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence: {min_confidence} is outside [0, 1]")
        self.min_confidence = min_confidence
        self.phone_regions = _check_regions(phone_regions)
        detectors.import_validators()
        if PIIType.PERSON in self.types:
            names.load_ner()
        table: dict[PIIType, Detector] = {
            PIIType.EMAIL: detectors.find_emails,
            PIIType.PHONE: partial(_phones, regions=self.phone_regions),
            PIIType.PAYMENT_CARD: detectors.find_cards,
            PIIType.IBAN: detectors.find_ibans,
            PIIType.US_SSN: detectors.find_ssns,
            PIIType.IP_ADDRESS: detectors.find_ips,
            PIIType.SECRET: secrets.find_secrets,
            PIIType.PERSON: names.find_persons,
        }
        self._detectors = [table[t] for t in PIIType if t in self.types]

    def scan(self, text: str | PromptText) -> list[Finding]:
        return self.scan_within(text, None)[0]

    def scan_within(
        self, text: str | PromptText, budget: WorkBudget | None
    ) -> tuple[list[Finding], bool]:
        """Findings, and whether the scan was complete: with a ``budget``, detectors stop
        looking once it is spent, and what they found so far is returned."""
        raw = text.reveal() if isinstance(text, PromptText) else text
        if not isinstance(raw, str):
            raise TypeError(f"find_pii needs str or PromptText, not {type(raw).__name__}")
        if not raw:
            return [], True
        found: list[Finding] = []
        for det in self._detectors:
            if budget is not None and budget.spent():
                return _resolve_overlaps(found), False  # the detectors left did not look
            found.extend(f for f in det(raw, budget) if f.confidence >= self.min_confidence)
        complete = budget is None or not budget.spent()
        return _resolve_overlaps(found), complete


def _phones(text: str, budget: WorkBudget | None, regions: Sequence[str]) -> Iterator[Finding]:
    return detectors.find_phones(text, regions, budget)


def _check_regions(regions: Sequence[str]) -> tuple[str, ...]:
    import phonenumbers

    if isinstance(regions, str) or not regions:
        raise ValueError("phone_regions: expected a non-empty list of region codes like ['US']")
    supported = phonenumbers.SUPPORTED_REGIONS
    bad = [r for r in regions if not isinstance(r, str) or r.upper() not in supported]
    if bad:
        raise ValueError(f"phone_regions: unknown region code(s) {bad}; use ISO 3166 like 'US'")
    return tuple(r.upper() for r in regions)


def _resolve_overlaps(found: list[Finding]) -> list[Finding]:
    """Keep the most confident (then longest) finding where spans overlap, e.g. a card
    number that ``phonenumbers`` also accepts as a phone number.

    Linear in the text: taken spans are marked in a byte map, so each candidate costs its
    own length (one detector's findings never overlap each other, so the lengths add up to
    at most a few times the text's), not a pass over everything kept so far.
    """
    if len(found) < 2:
        return found

    # Pattern types win ties against NER names: a validated checksum beats a model's guess.
    def rank(f: Finding) -> tuple[float, bool, int, int]:
        return (-f.confidence, f.type is PIIType.PERSON, -(f.end - f.start), f.start)

    taken = bytearray(max(f.end for f in found))
    kept: list[Finding] = []
    for f in sorted(found, key=rank):
        if taken.find(1, f.start, f.end) == -1:
            taken[f.start : f.end] = b"\x01" * (f.end - f.start)
            kept.append(f)
    kept.sort(key=lambda f: (f.start, f.end))
    return kept


_default: PIIScanner | None = None


def find_pii(text: str | PromptText) -> list[Finding]:
    """All PII in ``text`` with the default settings (every pattern type, confidence >= 0.5,
    US national phone formats plus any number written with a ``+`` country code).

    Findings are sorted by start and never overlap; ``text[f.start:f.end]`` is the span to
    mask. The result carries positions only, never the matched characters. Use
    :class:`PIIScanner` for other types, regions or a different confidence floor.
    """
    global _default
    if _default is None:
        _default = PIIScanner()
    return _default.scan(text)


_everything: PIIScanner | None = None


def detect_all(text: str | PromptText) -> list[Finding]:
    """Like :func:`find_pii` but with no confidence floor, for callers that apply their own
    (the ``pii`` plugin filters by its ``min_confidence`` and ``types``). Pattern types
    only: names need ``PIIScanner([..., "person"])`` and the NER extra."""
    return _all_types().scan(text)


def detect_all_within(text: str | PromptText, budget: WorkBudget) -> tuple[list[Finding], bool]:
    """:func:`detect_all` that stops when ``budget`` is spent; also says if it was complete."""
    return _all_types().scan_within(text, budget)


def _all_types() -> PIIScanner:
    global _everything
    if _everything is None:
        _everything = PIIScanner(min_confidence=0.0)
    return _everything


def import_validators() -> None:
    """Build the shared scanner now (validators loaded), not on the first request."""
    _all_types()
