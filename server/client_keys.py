"""Gateway API keys: clients present a key, the gateway knows only its sha256.

The keys file holds one hex sha256 digest per line (``printf %s "$KEY" | sha256sum``);
``#`` starts a comment. A client sends its key the way its SDK does: ``Authorization:
Bearer <key>`` (OpenAI), ``x-api-key`` (Anthropic) or ``api-key`` (Azure). The key is
hashed and compared, never logged; Envoy strips all three headers before any upstream.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from irtgate.policies.errors import PolicyError, Problem

_HEX: Final = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")


def load_client_keys(path: Path) -> frozenset[str]:
    """The digests in ``path``; raises PolicyError listing every bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError([Problem(str(path), None, (), f"cannot read: {e}")]) from None
    digests: set[str] = set()
    problems: list[Problem] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _HEX.fullmatch(line)
        if m is None:
            problems.append(
                Problem(str(path), n, (), "expected a sha256 hex digest (64 hex characters)")
            )
        else:
            digests.add(m.group(1).lower())
    if not digests and not problems:
        problems.append(Problem(str(path), None, (), "no key digests: every client is refused"))
    if problems:
        raise PolicyError(problems)
    return frozenset(digests)


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys a request carries, in any of the three SDK conventions."""
    keys = []
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.append(token.strip())
    for name in ("x-api-key", "api-key"):
        if value := headers.get(name, "").strip():
            keys.append(value)
    return keys


def is_allowed(headers: Mapping[str, str], digests: frozenset[str]) -> bool:
    for key in presented_keys(headers):
        digest = hashlib.sha256(key.encode()).hexdigest()
        # Constant time per comparison: timing must not tell how much of a digest matched.
        if any(hmac.compare_digest(digest, d) for d in digests):
            return True
    return False
