"""PII finding types. A :class:`Finding` holds a location, never the matched characters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PIIType(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    PAYMENT_CARD = "payment_card"
    IBAN = "iban"
    US_SSN = "us_ssn"
    IP_ADDRESS = "ip_address"
    SECRET = "secret"  # API keys, tokens, private keys, passwords
    PERSON = "person"  # only with the optional NER extra


# Types found by pattern + checksum/validation; PERSON needs a model and is opt-in.
PATTERN_TYPES: tuple[PIIType, ...] = tuple(t for t in PIIType if t is not PIIType.PERSON)


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of PII: its type, ``text[start:end]`` span and a confidence in [0, 1].

    ``kind`` refines the type without revealing content (``aws_access_key``, ``jwt``,
    ``ipv6``...). No field carries the matched text, so ``repr``/``str`` are safe to log.
    """

    type: PIIType
    start: int
    end: int
    confidence: float
    kind: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"bad span ({self.start}, {self.end})")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} outside [0, 1]")

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    def __len__(self) -> int:
        return self.end - self.start
