"""The committed generated code matches the .proto (regenerate with `make proto`)."""

from __future__ import annotations

from irtgate.proto import decide_pb2
from irtgate.proto.generate import stale_files


def test_generated_code_is_current() -> None:
    assert stale_files() == []


def test_message_roundtrip() -> None:
    msg = decide_pb2.DecideResponse(model="m", explanation={"p": "0.5"})
    again = decide_pb2.DecideResponse.FromString(msg.SerializeToString())
    assert again.model == "m" and dict(again.explanation) == {"p": "0.5"}
