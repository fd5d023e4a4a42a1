from __future__ import annotations

import json

from irtgate.signals import errors


def test_error_bodies_are_openai_shaped() -> None:
    for err in errors.ALL:
        body = json.loads(err.body())
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "code"}
        assert body["error"]["code"] == err.code
        assert 400 <= err.status < 600


def test_codes_are_unique_and_with_message_keeps_code() -> None:
    codes = [e.code for e in errors.ALL]
    assert len(codes) == len(set(codes))
    e = errors.INVALID_REQUEST.with_message("messages must be a list")
    assert e.code == "invalid_request" and e.status == 400
    assert json.loads(e.body())["error"]["message"] == "messages must be a list"
