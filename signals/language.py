"""The ``language`` signal: ISO 639-1 code and confidence of the last user turn (py3langid).

py3langid also knows some languages by ISO 639-3 codes only. Varieties of a language with a
639-1 code are folded into it (Wu and Cantonese into ``zh``, Egyptian and Moroccan Arabic
into ``ar``, ...) by adding their probabilities; languages without any 639-1 code are
removed from the model, so every answer is a two-letter code. ``und`` (undetermined) is
returned for text with no linguistic content (numbers, symbols) or when the best language's
probability is below ``min_confidence``.

py3langid's model is used as is, but scored by :mod:`irtgate.signals.langid_fast`: its per-byte
Python walk replaced by array operations, with the same probabilities (several times faster;
figures in docs/signals.md), and the folding done with index arrays precomputed per model.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from irtgate.signals.base import Resources, SignalContext, Value, register
from irtgate.signals.langid_fast import FastIdentifier

UNDETERMINED = "und"
# py3langid's ISO 639-3 labels -> the ISO 639-1 macro-language they belong to.
_FOLD = {
    "wuu": "zh", "yue": "zh", "arz": "ar", "ary": "ar", "hbo": "he", "grc": "el",
    "gug": "gn", "uzs": "uz", "sdh": "ku", "kik": "ki", "fuv": "ff",
}  # fmt: skip
DEFAULT_MAX_CHARS = 600  # the turn's head and tail, half each
_NO_LANGUAGE = "zxx"  # py3langid's label for "no linguistic content"
_PARAMS = frozenset({"languages", "min_confidence", "max_chars"})
# A label above this probability makes its code the best one: the labels' probabilities sum
# to 1 give or take float32 rounding (~1e-5), so all other codes together have less.
_SURE = 0.501

_lock = threading.Lock()
_identifiers: dict[tuple[str, ...] | None, FastIdentifier] = {}


def _load(restrict: tuple[str, ...] | None) -> FastIdentifier:
    """One identifier per language restriction, loaded once (it is slow to build) and shared."""
    with _lock:
        fast = _identifiers.get(restrict)
        if fast is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            keep = [
                lab
                for lab in ident.labels
                if (len(lab) == 2 or lab in _FOLD or lab == _NO_LANGUAGE)
                and (restrict is None or _to_iso1(lab) in restrict)
            ]
            ident.set_languages(keep)
            # Every restriction has the same automaton (only the columns differ): share it.
            other = next(iter(_identifiers.values()), None)
            fast = FastIdentifier.from_py3langid(ident, other.dfa if other else None)
            _identifiers[restrict] = fast
        return fast


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

    def __init__(self, ident: FastIdentifier, min_confidence: float, max_chars: int) -> None:
        codes = {UNDETERMINED, *(_to_iso1(lab) for lab in ident.nb_classes)} - {_NO_LANGUAGE}
        self.labels: Mapping[str, frozenset[str]] = {"code": frozenset(codes)}
        self.ident = ident
        self.min_confidence = min_confidence
        self.max_chars = max_chars
        # Folding by index arrays: label k (of ``ident.labels``) adds its probability to
        # code ``self._codes[self._code_of[k]]``; so does column ``ident.label_columns[k]``.
        iso = [UNDETERMINED if lab == _NO_LANGUAGE else _to_iso1(lab) for lab in ident.labels]
        self._codes = tuple(dict.fromkeys(iso))
        self._code_of = np.array([self._codes.index(c) for c in iso], dtype=np.intp)
        columns = ident.label_columns.tolist()
        self._column_code = dict(zip(columns, self._code_of.tolist(), strict=True))
        members: list[list[int]] = [[] for _ in self._codes]
        for column, code in self._column_code.items():
            members[code].append(column)
        self._members = tuple(tuple(m) for m in members)

    def detect(self, text: str) -> tuple[str, float]:
        if len(text) > self.max_chars:
            half = self.max_chars // 2
            text = text[:half] + "\n" + text[-half:]
        if not any(c.isalpha() for c in text):
            return UNDETERMINED, 0.0
        probs = self.ident.probabilities(text)
        # Each code's probability is summed best label first, as the per-label loop over
        # py3langid's rank() did: the same float additions in the same order, so the same
        # confidence to the last bit.
        column = int(probs.argmax())
        if probs[column] > _SURE:
            # Every other code's labels share the remaining < 0.5: this code is the best.
            code = self._column_code[column]
            conf = 0.0
            for p in sorted((float(probs[c]) for c in self._members[code]), reverse=True):
                conf += p
        else:
            code, conf = self._fold(probs)
        if conf < self.min_confidence:
            return UNDETERMINED, conf
        return self._codes[code], conf

    def _fold(self, column_probs: NDArray[np.float32]) -> tuple[int, float]:
        """The best code and its probability, from all labels in py3langid's rank order."""
        probs = column_probs[self.ident.label_columns].astype(np.float64)
        rank = np.argsort(-probs, kind="stable")
        code_of = self._code_of[rank]
        sums = np.zeros(len(self._codes))
        np.add.at(sums, code_of, probs[rank])  # in index order, one addition at a time
        best = sums.max()
        # Among equal sums (a text without features scores all labels alike) the code
        # whose best label ranks first, as max() over the old loop's dict returned.
        return next(c for c in code_of.tolist() if sums[c] == best), float(best)

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
    # 1,000 + 1,000 (99.9%) and ~0.5 ms cheaper per request when py3langid walked every
    # byte in Python (benchmarks/decision_latency.py); the cost still grows with length.
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
