"""The ``language`` signal: ISO 639-1 code and confidence of the last user turn."""

from __future__ import annotations

from typing import Any

import pytest

from signals.base import Resources, SignalContext, registered
from signals.language import LanguageSignal, make_language, supported_languages
from signals.request import ApiKind, LLMRequest, Message
from signals.text import PromptText


def ctx(*turns: tuple[str, str]) -> SignalContext:
    msgs = tuple(Message(role=r, text=PromptText(t)) for r, t in turns)
    return SignalContext(LLMRequest(api=ApiKind.CHAT, model="auto", messages=msgs))


@pytest.fixture(scope="module")
def sig() -> Any:
    sig = make_language({}, Resources())
    assert isinstance(sig, LanguageSignal)
    return sig


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Could you explain how photosynthesis works in plants?", "en"),
        ("请用三句话解释光合作用的过程。", "zh"),  # folded from py3langid's wuu/yue labels
        ("Schreibe bitte ein kurzes Gedicht über den Herbst.", "de"),
        ("¿Cuál es la capital de Australia y cuántos habitantes tiene?", "es"),
        ("Pouvez-vous m'expliquer comment fonctionne la photosynthèse ?", "fr"),
        ("こんにちは、今日はいい天気ですね。", "ja"),
        ("Объясните, пожалуйста, как работает фотосинтез.", "ru"),
        ("1234 + 5678 = ?", "und"),  # no letters
        ("", "und"),
    ],
)
def test_detects_language(sig: Any, text: str, code: str) -> None:
    out = sig.compute(ctx(("user", text)))
    assert out["code"] == code
    if code != "und":
        assert out["confidence"] >= 0.5


def test_reads_the_last_user_turn_only(sig: Any) -> None:
    c = ctx(
        ("system", "Tu es un assistant très utile qui répond toujours poliment."),
        ("user", "Erkläre mir bitte die Relativitätstheorie in einfachen Worten."),
        ("assistant", "Gerne."),
        ("user", "Now summarise that in English in two sentences please."),
    )
    assert sig.compute(c)["code"] == "en"


def test_every_code_is_two_letters() -> None:
    codes = supported_languages()
    assert len(codes) > 90 and all(len(c) == 2 and c.isalpha() for c in codes)
    assert {"en", "zh", "ar", "de", "ja"} <= codes


def test_low_confidence_is_undetermined() -> None:
    strict = make_language({"min_confidence": 0.99}, Resources())
    out: dict[str, Any] = dict(strict.compute(ctx(("user", "ok"))))
    assert out["code"] == "und" and out["confidence"] < 0.99


def test_restricting_languages_sharpens_short_texts() -> None:
    both = make_language({"languages": ["en", "fr"], "min_confidence": 0.0}, Resources())
    assert both.compute(ctx(("user", "Bonjour à tous")))["code"] == "fr"


def test_long_turn_uses_head_and_tail(sig: Any) -> None:
    text = "Das ist ein deutscher Satz. " * 200 + "1 2 3 " * 2000
    assert sig.compute(ctx(("user", text)))["code"] == "de"


def test_fields_and_registration(sig: Any) -> None:
    out = sig.compute(ctx(("user", "hello world, how are you")))
    assert set(out) == set(sig.fields)
    assert isinstance(out["code"], str) and isinstance(out["confidence"], float)
    assert sig.labels["code"] == supported_languages() | {"und"}
    assert registered()["language"][1] is make_language


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"min_confidence": "high"}, "min_confidence"),
        ({"max_chars": 5}, "max_chars"),
        ({"languages": "en"}, "languages"),
        ({"languages": ["en"]}, "languages"),
        ({"languages": ["en", "xx"]}, "xx"),
        ({"detector": "lingua"}, "detector"),
    ],
)
def test_factory_rejects_bad_params(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make_language(params, Resources())


def test_feature_table_is_row_major_and_scores_unchanged() -> None:
    """Rows are gathered per feature: the table is kept row-major (speed), same scores."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from signals.language import _load

    ident = _load(None)
    assert ident.nb_ptc.flags.c_contiguous
    ref = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ref.set_languages(list(ident.nb_classes))
    for text in ("Wie spät ist es heute in Berlin?", "The quick brown fox " * 30, "42 + 17"):
        assert ident.rank(text) == ref.rank(text)
