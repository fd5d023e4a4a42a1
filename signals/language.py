"""The ``language`` signal: ISO 639-1 code and confidence of the last user turn (py3langid).

py3langid also knows some languages by ISO 639-3 codes only. Varieties of a language with a
639-1 code are folded into it (Wu and Cantonese into ``zh``, Egyptian and Moroccan Arabic
into ``ar``, ...) by adding their probabilities; languages without any 639-1 code are
removed from the model, so every answer is a two-letter code. ``und`` (undetermined) is
returned for text with no linguistic content (numbers, symbols) or when the best language's
probability is below ``min_confidence``.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from signals.base import Resources, SignalContext, Value, register

UNDETERMINED = "und"
# py3langid's ISO 639-3 labels -> the ISO 639-1 macro-language they belong to.
_FOLD = {
    "wuu": "zh", "yue": "zh", "arz": "ar", "ary": "ar", "hbo": "he", "grc": "el",
    "gug": "gn", "uzs": "uz", "sdh": "ku", "kik": "ki", "fuv": "ff",
}  # fmt: skip
DEFAULT_MAX_CHARS = 600  # the turn's head and tail, half each
_NO_LANGUAGE = "zxx"  # py3langid's label for "no linguistic content"
_PARAMS = frozenset({"languages", "min_confidence", "max_chars"})

_lock = threading.Lock()
_identifiers: dict[tuple[str, ...] | None, Any] = {}


def _load(restrict: tuple[str, ...] | None) -> Any:
    """One identifier per language restriction, loaded once (~0.5 s) and shared."""
    with _lock:
        ident = _identifiers.get(restrict)
        if ident is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            keep = [
                lab
                for lab in ident.labels
                if (len(lab) == 2 or lab in _FOLD or lab == _NO_LANGUAGE)
                and (restrict is None or _to_iso1(lab) in restrict)
            ]
            ident.set_languages(keep)
            # The restricted table comes out column-major, so each feature's row (what a
            # text's features gather) spans 128 cache lines; row-major it spans four. Same
            # values and the same gathered array, hence the same scores (~0.3 ms a call
            # once other signals have evicted the caches).
            ident.nb_ptc = np.ascontiguousarray(ident.nb_ptc)
            # The byte walk reads a row offset and an output per state: from flat arrays
            # rather than lists of int objects, that is fewer cache lines per byte.
            ident._rowbase = array("q", ident._rowbase)
            ident.tk_output = array("q", ident.tk_output)
            _identifiers[restrict] = ident
        return ident


def _to_iso1(label: str) -> str:
    return _FOLD.get(label, label)


def supported_languages() -> frozenset[str]:
    """The ISO 639-1 codes the identifier can return."""
    return frozenset(_to_iso1(lab) for lab in _load(None).labels if lab != _NO_LANGUAGE)


class LanguageSignal:
    name: ClassVar[str] = "language"
    fields: ClassVar[Mapping[str, type]] = {"code": str, "confidence": float}
    # For policy validation: the values a field can take.
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = {"confidence": (0.0, 1.0)}

    def __init__(self, ident: Any, min_confidence: float, max_chars: int) -> None:
        codes = {UNDETERMINED, *(_to_iso1(lab) for lab in ident.nb_classes)} - {_NO_LANGUAGE}
        self.labels: Mapping[str, frozenset[str]] = {"code": frozenset(codes)}
        self.ident = ident
        self.min_confidence = min_confidence
        self.max_chars = max_chars

    def detect(self, text: str) -> tuple[str, float]:
        if len(text) > self.max_chars:
            half = self.max_chars // 2
            text = text[:half] + "\n" + text[-half:]
        if not any(c.isalpha() for c in text):
            return UNDETERMINED, 0.0
        probs: dict[str, float] = {}
        for label, p in self.ident.rank(text):
            code = UNDETERMINED if label == _NO_LANGUAGE else _to_iso1(label)
            probs[code] = probs.get(code, 0.0) + float(p)
        code, conf = max(probs.items(), key=lambda kv: kv[1])
        if conf < self.min_confidence:
            return UNDETERMINED, conf
        return code, conf

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        code, conf = self.detect(ctx.request.last_user_text.reveal())
        return {"code": code, "confidence": round(conf, 4)}


@register("language", LanguageSignal)
def make_language(params: Mapping[str, Any], resources: Resources) -> LanguageSignal:
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise ValueError(f"language: unknown parameter(s) {unknown}; known: {sorted(_PARAMS)}")
    conf = params.get("min_confidence", 0.3)
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
        raise ValueError(f"min_confidence: expected a number in [0, 1], got {conf!r}")
    # 300 + 300 characters: on 1,348 routerdc prompts longer than that, as accurate as
    # 1,000 + 1,000 (99.9%) and ~0.5 ms cheaper per request, py3langid walking every byte
    # in Python (benchmarks/decision_latency.py).
    max_chars = params.get("max_chars", DEFAULT_MAX_CHARS)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 20:
        raise ValueError(f"max_chars: expected an integer >= 20, got {max_chars!r}")
    langs = params.get("languages")
    restrict: tuple[str, ...] | None = None
    if langs is not None:
        if isinstance(langs, str) or not isinstance(langs, list) or len(langs) < 2:
            raise ValueError("languages: expected a list of at least two ISO 639-1 codes")
        bad = sorted(str(x) for x in set(langs) - supported_languages())
        if bad:
            raise ValueError(f"languages: unsupported code(s) {bad}")
        restrict = tuple(sorted(set(langs)))
    return LanguageSignal(_load(restrict), float(conf), max_chars)
