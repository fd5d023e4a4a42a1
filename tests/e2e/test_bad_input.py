"""The bad-input table, through Envoy: each case gets an OpenAI-style JSON error and a count."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from irtgate.server.settings import UnknownModelMode
from irtgate.server.testing import Stack, running_stack, stack_settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-bad-input")]

CHAT = "/v1/chat/completions"
LIMIT = 64 * 1024
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = stack_settings(body_limit=LIMIT, unknown_model=UnknownModelMode.REJECT)
    with running_stack(tmp_path_factory.mktemp("bad"), settings, name="bad-input") as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def _chunks(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    # A generator body makes httpx send chunked, so only the body phase sees the size.
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _big(n: int) -> bytes:
    return b'{"model":"auto","messages":[{"role":"user","content":"' + b"a" * n + b'"}]}'


CASES = [
    ("invalid json", CHAT, b'{"model": "auto", "messages": [', JSON, 400, "invalid_json"),
    ("not utf-8", CHAT, b'{"model": "\xff"}', JSON, 400, "invalid_json"),
    ("empty body", CHAT, b"", JSON, 400, "invalid_json"),
    ("array body", CHAT, b'[{"model": "auto"}]', JSON, 400, "invalid_request"),
    ("no messages", CHAT, b'{"model": "auto"}', JSON, 400, "invalid_request"),
    ("empty messages", CHAT, b'{"model":"auto","messages":[]}', JSON, 400, "invalid_request"),
    ("bad part", CHAT, b'{"model":"auto","messages":[{"role":"user","content":7}]}', JSON, 400,
     "invalid_request"),
    ("responses no input", "/v1/responses", b'{"model":"auto"}', JSON, 400, "invalid_request"),
    ("messages bad thinking", "/v1/messages",
     b'{"model":"auto","messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled",'
     b'"budget_tokens":"lots"}}', JSON, 400, "invalid_request"),
    ("form content type", CHAT, b"model=auto", FORM, 415, "unsupported_media_type"),
    ("no content type", CHAT, b'{"model":"auto","messages":[]}', {}, 415,
     "unsupported_media_type"),
    ("over limit", CHAT, _big(LIMIT + 10), JSON, 413, "request_too_large"),
    ("unknown model", CHAT, b'{"model":"gpt-nope","messages":[{"role":"user","content":"x"}]}',
     JSON, 400, "model_not_found"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_gets_json_error_and_is_counted(
    stack: Stack,
    client: httpx.Client,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = stack.metric("irtgate_errors_total", kind=code)
    r = client.post(path, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["code"] == code
    assert err["type"] == "invalid_request_error"
    assert err["message"] and "Traceback" not in err["message"]
    assert stack.metric("irtgate_errors_total", kind=code) == before + 1


def test_prompt_text_is_not_echoed_in_errors(client: httpx.Client) -> None:
    secret = "my-secret-prompt-words"
    r = client.post(CHAT, content=b'{"model":"auto","messages":[{"role":"user","content":"'
                    + secret.encode() + b'"}', headers=JSON)  # fmt: skip
    assert r.status_code == 400
    assert secret not in r.text


def test_chunked_body_over_our_limit_is_413_json(stack: Stack, client: httpx.Client) -> None:
    before = stack.metric("irtgate_errors_total", kind="request_too_large")
    r = client.post(CHAT, content=_chunks(_big(LIMIT + 10)), headers=JSON)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    assert stack.metric("irtgate_errors_total", kind="request_too_large") == before + 1


def test_body_over_envoy_buffer_is_413_json(stack: Stack, client: httpx.Client) -> None:
    # Beyond Envoy's listener buffer (our limit + 1 MiB) Envoy answers itself; its reply is
    # mapped to the same JSON shape and counted in Envoy's downstream_rq_too_large.
    key = "http.irtgate.downstream_rq_too_large"
    before = stack.envoy.stats("downstream_rq_too_large").get(key, 0)
    r = client.post(CHAT, content=_chunks(_big(2 * 1024 * 1024)), headers=JSON)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "request_too_large"
    assert stack.envoy.stats("downstream_rq_too_large").get(key, 0) == before + 1


def test_gateway_still_routes_after_bad_input(client: httpx.Client) -> None:
    r = client.post(CHAT, json={"model": "auto", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200
    assert r.json()["irtgate_demo"]["model"] == "demo-small-1"
