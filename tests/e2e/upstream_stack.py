"""A stack whose upstreams are TLS stand-ins for hosted providers, each with its key.

Shared by tests/e2e/test_upstreams_tls.py and tests/e2e/test_sdks.py (one stack per module).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import httpx2

from irtgate.server.settings import DefaultChoice
from irtgate.server.testing import Stack, running_stack, stack_settings
from irtgate.server.testing_pki import make_pki
from irtgate.server.upstreams import load_upstreams

# Made-up keys: each must reach its stand-in in its preset's header, and nothing else.
OAI_KEY = "sk-oai-e2e-7f3a9c51d2"
ANT_KEY = "sk-ant-e2e-1b2c3d4e5f"
AZ_KEY = "az-e2e-key-44aa09bb"
GEM_KEY = "gem-e2e-key-99zz0qq1"
CLIENT_KEY = "gw-client-key-5e5e6f6f"  # what clients present to the gateway
SECRETS = (OAI_KEY, ANT_KEY, AZ_KEY, GEM_KEY, CLIENT_KEY)
SNI = "provider.test"

# Ports are placeholders: the harness binds each stand-in to a free port.
UPSTREAMS = f"""\
version: 1
default: local
upstreams:
  oai:
    url: https://127.0.0.1:1/v1
    provider: openai
    auth: {{env: E2E_OAI_KEY}}
    tls: {{ca_file: pki/ca.pem, sni: {SNI}}}
    models: [gpt-e2e]
  claude:
    url: https://127.0.0.1:1/v1
    provider: anthropic
    auth: {{file: claude.key}}
    tls: {{ca_file: pki/ca.pem, sni: {SNI}}}
    models: [claude-e2e]
  azure:
    url: https://127.0.0.1:1/openai/v1
    provider: azure-openai
    auth: {{env: E2E_AZ_KEY}}
    tls: {{ca_file: pki/ca.pem}}  # no SNI: the certificate's IP address is checked
    models: [azure-e2e]
  gem:
    url: https://127.0.0.1:1/v1beta/openai
    provider: gemini
    auth: {{env: E2E_GEM_KEY}}
    tls: {{ca_file: pki/ca.pem, sni: {SNI}}}
    models: [gemini-e2e]
  wrongca:
    url: https://127.0.0.1:1/v1
    provider: openai
    auth: {{env: E2E_OAI_KEY}}
    tls: {{ca_file: other/ca.pem, sni: {SNI}}}
    models: [wrongca-e2e]
    retries: 0
  local:
    url: http://127.0.0.1:1/v1
    provider: vllm
    models: [local-e2e]
    timeout: 2
    retries: 2
"""
KEYS = {
    "oai": ("authorization", f"Bearer {OAI_KEY}"),
    "claude": ("x-api-key", ANT_KEY),
    "azure": ("api-key", AZ_KEY),
    "gem": ("authorization", f"Bearer {GEM_KEY}"),
    "wrongca": ("authorization", f"Bearer {OAI_KEY}"),
}


@dataclass
class Harness:
    stack: Stack
    # Every response the tests got (the SDKs' are httpx2's), for the leak test.
    responses: list[httpx.Response | httpx2.Response] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # every irtgate log record, formatted


class _Collect(logging.Handler):
    def __init__(self, out: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.out = out
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.out.append(self.format(record))


@contextmanager
def tls_harness(workdir: Path, name: str) -> Iterator[Harness]:
    pki = make_pki(workdir / "pki", SNI)
    make_pki(workdir / "other", SNI, label="unrelated")
    (workdir / "claude.key").write_text(ANT_KEY)  # no newline, as a Secret mount has it
    (workdir / "upstreams.yaml").write_text(UPSTREAMS)
    env = {**os.environ, "E2E_OAI_KEY": OAI_KEY, "E2E_AZ_KEY": AZ_KEY, "E2E_GEM_KEY": GEM_KEY}
    cfg = load_upstreams(workdir / "upstreams.yaml", env)
    settings = stack_settings(
        upstreams=cfg.upstreams,
        default_upstream=cfg.default,
        default_choice=DefaultChoice("local-e2e", "local", None),
        client_key_hashes=frozenset({hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}),
    )
    logs: list[str] = []
    handler = _Collect(logs)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with running_stack(
            workdir / "stack",
            settings,
            name=name,
            upstream_tls={n: pki.server_context() for n in KEYS},
            upstream_keys=KEYS,
            envoy_env=env,
        ) as stack:
            yield Harness(stack, logs=logs)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
