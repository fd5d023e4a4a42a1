from __future__ import annotations

import logging
import pickle

import pytest

from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

SECRET = "my card is 4111 1111 1111 1111"


def test_prompt_text_never_shows_content() -> None:
    t = PromptText(SECRET)
    rendered_forms = (str(t), repr(t), f"{t}", f"{t!r}", "%s" % (t,), f"{t:>40}")  # noqa: UP031
    for rendered in rendered_forms:
        assert "4111" not in rendered
        assert str(len(SECRET)) in rendered
    assert t.reveal() == SECRET
    assert len(t) == len(SECRET)


def test_prompt_text_not_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    t = PromptText(SECRET)
    logging.getLogger("irtgate.test").info("request text %s / %r", t, t)
    assert "4111" not in caplog.text


def test_prompt_text_immutable_and_unpicklable() -> None:
    t = PromptText("x")
    with pytest.raises(AttributeError):
        t._value = "y"
    with pytest.raises(TypeError):
        pickle.dumps(t)
    with pytest.raises(TypeError):
        PromptText(b"bytes")  # type: ignore[arg-type]


def test_prompt_text_equality_and_hash() -> None:
    assert PromptText("a") == PromptText("a")
    assert PromptText("a") != PromptText("b")
    assert PromptText("a") != "a"
    assert len({PromptText("a"), PromptText("a")}) == 1
    assert not PromptText("")


def test_request_repr_hides_prompts() -> None:
    req = LLMRequest(
        api=ApiKind.CHAT,
        model="auto",
        messages=(
            Message("system", PromptText("be brief")),
            Message("user", PromptText("first")),
            Message("assistant", PromptText("answer")),
            Message("user", PromptText(SECRET)),
        ),
        body={"messages": [{"role": "user", "content": SECRET}]},
    )
    assert "4111" not in repr(req)
    assert req.last_user_text.reveal() == SECRET
    assert req.system_text.reveal() == "be brief"


def test_last_user_text_empty_without_user_turn() -> None:
    req = LLMRequest(api=ApiKind.CHAT, model="m", messages=(Message("system", PromptText("s")),))
    assert req.last_user_text.reveal() == ""
