from __future__ import annotations

from pathlib import Path

import pytest

from irtgate.server.settings import DeciderKind, DefaultChoice, Settings, Upstream


def test_defaults_are_consistent() -> None:
    s = Settings()
    assert s.aliases == ("auto",)
    assert s.body_limit == 16 * 1024 * 1024
    assert s.envoy_buffer_limit > s.body_limit
    assert s.grpc_message_limit > s.envoy_buffer_limit
    assert s.model_upstreams() == {"demo-small-1": "demo-small", "demo-large-1": "demo-large"}
    assert s.upstream("demo-large").port == 18002
    assert s.replace(aliases=("a", "b")).aliases == ("a", "b")
    # The embedded default policy decides unless told otherwise.
    assert s.decider is DeciderKind.POLICY and s.policy_path is None and s.policy_watch
    # The static decider's choice is not checked when a policy decides.
    custom = Settings(upstreams=(Upstream("a", "h", 1),), default_upstream="a")
    assert custom.default_choice.upstream == "demo-small"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_upstream": "missing"},
        {"body_limit": 0},
        {"message_timeout_s": 0},
        {"aliases": ()},
        {"upstreams": (Upstream("a", "h", 1), Upstream("a", "h", 2)), "default_upstream": "a"},
        {"decider": DeciderKind.STATIC, "policy_path": Path("p.yaml")},
        {"decider": DeciderKind.STATIC, "default_choice": DefaultChoice("m", "nowhere")},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Settings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "port"), [("bad name", 1), ("", 1), ("ok", 70000)])
def test_invalid_upstream(name: str, port: int) -> None:
    with pytest.raises(ValueError):
        Upstream(name, "h", port)
