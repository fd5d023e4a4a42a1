"""The fuzz invariant through a real Envoy, on the default policy: every body gets a routed
(or passed-through) 200 or an OpenAI-style 4xx, never a 5xx; plus compressed bodies."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings

from irtgate.server.settings import DeciderKind
from irtgate.server.testing import Stack, running_stack, stack_settings
from tests.fuzz import any_body, examples

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-fuzz")]

JSON = {"content-type": "application/json"}
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = stack_settings(decider=DeciderKind.POLICY, policy_watch=False)
    with running_stack(tmp_path_factory.mktemp("fuzz"), s, name="fuzz") as st:
        yield st


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        yield c


def assert_ok_or_client_error(r: httpx.Response) -> None:
    if r.status_code == 200:
        assert r.headers.get("x-irtgate-decision"), r.headers
        return
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "code"}


@settings(max_examples=examples(200))
@given(any_body())
def test_fuzz_through_envoy_is_200_or_4xx(client: httpx.Client, case: tuple[str, bytes]) -> None:
    path, body = case
    assert_ok_or_client_error(client.post(path, content=body, headers=JSON))


def test_after_the_fuzz_the_stack_is_healthy(stack: Stack, client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.headers["x-irtgate-decision"]
    assert client.get("/readyz").status_code == 200
    assert not stack.metric("irtgate_errors_total", kind="internal_error")


def test_a_gzip_body_is_routed_and_reaches_the_upstream_as_plain_json(
    client: httpx.Client,
) -> None:
    r = client.post(
        "/v1/chat/completions",
        content=gzip.compress(json.dumps(CHAT).encode()),
        headers={**JSON, "content-encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    # The demo upstream echoes the model it was sent: it could read the rewritten body.
    assert r.json()["model"].startswith("demo-")


def test_a_plain_body_labelled_gzip_is_a_400(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=CHAT, headers={"content-encoding": "gzip"})
    assert r.status_code == 400
    assert "labelled content-encoding gzip" in r.json()["error"]["message"]
