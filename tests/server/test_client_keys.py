"""Gateway client keys: sha256 digests in a file; the three SDK header conventions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from irtgate.policies.errors import PolicyError
from irtgate.server.client_keys import is_allowed, load_client_keys


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_keys_file_and_headers(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team a\n{digest('k-a')}\n\nsha256:{digest('k-b').upper()}  # b\n")
    keys = load_client_keys(path)
    assert keys == {digest("k-a"), digest("k-b")}
    assert is_allowed({"authorization": "Bearer k-a"}, keys)
    assert is_allowed({"authorization": "bearer k-b"}, keys)
    assert is_allowed({"x-api-key": "k-b"}, keys)
    assert is_allowed({"api-key": "k-a"}, keys)
    assert is_allowed({"authorization": "Bearer wrong", "x-api-key": "k-a"}, keys)
    refused: list[dict[str, str]] = [
        {},
        {"authorization": "k-a"},
        {"authorization": "Basic k-a"},
        {"x-api-key": "k-c"},
        {"authorization": f"Bearer {digest('k-a')}"},  # the digest itself is not a key
    ]
    for headers in refused:
        assert not is_allowed(headers, keys), headers


def test_bad_lines_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"plain-key-by-mistake\n{digest('x')}\nabc123\n")
    with pytest.raises(PolicyError) as e:
        load_client_keys(path)
    assert [p.line for p in e.value.problems] == [1, 3]
    assert "plain-key-by-mistake" not in str(e.value)  # a pasted key is not echoed
    path.write_text("# nothing\n")
    with pytest.raises(PolicyError, match="no key digests"):
        load_client_keys(path)


def test_keys_and_fail_open_are_refused_together() -> None:
    from irtgate.server.settings import FailMode, Settings

    keys = frozenset({digest("k")})
    assert Settings(client_key_hashes=keys).fail_mode is FailMode.CLOSED
    with pytest.raises(ValueError, match="client keys need --fail-mode closed"):
        Settings(client_key_hashes=keys, fail_mode=FailMode.OPEN)
