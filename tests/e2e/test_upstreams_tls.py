"""Hosted upstreams over real TLS, with keys, through a real Envoy.

Stand-ins for OpenAI, Anthropic, Azure OpenAI and Gemini serve HTTPS with a certificate
from a CA this module makes; each insists on its key in its preset's header (a wrong or
missing key is a 401, as from a real provider) and records what reached it. Clients must
present a gateway key. The official SDKs are in tests/e2e/test_sdks.py, on the same stack.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import httpx
import pytest

from irtgate.server.testing import Stack
from tests.e2e.upstream_stack import (
    ANT_KEY,
    AZ_KEY,
    CLIENT_KEY,
    GEM_KEY,
    OAI_KEY,
    SECRETS,
    Harness,
    tls_harness,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-upstreams")]

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with tls_harness(tmp_path_factory.mktemp("tls"), "tls-upstreams") as harness:
        yield harness


CLIENT_HEADERS = {
    "authorization": f"Bearer {CLIENT_KEY}",
    "x-api-key": CLIENT_KEY,
    "api-key": CLIENT_KEY,
}


def post(h: Harness, path: str, body: dict[str, object], **headers: str) -> httpx.Response:
    sent = headers or CLIENT_HEADERS
    r = httpx.post(h.stack.url + path, json=body, headers=sent, timeout=15)
    h.responses.append(r)
    return r


@pytest.mark.parametrize(
    ("model", "api_path", "upstream", "path", "header", "value"),
    [
        ("gpt-e2e", "/v1/chat/completions", "oai", "/v1/chat/completions",
         "authorization", f"Bearer {OAI_KEY}"),
        ("gpt-e2e", "/v1/responses", "oai", "/v1/responses",
         "authorization", f"Bearer {OAI_KEY}"),
        ("claude-e2e", "/v1/messages", "claude", "/v1/messages", "x-api-key", ANT_KEY),
        ("azure-e2e", "/v1/chat/completions", "azure", "/openai/v1/chat/completions",
         "api-key", AZ_KEY),
        ("gemini-e2e", "/v1/chat/completions", "gem", "/v1beta/openai/chat/completions",
         "authorization", f"Bearer {GEM_KEY}"),
    ],
)  # fmt: skip
def test_each_provider_gets_its_key_in_its_header_and_never_the_clients(
    h: Harness, model: str, api_path: str, upstream: str, path: str, header: str, value: str
) -> None:
    body: dict[str, object] = {"model": model, "messages": HI, "max_tokens": 16}
    if api_path == "/v1/responses":
        body = {"model": model, "input": "hi"}
    r = post(h, api_path, body)
    assert r.status_code == 200, r.text
    assert r.json()["irtgate_demo"]["upstream"] == upstream
    got = h.stack.upstream(upstream).state.received[-1]
    assert got.path == path
    assert got.headers[header] == value
    # The client's key (sent in all three headers) never reaches a provider.
    assert not any(CLIENT_KEY in v for v in got.headers.values())
    other = {"authorization", "x-api-key", "api-key"} - {header}
    assert not other & set(got.headers)
    if upstream == "claude":
        assert got.headers["anthropic-version"] == "2023-06-01"
    port = h.stack.upstream_ports[upstream]
    expected_host = "127.0.0.1" if upstream == "azure" else "provider.test"
    assert got.headers["host"] == f"{expected_host}:{port}"


def test_gateway_keys_are_required(h: Harness) -> None:
    body: dict[str, object] = {"model": "gpt-e2e", "messages": HI}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": "nope"}):
        r = httpx.post(h.stack.url + "/v1/chat/completions", json=body, headers=headers)
        h.responses.append(r)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
    r = post(h, "/v1/chat/completions", body, **{"x-api-key": CLIENT_KEY})
    assert r.status_code == 200


def test_a_wrong_ca_fails_closed(h: Harness) -> None:
    r = post(h, "/v1/chat/completions", {"model": "wrongca-e2e", "messages": HI})
    assert r.status_code == 503
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("server_error", "upstream_tls_error")
    assert "CERTIFICATE_VERIFY_FAILED" in err["message"]
    assert h.stack.upstream("wrongca").state.received == []  # no request left the gateway
    stats = h.stack.envoy.stats("cluster.wrongca.ssl")
    assert stats["cluster.wrongca.ssl.fail_verify_error"] >= 1


def test_an_api_the_upstream_does_not_speak_is_refused_by_name(h: Harness) -> None:
    # Anthropic's preset speaks only Messages; irtgate does not translate.
    r = post(h, "/v1/chat/completions", {"model": "claude-e2e", "messages": HI})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "api_not_served"
    assert "claude" in err["message"] and "chat_completions" in err["message"]
    # The static route goes to the vLLM upstream, which does not speak Messages.
    body: dict[str, object] = {"model": "auto", "max_tokens": 5, "messages": HI}
    r = post(h, "/v1/messages", body)
    assert r.status_code == 400 and "local" in r.json()["error"]["message"]
    assert h.stack.upstream("claude").state.received[-1].path != "/v1/chat/completions"


def _stat(stack: Stack, name: str) -> int:
    return stack.envoy.stats(name).get(name, 0)


def test_429_then_200_is_retried(h: Harness) -> None:
    up = h.stack.upstream("local")
    before = (len(up.state.received), _stat(h.stack, "cluster.local.upstream_rq_retry"))
    up.state.faults.append("429")
    r = post(h, "/v1/chat/completions", {"model": "local-e2e", "messages": HI})
    assert r.status_code == 200, r.text
    assert r.json()["irtgate_demo"]["upstream"] == "local"
    assert len(up.state.received) == before[0] + 2
    assert _stat(h.stack, "cluster.local.upstream_rq_retry") == before[1] + 1


def test_a_closed_connection_is_an_openai_style_error(h: Harness) -> None:
    up = h.stack.upstream("local")
    up.state.faults.extend(["close"] * 3)  # the first try and both retries
    resets = _stat(h.stack, "cluster.local.upstream_rq_retry")
    started = time.monotonic()
    r = post(h, "/v1/chat/completions", {"model": "local-e2e", "messages": HI})
    assert time.monotonic() - started < 10
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["type"] == "server_error" and err["code"] == "gateway_error"
    assert _stat(h.stack, "cluster.local.upstream_rq_retry") == resets + 2


def test_a_hung_upstream_times_out_as_json_504(h: Harness) -> None:
    h.stack.upstream("local").state.faults.append("hang")
    before = _stat(h.stack, "cluster.local.upstream_rq_timeout")
    started = time.monotonic()
    r = post(h, "/v1/chat/completions", {"model": "local-e2e", "messages": HI})
    took = time.monotonic() - started
    assert r.status_code == 504
    assert r.json()["error"]["type"] == "server_error"
    assert 1.5 < took < 6, took  # the upstream's timeout is 2 s
    assert _stat(h.stack, "cluster.local.upstream_rq_timeout") == before + 1


def test_secrets_never_leak(h: Harness) -> None:
    """Everything the requests of this module left behind is searched. It runs last in the
    module when the whole module runs; alone, it first sends one request per provider."""
    if len(h.responses) <= 10:
        for model, path in (("gpt-e2e", "/v1/chat/completions"), ("claude-e2e", "/v1/messages"),
                            ("azure-e2e", "/v1/chat/completions"),
                            ("gemini-e2e", "/v1/chat/completions")):  # fmt: skip
            for _ in range(3):
                post(h, path, {"model": model, "messages": HI, "max_tokens": 16})
    time.sleep(1.2)  # Envoy flushes its access log about once a second
    places: dict[str, str] = {
        "envoy log": h.stack.envoy.log_tail(10_000_000),
        "irtgate logs": "\n".join(h.logs),
        "envoy config": h.stack.envoy.config_path.read_text(),
    }
    with urllib.request.urlopen(h.stack.admin_url + "/metrics") as r:
        places["irtgate metrics"] = r.read().decode()
    for page in ("stats", "stats/prometheus", "config_dump?include_eds", "clusters"):
        with urllib.request.urlopen(f"{h.stack.envoy.admin_url}/{page}") as r:
            places[f"envoy /{page}"] = r.read().decode()
    for i, resp in enumerate(h.responses):
        places[f"response {i} headers"] = json.dumps(dict(resp.headers))
        places[f"response {i} body"] = resp.text
    assert len(h.responses) > 10
    assert "irtgate_key_oai" in places["envoy /config_dump?include_eds"]  # the secret is there
    for where, text in places.items():
        for secret in SECRETS:
            assert secret not in text, f"a key leaked into {where}"
    # The client key reached no stand-in provider either.
    for name in ("oai", "claude", "azure", "gem", "local"):
        for rec in h.stack.upstream(name).state.received:
            assert CLIENT_KEY not in json.dumps(rec.headers)
