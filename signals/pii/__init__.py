"""PII detection: the ``pii`` signal and :func:`find_pii` for the redaction plugin.

``find_pii(text) -> list[Finding]`` returns non-overlapping spans sorted by position; each
:class:`Finding` has a ``type`` (:class:`PIIType`), ``start``/``end`` offsets into the text,
a ``confidence`` and a ``kind`` (e.g. ``aws_access_key``), and never the matched text.
``detect_all(text)`` is the same without the 0.5 confidence floor.
"""

from irtgate.signals.pii.scan import (
    PIIScanner,
    detect_all,
    detect_all_within,
    find_pii,
    parse_types,
)
from irtgate.signals.pii.signal import SCRATCH_KEY, PIISignal, make_pii
from irtgate.signals.pii.types import PATTERN_TYPES, Finding, PIIType

__all__ = [
    "PATTERN_TYPES",
    "SCRATCH_KEY",
    "Finding",
    "PIIScanner",
    "PIISignal",
    "PIIType",
    "detect_all",
    "detect_all_within",
    "find_pii",
    "make_pii",
    "parse_types",
]
