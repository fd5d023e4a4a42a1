from __future__ import annotations

import pytest

from server.settings import Settings, Upstream


def test_defaults_are_consistent() -> None:
    s = Settings()
    assert s.aliases == ("auto",)
    assert s.body_limit == 16 * 1024 * 1024
    assert s.envoy_buffer_limit > s.body_limit
    assert s.grpc_message_limit > s.envoy_buffer_limit
    assert s.model_upstreams() == {"demo-small-1": "demo-small", "demo-large-1": "demo-large"}
    assert s.upstream("demo-large").port == 18002
    assert s.replace(aliases=("a", "b")).aliases == ("a", "b")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_upstream": "missing"},
        {"body_limit": 0},
        {"message_timeout_s": 0},
        {"aliases": ()},
        {"upstreams": (Upstream("a", "h", 1), Upstream("a", "h", 2)), "default_upstream": "a"},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Settings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "port"), [("bad name", 1), ("", 1), ("ok", 70000)])
def test_invalid_upstream(name: str, port: int) -> None:
    with pytest.raises(ValueError):
        Upstream(name, "h", port)
