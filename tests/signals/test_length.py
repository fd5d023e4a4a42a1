"""The ``length`` signal: real WordPiece counts, corrected upwards, over the whole request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from irtgate.signals.base import Resources, SignalContext, registered
from irtgate.signals.length import LengthSignal, find_tokenizer, load_tokenizer, make_length
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText


def req(*turns: tuple[str, str], **kw: Any) -> LLMRequest:
    msgs = tuple(Message(role=r, text=PromptText(t)) for r, t in turns)
    return LLMRequest(api=ApiKind.CHAT, model="auto", messages=msgs, **kw)


# margin 1 and no template overhead: the raw corrected count is visible.
BARE = {"margin": 1.0, "per_message_tokens": 0, "default_output_tokens": 0}


@pytest.fixture(scope="module")
def bare() -> Any:
    sig = make_length(BARE, Resources())
    assert isinstance(sig, LengthSignal)
    return sig


def run(sig: Any, r: LLMRequest) -> dict[str, Any]:
    return dict(sig.compute(SignalContext(r)))


def wordpiece(text: str) -> int:
    tok = load_tokenizer(find_tokenizer())
    return len(tok.encode(text, add_special_tokens=False).ids)


def test_plain_text_count_is_the_tokenizers(bare: Any) -> None:
    text = "Explain photosynthesis in simple terms, please"
    # 7 words, 9 WordPiece tokens ("photosynthesis" is split): a real subword tokenizer.
    assert wordpiece(text) == 9
    out = bare.compute(SignalContext(req(("user", text))))
    assert out["tokens"] == out["last_user_tokens"] == 9


def test_whole_conversation_counts(bare: Any) -> None:
    r = req(
        ("system", "You are a careful assistant"),
        ("user", "hello there"),
        ("assistant", "hi how can i help"),
        ("tool", "result ok"),
        ("user", "thanks"),
        tools_json='{"name": "lookup"}',
        n_tools=1,
    )
    out = bare.compute(SignalContext(r))
    parts = [
        "You are a careful assistant",
        "hello there",
        "hi how can i help",
        "result ok",
        "thanks",
    ]
    schema = wordpiece('{"name": "lookup"}')
    assert out["tokens"] == sum(wordpiece(p) for p in parts) + schema
    assert out["system_tokens"] == wordpiece(parts[0])
    assert out["tool_schema_tokens"] == schema > 0
    assert out["last_user_tokens"] == 1
    assert (out["messages"], out["has_tools"], out["tools"]) == (5, True, 1)


def test_corrections_err_high(bare: Any) -> None:
    c = bare.counter
    # An emoji is one [UNK] for WordPiece but several byte tokens for GPT BPE.
    assert c.count("👍") == len("👍".encode())
    # Newlines and indentation are tokens for BPE; WordPiece drops them.
    assert c.count("a\nb\n    c") == 3 + 2 + 1
    # "1234567" is one WordPiece token at most a few; BPE splits digits in threes.
    assert c.count("1234567") >= 3
    assert c.count("") == 0


def test_margin_overhead_and_media_parts() -> None:
    sig = make_length(
        {"margin": 1.5, "per_message_tokens": 4, "non_text_part_tokens": 100}, Resources()
    )
    msgs = (
        Message(role="user", text=PromptText("hello there friend"), n_non_text_parts=2),
        Message(role="assistant", text=PromptText("hi")),
    )
    out = sig.compute(SignalContext(LLMRequest(api=ApiKind.CHAT, model="m", messages=msgs)))
    assert out["tokens"] == 6 + 2 * 4 + 2 * 100  # ceil((3 + 1) * 1.5) = 6


def test_reserved_output_from_request_or_default() -> None:
    sig = make_length({"default_output_tokens": 777}, Resources())
    a = run(sig, req(("user", "hi")))
    b = run(sig, req(("user", "hi"), max_tokens=50))
    assert a["reserved_output"] == 777 and a["total"] == a["tokens"] + 777
    assert b["reserved_output"] == 50 and b["total"] == b["tokens"] + 50


def test_unicode_cjk_is_counted_per_character(bare: Any) -> None:
    out = bare.compute(SignalContext(req(("user", "请用三句话解释光合作用"))))
    assert out["tokens"] >= 11  # BERT splits every CJK character; unknown ones count bytes


def test_very_long_input_is_extrapolated_not_truncated() -> None:
    sig = make_length({**BARE, "exact_chars": 1000}, Resources())
    text = "word " * 2000  # 10,000 chars, 2,000 tokens
    out = run(sig, req(("user", text)))
    assert out["estimated"] is True
    assert 1900 <= out["tokens"] <= 2100
    short = sig.compute(SignalContext(req(("user", "word " * 10))))
    assert short["estimated"] is False


def test_long_texts_are_counted_once_and_remembered_by_digest() -> None:
    sig = make_length(BARE, Resources())
    assert isinstance(sig, LengthSignal)
    history = "The same long system prompt, resent on every turn. " * 200  # > 4096 chars
    calls: list[int] = []
    count = sig.counter._count

    def spy(
        texts: list[str], ids_out: dict[str, list[int]] | None = None
    ) -> list[tuple[float, bool]]:
        calls.append(len(texts))
        return count(texts, ids_out)

    sig.counter._count = spy  # type: ignore[method-assign]
    first = run(sig, req(("system", history), ("user", "turn one")))
    second = run(sig, req(("system", history), ("user", "turn two, a bit longer")))
    assert calls == [3, 2]  # history tokenized once; short turns and tool schemas every time
    assert first["system_tokens"] == second["system_tokens"] > 1000
    assert all(isinstance(k, bytes) for k in sig.counter._memo)  # digests, not text


def test_no_messages_and_no_user_turn(bare: Any) -> None:
    out = bare.compute(SignalContext(req()))
    assert out["tokens"] == 0 and out["messages"] == 0 and out["last_user_tokens"] == 0
    out = bare.compute(SignalContext(req(("system", "rules"))))
    assert out["last_user_tokens"] == 0 and out["system_tokens"] == 1


def test_fields_declared_and_values_carry_no_text() -> None:
    sig = make_length({}, Resources())
    out = sig.compute(SignalContext(req(("user", "secret plan alpha"))))
    assert set(out) == set(sig.fields)
    for k, t in sig.fields.items():
        assert type(out[k]) is t, k
    assert registered()["length"][1] is make_length


def test_explicit_tokenizer_path(tmp_path: Path) -> None:
    sig = make_length({"tokenizer": str(find_tokenizer())}, Resources())
    assert run(sig, req(("user", "hi")))["tokens"] > 0


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"margin": 0.5}, "margin"),
        ({"margin": "big"}, "margin"),
        ({"per_message_tokens": -1}, "per_message_tokens"),
        ({"per_message_tokens": True}, "per_message_tokens"),
        ({"non_text_part_tokens": 1.5}, "non_text_part_tokens"),
        ({"default_output_tokens": "1k"}, "default_output_tokens"),
        ({"exact_chars": 10}, "exact_chars"),
        ({"tokenizer": "/nonexistent/tokenizer.json"}, "tokenizer"),
        ({"tokenizer": 3}, "tokenizer"),
        ({"window": 128}, "window"),
    ],
)
def test_factory_rejects_bad_params(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make_length(params, Resources())


def test_bad_tokenizer_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer: cannot load"):
        make_length({"tokenizer": str(bad)}, Resources())
