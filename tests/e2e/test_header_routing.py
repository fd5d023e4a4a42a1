"""Routing on the x-irtgate-upstream header, as the Kubernetes overlays do (an HTTPRoute rule
per upstream plus an early header removal), with a real Envoy: irtgate's header routes, a
client's copy never does, whether irtgate is up or down (fail-open)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from irtgate.server.extproc import ROUTE_HEADER
from irtgate.server.settings import DefaultChoice, FailMode
from irtgate.server.testing import Stack, running_stack, stack_settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-header-routing")]

CHAT = "/v1/chat/completions"
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
# irtgate (the static decider) always picks demo-large; the default upstream is demo-small.
CHOICE = DefaultChoice("demo-large-1", "demo-large", None)


def header_routes(early_removal: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The generated bootstrap with each upstream route matching the header instead of the
    metadata (what an HTTPRoute rule becomes), the header dropped before the upstream, and
    optionally Envoy's early header removal (ClientTrafficPolicy / the Istio EnvoyFilter)."""

    def transform(cfg: dict[str, Any]) -> dict[str, Any]:
        cfg = copy.deepcopy(cfg)
        listener = cfg["static_resources"]["listeners"][0]
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
            matchers = route["match"].pop("dynamic_metadata", None)
            if matchers:
                upstream = matchers[0]["value"]["string_match"]["exact"]
                route["match"]["headers"] = [
                    {"name": ROUTE_HEADER, "string_match": {"exact": upstream}}
                ]
                route["request_headers_to_remove"] = [ROUTE_HEADER]
        if early_removal:
            hcm["early_header_mutation_extensions"] = [
                {
                    "name": "envoy.http.early_header_mutation.header_mutation",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.http."
                        "early_header_mutation.header_mutation.v3.HeaderMutation",
                        "mutations": [{"remove": ROUTE_HEADER}],
                    },
                }
            ]
        return cfg

    return transform


@pytest.fixture(scope="module")
def up_without_early_removal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # No early removal: only irtgate's own guard stands between a client and the route.
    with running_stack(
        tmp_path_factory.mktemp("hdr-up"), stack_settings(default_choice=CHOICE),
        envoy_transform=header_routes(early_removal=False), name="header-up",
    ) as s:  # fmt: skip
        yield s


def answered_by(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    demo = r.json()["irtgate_demo"]
    assert ROUTE_HEADER not in demo.get("x_headers", [])  # dropped before the upstream
    return str(demo["upstream"])


def test_irtgates_header_picks_the_upstream(up_without_early_removal: Stack) -> None:
    r = httpx.post(up_without_early_removal.url + CHAT, json=BODY, timeout=10)
    assert answered_by(r) == "demo-large"


def test_a_client_copy_is_removed_while_irtgate_is_up(up_without_early_removal: Stack) -> None:
    url = up_without_early_removal.url
    forged = {ROUTE_HEADER: "demo-small"}
    # A routed request: irtgate's value replaces the client's.
    r = httpx.post(url + CHAT, json=BODY, headers=forged, timeout=10)
    assert answered_by(r) == "demo-large"
    # A bodiless request irtgate does not route: the forged value is gone, the default applies.
    r = httpx.get(url + "/v1/models", headers={ROUTE_HEADER: "demo-large"}, timeout=10)
    assert r.status_code == 200 and r.json()["irtgate_demo"]["upstream"] == "demo-small"


@pytest.mark.parametrize("early_removal", [True, False])
def test_fail_open_with_irtgate_down(
    tmp_path_factory: pytest.TempPathFactory, early_removal: bool
) -> None:
    settings = stack_settings(default_choice=CHOICE, fail_mode=FailMode.OPEN)
    with running_stack(
        tmp_path_factory.mktemp("hdr-down"), settings, processor="none",
        envoy_transform=header_routes(early_removal), name="header-down",
    ) as stack:  # fmt: skip
        r = httpx.post(
            stack.url + CHAT, json=BODY, headers={ROUTE_HEADER: "demo-large"}, timeout=10
        )
    assert r.status_code == 200
    reached = r.json()["irtgate_demo"]["upstream"]
    # With the early removal (as the overlays configure) the forged header is gone before
    # routing: the default upstream. Without it, the client would have picked demo-large,
    # which is why the overlays carry it.
    assert reached == ("demo-small" if early_removal else "demo-large")
