"""Encoders: the token window, both shipped encoders, loading and its errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irtgate.signals.encoders.base import CountingEncoder, Encoder, EncoderError
from irtgate.signals.encoders.load import load_encoder
from irtgate.signals.encoders.minilm import MiniLMEncoder
from irtgate.signals.encoders.static import StaticEncoder
from irtgate.signals.encoders.window import TokenWindow

REPO = Path(__file__).resolve().parents[2]

# Five solved examples shared by every prompt, then the question: the routerbench-arc layout.
FEW_SHOT = "".join(
    f"Question: {q}\nA) {a}\nB) {b}\nC) {c}\nD) {d}\nAnswer:\n{ans}\n\n"
    for q, a, b, c, d, ans in [
        ("Which gas do plants absorb?", "oxygen", "carbon dioxide", "helium", "neon", "B"),
        ("What is frozen water called?", "steam", "vapour", "ice", "dew", "C"),
        ("Which organ pumps blood?", "heart", "lung", "liver", "skin", "A"),
        ("What pulls objects to Earth?", "magnetism", "friction", "light", "gravity", "D"),
        ("What do bees make?", "silk", "honey", "wax paper", "milk", "B"),
    ]
)
# As long as routerbench-arc's questions (about 85 tokens with their options).
QUESTIONS = [
    "A geologist studies seismic waves travelling through the planet and notices that S-waves "
    "stop at a certain depth. Which layer of the Earth is made mostly of liquid iron and "
    "nickel?\nA) inner core\nB) outer core\nC) lower mantle\nD) oceanic crust",
    "A student mixes baking soda and vinegar in a sealed plastic bag on a kitchen scale. "
    "Which observation best shows that a chemical change has taken place?\nA) the bag "
    "inflates with a gas\nB) the mass stays the same\nC) the powder dissolves\nD) the "
    "liquid sloshes",
    "Cactus plants grow in hot deserts that receive very little rainfall during the year. "
    "Which adaptation most helps a cactus survive in this environment?\nA) broad thin leaves"
    "\nB) a thick waxy stem that stores water\nC) bright flowers\nD) shallow roots only",
    "Over a month the Moon seems to change shape when seen from the Earth at night. What "
    "causes these phases of the Moon?\nA) the shadow of the Earth\nB) clouds covering "
    "the Moon\nC) the changing part of the sunlit half that faces the Earth\nD) the Moon "
    "spinning on its axis",
]
SUFFIX = (
    '\nPrint only a single choice from "A" or "B" or "C" or "D" without explanation.\nAnswer:\n'
)


@pytest.fixture(scope="module", params=["static", "minilm"])
def encoder(request: pytest.FixtureRequest) -> Encoder:
    return load_encoder(request.param)


# -- the window ---------------------------------------------------------------------------


def test_window_keeps_short_sequences_whole() -> None:
    w = TokenWindow(max_tokens=5, head=2)
    assert w.cut([1, 2, 3, 4, 5]) == ([1, 2, 3, 4, 5], False)
    assert w.cut([]) == ([], False)


def test_window_keeps_head_and_tail_of_long_sequences() -> None:
    w = TokenWindow(max_tokens=5, head=2)
    assert w.cut(list(range(10))) == ([0, 1, 7, 8, 9], True)
    assert TokenWindow(max_tokens=3, head=0).cut(list(range(10))) == ([7, 8, 9], True)
    assert TokenWindow(max_tokens=3, head=3).cut(list(range(10))) == ([0, 1, 2], True)


@pytest.mark.parametrize(("max_tokens", "head"), [(0, 0), (4, 5), (4, -1)])
def test_window_rejects_bad_sizes(max_tokens: int, head: int) -> None:
    with pytest.raises(ValueError, match="window"):
        TokenWindow(max_tokens=max_tokens, head=head)


def test_char_clip_only_touches_huge_text_and_keeps_both_ends() -> None:
    w = TokenWindow(max_tokens=10, head=2)
    assert w.clip_chars("short text") == ("short text", False)
    text = "START " + "x" * 100_000 + " END"
    clipped, cut = w.clip_chars(text)
    assert cut and clipped.startswith("START") and clipped.endswith(" END")
    assert len(clipped) < 1_000


VOCAB = [
    *("the", "of", "and", "question", "answer", "café", "naïve", "Zürich", "résumé"),
    *("東京", "北京大学", "こんにちは", "🚀", "x=3.14,", "(a+b)^2", "don't", "e-mail:"),
    *("foo@bar.com", "https://example.com/a?b=c", "#tag", "@user", "12345", "Привет", "мир"),
    *("antidisestablishmentarianism", "pneumonoultramicroscopic"),
    "e\u0301",  # a combining accent
    "tab\tsep",
    "line\nbreak",
    "x" * 150,  # longer than WordPiece's 100 characters: [UNK]
]


def random_text(rng: np.random.Generator, n_words: int) -> str:
    seps = [" ", " ", " ", "\n", "  ", "\t", "", ", ", ". "]
    return "".join(str(rng.choice(VOCAB)) + str(rng.choice(seps)) for _ in range(n_words))


def test_piecewise_tokenization_equals_windowing_the_whole_text(encoder: Encoder) -> None:
    from irtgate.signals.encoders.tokenizer import window_ids

    tok = encoder._tokenizer  # type: ignore[attr-defined]
    drop = getattr(encoder, "_unk", None)
    rng = np.random.default_rng(7)
    texts = [random_text(rng, int(n)) for n in rng.integers(0, 400, size=200)]
    texts += ["word " * 180, "東京" * 400, "x" * 900, "a " * 450 + "tail words here"]
    for window in (TokenWindow(128, 16), TokenWindow(126, 0), TokenWindow(40, 40)):
        got, cuts = window_ids(tok, texts, window, drop=drop)
        piecewise = 0
        for text, ids, cut in zip(texts, got, cuts, strict=True):
            if len(text) > window.max_tokens * 24:
                continue  # the character clip for huge texts applies (tested above)
            piecewise += len(text) > window.max_tokens * 16  # long enough to be cut in pieces
            full = [t for t in tok.encode(text, add_special_tokens=False).ids if t != drop]
            assert (ids, cut) == window.cut(full)
        assert piecewise >= 5


def test_non_str_items_are_refused(encoder: Encoder) -> None:
    with pytest.raises(TypeError, match="text 1 is NoneType"):
        encoder.encode(["fine", None])  # type: ignore[list-item]


# -- both encoders ------------------------------------------------------------------------


def test_encoders_satisfy_the_protocols(encoder: Encoder) -> None:
    assert isinstance(encoder, Encoder) and isinstance(encoder, CountingEncoder)
    assert encoder.name in ("static", "minilm")
    assert encoder.dim == {"static": 256, "minilm": 384}[encoder.name]


def test_shapes_dtype_and_unit_rows(encoder: Encoder) -> None:
    texts = ["What is the boiling point of water?", "naïve café — 東京 🚀", "a"]
    out = encoder.encode(texts)
    assert out.shape == (3, encoder.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_empty_text(encoder: Encoder) -> None:
    row = encoder.encode([""])[0]
    assert np.isfinite(row).all()
    # static has no tokens to average (zero row); MiniLM still sees [CLS] [SEP].
    expected = 0.0 if encoder.name == "static" else 1.0
    assert np.linalg.norm(row) == pytest.approx(expected, abs=1e-5)


def test_a_single_str_is_refused(encoder: Encoder) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        encoder.encode("not a list")


def test_deterministic_and_batch_independent(encoder: Encoder) -> None:
    texts = ["the cat sat on the mat", "quantum chromodynamics", "x " * 300, ""]
    a = encoder.encode(texts)
    b = encoder.encode(texts)
    np.testing.assert_array_equal(a, b)
    # Padding in a mixed-length batch must not change a row.
    # A text's vector must not depend on the rest of the call, or corpus (training) vectors
    # would differ from serving vectors.
    singles = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_array_equal(a, singles)


def test_minilm_batched_mode_stays_close() -> None:
    texts = ["the cat sat on the mat", "quantum chromodynamics", "x " * 300, "", "日本語"]
    plain = load_encoder("minilm")
    assert isinstance(plain, MiniLMEncoder)
    batched = MiniLMEncoder(plain.info.path, batched=True)
    cos = np.sum(plain.encode(texts) * batched.encode(texts), axis=1)
    assert cos.min() > 0.98


def test_meaning_drives_similarity(encoder: Encoder) -> None:
    a, b, c = encoder.encode(
        [
            "How do I reverse a list in Python?",
            "What is the Python way to reverse the order of a list?",
            "Recommend a good recipe for banana bread.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_truncations_are_counted(encoder: Encoder) -> None:
    window: TokenWindow = encoder.window  # type: ignore[attr-defined]
    counting = encoder
    assert isinstance(counting, CountingEncoder)
    before = encoder.truncations
    long_text = "word " * (window.max_tokens + 50)
    _, cuts = counting.encode_counted(["short", long_text, "also short", long_text])
    assert cuts == [False, True, False, True]
    assert encoder.truncations == before + 2


def test_window_sees_head_and_tail_not_the_middle(encoder: Encoder) -> None:
    window: TokenWindow = encoder.window  # type: ignore[attr-defined]
    middle = " ".join(f"filler{i}" for i in range(window.max_tokens * 2))
    base = "Instructions: answer briefly. " + middle + " Question: why is the sky blue?"
    mid = f"filler{window.max_tokens} "
    assert base.count(mid) == 1
    other_middle = base.replace(mid, "zebra ")
    other_tail = base.replace("why is the sky blue?", "how do volcanoes form?")
    other_head = base.replace("Instructions: answer briefly.", "Translate into Klingon now.")
    e = encoder.encode([base, other_middle, other_tail, other_head])
    np.testing.assert_array_equal(e[0], e[1])  # the middle is not seen
    # Head and tail are seen (a few tokens of the 64-128 kept move the mean only a little).
    assert float(np.abs(e[0] - e[2]).max()) > 1e-3
    assert float(np.abs(e[0] - e[3]).max()) > 1e-3


def test_shared_few_shot_prefix_does_not_swamp_the_question(encoder: Encoder) -> None:
    prompts = [FEW_SHOT + q + SUFFIX for q in QUESTIONS]
    emb = encoder.encode(prompts)
    alone = encoder.encode([q + SUFFIX for q in QUESTIONS])
    window = encoder.window  # type: ignore[attr-defined]
    try:
        encoder.window = TokenWindow(max_tokens=100_000, head=0)  # type: ignore[attr-defined]
        whole = encoder.encode(prompts)
    finally:
        encoder.window = window  # type: ignore[attr-defined]
    off = ~np.eye(len(QUESTIONS), dtype=bool)
    # Each prompt's embedding identifies its own question...
    assert (np.argmax(emb @ alone.T, axis=1) == np.arange(len(QUESTIONS))).all()
    # ...and for static mean pooling, where every token weighs the same, the window
    # separates the prompts more than pooling them whole would. (MiniLM's attention already
    # down-weights the repeated examples; its window exists for speed.)
    if encoder.name == "static":
        assert (emb @ emb.T)[off].mean() < (whole @ whole.T)[off].mean() - 0.05


def test_arc_prompts_differ_by_question(encoder: Encoder, shared_data: Path) -> None:
    import gzip

    with gzip.open(shared_data / "routerbench-arc.jsonl.gz", "rt") as f:
        prompts = [json.loads(line)["prompt"] for _, line in zip(range(40), f, strict=False)]
    emb = encoder.encode(prompts)
    off = (emb @ emb.T)[~np.eye(len(prompts), dtype=bool)]
    # Embedding the whole prompt puts these around 0.97 (static) and 0.8 (MiniLM); MiniLM's
    # 64-token window measured 0.624 here (0.523 with the earlier 128 tokens).
    assert float(off.mean()) < 0.75


# -- loading ------------------------------------------------------------------------------


def test_load_returns_the_concrete_encoders() -> None:
    assert isinstance(load_encoder("static"), StaticEncoder)
    assert isinstance(load_encoder("minilm"), MiniLMEncoder)


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(EncoderError, match="unknown encoder 'bert'"):
        load_encoder("bert")


def test_missing_or_wrong_artifact_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="not an encoder artifact"):
        load_encoder("static", tmp_path)
    shipped = REPO / "signals" / "artifacts" / "encoders"
    with pytest.raises(EncoderError, match="holds encoder 'static', not 'minilm'"):
        load_encoder("minilm", shipped / "static")
    broken = tmp_path / "broken"
    shutil.copytree(shipped / "static", broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(EncoderError, match=r"model\.safetensors is missing"):
        load_encoder("static", broken)
    (broken / "irtgate.json").write_text("{not json")
    with pytest.raises(EncoderError, match="invalid encoder metadata"):
        load_encoder("static", broken)


def test_corrupt_onnx_graph_is_a_clear_error(tmp_path: Path) -> None:
    shipped = REPO / "signals" / "artifacts" / "encoders" / "minilm"
    broken = tmp_path / "minilm"
    shutil.copytree(shipped, broken)
    (broken / "model.int8.onnx").write_bytes(b"not a graph")
    with pytest.raises(EncoderError, match="cannot load ONNX graph"):
        load_encoder("minilm", broken)


def test_minilm_int8_weights_cannot_saturate_the_avx2_kernel() -> None:
    # onnxruntime's uint8 x int8 kernel on x86 without VNNI adds pairs of products in
    # saturating int16: with activations up to 255, weights must stay within [-64, 64]
    # (2 * 255 * 64 = 32,640). 8-bit weights gave a worst cosine to fp32 of 0.97 there.
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    enc = load_encoder("minilm")
    assert isinstance(enc, MiniLMEncoder)
    graph = onnx.load(str(enc.info.weights)).graph
    consts = {t.name: t for t in graph.initializer}
    weights = [
        numpy_helper.to_array(consts[n.input[1]])
        for n in graph.node
        if n.op_type == "MatMulInteger" and n.input[1] in consts
    ]
    assert len(weights) == 35  # 6 layers x 6 weight MatMuls, less the one kept in fp32
    assert all(w.dtype == np.int8 for w in weights)
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64


def test_artifacts_record_their_hashes() -> None:
    from irtgate.lab.encoders.export import sha256_file
    from irtgate.signals.encoders.artifact import read_artifact, shipped_path

    for name in ("static", "minilm"):
        info = read_artifact(shipped_path(name), name)
        assert sha256_file(info.weights) == info.weights_sha256


def test_loading_and_encoding_never_import_torch() -> None:
    code = (
        "import sys\n"
        "from irtgate.signals.encoders.load import load_encoder\n"
        "from irtgate.lab.encoders.cache import embed_corpus\n"
        "from irtgate.signals.encoders.embedder import RequestEmbedder\n"
        "for n in ('static', 'minilm'):\n"
        "    load_encoder(n).encode(['hello'])\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_static_pooling_matches_model2vec_within_the_window() -> None:
    from model2vec import StaticModel

    from irtgate.signals.encoders.artifact import shipped_path

    ours = load_encoder("static")
    theirs = StaticModel.from_pretrained(shipped_path("static"))
    texts = ["hello world", "naïve café 東京 🚀 [UNK] " + "x" * 120, "What is d/dx of x^2?"]
    # Same vectors: same table, tokenizer, [UNK] dropping and mean (model2vec sums in fp16).
    np.testing.assert_allclose(ours.encode(texts), theirs.encode(texts), atol=1e-3)
