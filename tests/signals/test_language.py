"""The ``language`` signal: ISO 639-1 code and confidence of the last user turn."""

from __future__ import annotations

import gzip
import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from irtgate.signals.base import Resources, SignalContext, registered
from irtgate.signals.language import LanguageSignal, make_language, supported_languages
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText


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


# --- Equality with py3langid ------------------------------------------------------------
# The signal scores with irtgate.signals.langid_fast instead of py3langid's per-byte walk. These
# tests hold it to py3langid's own results: feature counts exactly, probabilities to 1e-6
# (in practice bit for bit) and the signal's (code, confidence) against the old detect().

_SENTENCES = [
    "Could you explain how photosynthesis works in plants?",
    "The committee will meet on Thursday to discuss the budget for next year.",
    "Schreibe bitte ein kurzes Gedicht über den Herbst und die fallenden Blätter.",
    "¿Cuál es la capital de Australia y cuántos habitantes tiene?",
    "Pouvez-vous m'expliquer comment fonctionne la photosynthèse ?",
    "Il governo ha approvato la nuova legge sull'energia rinnovabile.",
    "O Brasil é o maior país da América do Sul em território e população.",
    "De kat zit op de mat en kijkt naar de vogels in de tuin.",
    "Объясните, пожалуйста, как работает фотосинтез.",
    "请用三句话解释光合作用的过程。",
    "這是一個關於台灣歷史的問題，請詳細回答。",
    "こんにちは、今日はいい天気ですね。散歩に行きましょう。",
    "한국어로 간단한 자기소개를 써 주세요.",
    "ما هي عاصمة المملكة العربية السعودية؟",
    "מה השעה עכשיו בירושלים?",
    "Η Ακρόπολη βρίσκεται στην Αθήνα.",
    "भारत की राजधानी नई दिल्ली है।",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "Türkiye'nin başkenti Ankara'dır ve en kalabalık şehri İstanbul'dur.",
    "Warszawa jest stolicą Polski i największym miastem kraju.",
    "Tiếng Việt là ngôn ngữ chính thức của Việt Nam.",
    "Kiswahili ni lugha ya Afrika Mashariki.",
    "def f(x):\n    return [i ** 2 for i in range(x) if i % 3 == 0]",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name;",
    "Solve for x: 3x^2 - 12x + 9 = 0, then compute $\\int_0^1 x^2\\,dx$.",
]
_ODD = [
    "", "a", "é", "ok", "Hi", "42", "1234 + 5678 = ?", "!!! ??? ...", "$$$ %%% ^^^",
    "😀", "😀😀😀 🎉🎉", "I ❤️ NY 🗽", "THIS IS ALL CAPS TEXT", "ВСЕ ЗАГЛАВНЫЕ БУКВЫ",
    "e\u0301cole\u0300", "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "zero\u200bwidth\u200djoiner",
    "\u202eright-to-left override\u202c", "tabs\tand\nnew\r\nlines",
    "\ud800", "lone \udfff surrogate in text", "\ud83d\ude00 split pair", "a\ud800b\udc00c",
    "\x00\x01 control \x7f chars", "ǅǈǋ titlecase", "ß ẞ ﬁ ligatures",
]  # fmt: skip


def _texts() -> list[str]:
    """A few hundred varied texts: languages, scripts, mixes, symbols, lengths."""
    rnd = random.Random(20240611)
    texts = list(_SENTENCES) + list(_ODD)
    for _ in range(150):  # mixes of one to four sentences, some cut mid-character
        parts = rnd.sample(_SENTENCES, rnd.randint(1, 4))
        text = " ".join(parts)
        if rnd.random() < 0.3:
            text = text[rnd.randrange(len(text)) :]
        if rnd.random() < 0.15:
            text = text.upper()
        texts.append(text)
    for _ in range(40):  # longer than max_chars, head and tail in different languages
        a, b = rnd.sample(_SENTENCES, 2)
        texts.append(a * rnd.randint(5, 30) + " 123 " + b * rnd.randint(5, 30))
    for _ in range(40):  # random code points (letters, symbols, emoji, surrogates)
        lo, hi = rnd.choice([(0x20, 0x250), (0x370, 0x3000), (0x3000, 0xA000), (0xD800, 0xE000)])
        size = rnd.randint(1, 120)
        text = "".join(chr(rnd.randrange(lo, hi)) for _ in range(size))
        texts.append(text + ("" if rnd.random() < 0.5 else " hello"))
    for _ in range(20):  # emoji and digits around words
        emoji = "".join(chr(rnd.randrange(0x1F300, 0x1FAFF)) for _ in range(rnd.randint(1, 8)))
        texts.append(f"{emoji} {rnd.choice(_SENTENCES)} {rnd.randrange(10**9)} {emoji}")
    return texts


def _reference(restrict: list[str] | None = None) -> Any:
    """py3langid itself, over the same languages as the signal's identifier."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from irtgate.signals.language import _load

    fast = _load(None if restrict is None else tuple(sorted(restrict)))
    ref = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ref.set_languages(list(fast.nb_classes))
    assert ref.nb_classes == fast.nb_classes
    return ref


def _old_detect(ref: Any, text: str, min_confidence: float, max_chars: int) -> tuple[str, float]:
    """detect() before signals/langid_fast.py: py3langid's rank, folded in Python."""
    from irtgate.signals.language import _NO_LANGUAGE, _to_iso1

    if len(text) > max_chars:
        half = max_chars // 2
        text = text[:half] + "\n" + text[-half:]
    if not any(c.isalpha() for c in text):
        return "und", 0.0
    probs: dict[str, float] = {}
    for label, p in ref.rank(text):
        code = "und" if label == _NO_LANGUAGE else _to_iso1(label)
        probs[code] = probs.get(code, 0.0) + float(p)
    code, conf = max(probs.items(), key=lambda kv: kv[1])
    if conf < min_confidence:
        return "und", conf
    return code, conf


def _assert_same(
    sig: Any, ref: Any, texts: list[str], min_confidence: float = 0.3, max_chars: int = 600
) -> None:
    from irtgate.signals.langid_fast import encode

    fast = sig.ident
    for text in texts:
        got, want = sig.detect(text), _old_detect(ref, text, min_confidence, max_chars)
        assert got[0] == want[0], text
        assert got[1] == pytest.approx(want[1], abs=1e-6), text
        # The whole distribution, on the untruncated text too.
        probs = fast.probabilities(text)
        assert probs.dtype == np.float32
        np.testing.assert_allclose(probs, ref._decide(text), rtol=0, atol=1e-6, err_msg=text)
        np.testing.assert_allclose(
            [p for _, p in fast.rank(text)], [p for _, p in ref.rank(text)], rtol=0, atol=1e-6
        )
        assert fast.rank(text)[0][0] == ref.rank(text)[0][0] or len(encode(text)) == 0


@pytest.fixture(scope="module")
def reference() -> Any:
    return _reference()


def test_feature_counts_equal_py3langids_walk(sig: Any, reference: Any) -> None:
    from py3langid.langid import visit_counts

    from irtgate.signals.langid_fast import encode

    for text in _texts():
        data = encode(text)
        want = visit_counts(reference.tk_nextmove, reference._rowbase, reference.tk_output, data)
        feats, counts = sig.ident.dfa.feature_counts(data)
        if want is None:
            assert len(feats) == 0, text
        else:  # the same features, in the same (first-occurrence) order, the same counts
            assert feats.tolist() == list(want) and counts.tolist() == list(want.values()), text


def test_same_results_as_py3langid(sig: Any, reference: Any) -> None:
    texts = _texts()
    assert len(texts) > 300
    _assert_same(sig, reference, texts)


@pytest.mark.parametrize("langs", [["en", "fr", "de"], ["zh", "ja", "ko"], ["ar", "he", "fa"]])
def test_same_results_as_py3langid_restricted(langs: list[str]) -> None:
    sig = make_language({"languages": langs, "min_confidence": 0.5}, Resources())
    texts = _texts()[::2]
    _assert_same(sig, _reference(langs), texts, min_confidence=0.5)


@pytest.mark.parametrize(("max_chars", "min_confidence"), [(40, 0.9), (600, 0.0)])
def test_same_results_with_other_cut_and_threshold(
    reference: Any, max_chars: int, min_confidence: float
) -> None:
    # min_confidence 0: the best code is returned even for texts without any feature
    # ("ok": every label alike), where only the order of ties decides.
    params = {"max_chars": max_chars, "min_confidence": min_confidence}
    sig = make_language(params, Resources())
    texts = ["ok", "a", "Hi", *_texts()[::3]]
    _assert_same(sig, reference, texts, min_confidence=min_confidence, max_chars=max_chars)


@pytest.mark.shared_data
def test_same_results_on_real_prompts(sig: Any, reference: Any, shared_data: Path) -> None:
    with gzip.open(shared_data / "routerdc-7models.jsonl.gz", "rt") as f:
        prompts = [json.loads(line)["prompt"] for line in f][::41]  # every benchmark, en and zh
    assert len(prompts) >= 500
    _assert_same(sig, reference, prompts)


def test_automaton_state_depends_on_the_last_depth_bytes_only(reference: Any) -> None:
    """What the lockstep walk relies on, checked on the whole table: py3langid's DFA is the
    Aho-Corasick automaton of a trie no deeper than ``depth``. Then the state after any
    bytes is the state after their last ``depth`` bytes, walked from state 0."""
    from irtgate.signals.langid_fast import state_depths

    ident = reference
    nextmove = np.frombuffer(ident.tk_nextmove, dtype=f"u{ident.tk_nextmove.itemsize}")
    row = np.frombuffer(ident.tk_row, dtype=f"u{ident.tk_row.itemsize}").astype(np.intp)
    table = nextmove.reshape(-1, 256)
    depth = state_depths(nextmove, row)
    n = len(row)
    fail = np.zeros(n, dtype=np.intp)  # the state of its string without the first byte
    parents = np.zeros(n, dtype=np.intp)
    # State 0: a byte starts a trie string or stays at the root.
    moves = table[row[0]].astype(np.intp)
    assert ((depth[moves] == 1) | (moves == 0)).all()
    np.add.at(parents, moves[depth[moves] == 1], 1)
    for level in range(1, int(depth.max()) + 1):
        states = np.flatnonzero(depth == level)
        for chunk in np.array_split(states, max(1, len(states) // 4096)):
            moves = table[row[chunk]].astype(np.intp)  # (state, byte)
            child = depth[moves] == level + 1
            s, b = np.nonzero(child)
            np.add.at(parents, moves[s, b], 1)
            fail[moves[s, b]] = table[row[fail[chunk[s]]], b]
            # Anything else is where the longest proper suffix goes (fail states are
            # shallower, so their rows were checked at an earlier level).
            fallback = table[row[fail[chunk]]].astype(np.intp)
            assert (moves[~child] == fallback[~child]).all()
    assert (parents[1:] == 1).all() and parents[0] == 0  # a trie: one parent each
    # And directly: from arbitrary states, the last `depth` bytes decide.
    rnd = np.random.default_rng(0)
    d = int(depth.max())
    starts = rnd.integers(0, n, 20_000)
    windows = rnd.integers(0, 256, (20_000, d))
    words = np.frombuffer(" ".join(_SENTENCES).encode(), dtype=np.uint8)
    cut = rnd.integers(0, len(words) - d, 10_000)
    windows[:10_000] = words[cut[:, None] + np.arange(d)]
    a, z = starts, np.zeros_like(starts)
    for k in range(d):
        a, z = table[row[a], windows[:, k]], table[row[z], windows[:, k]]
    assert (a == z).all()


def test_identifiers_are_shared_read_only_and_thread_safe(sig: Any, reference: Any) -> None:
    from irtgate.signals.language import _load

    fast = _load(None)
    assert sig.ident is fast
    assert _load(("en", "fr")).dfa is fast.dfa  # one automaton for every restriction
    assert fast.nb_ptc.flags.c_contiguous and not fast.nb_ptc.flags.writeable
    texts = _texts()[:120]
    want = [sig.detect(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(sig.detect, texts)) == want
