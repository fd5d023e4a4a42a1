"""The upstreams file: presets, strict validation with file:line: path, keys never inline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from irtgate.policies.errors import PolicyError
from irtgate.server.cli import main
from irtgate.server.envoy_config import envoy_binary, render, render_yaml
from irtgate.server.settings import Settings
from irtgate.server.upstreams import load_upstreams, parse_upstreams
from irtgate.signals.request import ApiKind

ENV = {"OPENAI_API_KEY": "sk-test-secret-value-1", "ANTHROPIC_API_KEY": "sk-ant-secret-2"}

GOOD = """\
version: 1
default: local
upstreams:
  openai:
    url: https://api.openai.com/v1
    provider: openai
    auth: {env: OPENAI_API_KEY}
    models: [gpt-4o-mini]
  claude:
    url: https://api.anthropic.com/v1
    provider: anthropic
    auth: {env: ANTHROPIC_API_KEY}
    timeout: 60
    retries: 3
  gemini:
    url: https://generativelanguage.googleapis.com/v1beta/openai/
    provider: gemini
    auth: {file: gemini.key}
    headers: {x-team: "50%"}
  local:
    url: http://10.0.0.5:8000/v1
    provider: vllm
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    (tmp_path / "gemini.key").write_bytes(b"AIza-secret-3")
    path = tmp_path / "upstreams.yaml"
    path.write_text(GOOD)
    return path


def test_presets_fill_in_auth_headers_apis_and_family(good: Path) -> None:
    cfg = load_upstreams(good, ENV)
    ups = {u.name: u for u in cfg.upstreams}
    assert cfg.default == "local"
    oa, cl, ge, lo = ups["openai"], ups["claude"], ups["gemini"], ups["local"]
    assert (oa.scheme, oa.host, oa.port, oa.path_prefix) == ("https", "api.openai.com", 443, "/v1")
    assert oa.auth is not None and (oa.auth.header, oa.auth.prefix) == ("authorization", "Bearer ")
    assert oa.auth.env == "OPENAI_API_KEY"
    assert oa.apis == {ApiKind.CHAT, ApiKind.RESPONSES} and oa.family == "openai"
    assert oa.models == ("gpt-4o-mini",) and oa.retries == 2 and oa.tls is not None
    assert cl.auth is not None and (cl.auth.header, cl.auth.prefix) == ("x-api-key", "")
    assert cl.apis == {ApiKind.MESSAGES} and cl.family == "anthropic"
    assert ("anthropic-version", "2023-06-01", False) in cl.headers
    assert (cl.timeout_s, cl.retries) == (60.0, 3)
    assert ge.path_prefix == "/v1beta/openai" and ge.apis == {ApiKind.CHAT}
    assert ge.auth is not None and ge.auth.file == good.parent / "gemini.key"
    assert ("x-team", "50%", True) in ge.headers
    assert (lo.scheme, lo.port, lo.auth, lo.tls) == ("http", 8000, None, None)


def test_every_problem_is_listed_with_file_line_and_path(tmp_path: Path) -> None:
    (tmp_path / "nl.key").write_text("key-with-newline\n")
    text = """\
version: 1
upstreams:
  a:
    url: https://api.openai.com/v1
    provider: openai
    auth: {env: MISSING_VAR}
  b:
    url: http://10.0.0.5:8000/v1
    provider: vllm
    tls: {sni: x.example}
  c:
    url: https://x.example/v1
    provider: not-a-provider
  d:
    url: https://x.example/v1
    provider: anthropic
    auth: {file: nope.key}
  e:
    url: https://x.example/v1
    provider: azure-openai
    auth: {file: nl.key}
    colour: blue
  f:
    url: http://10.0.0.6/v1
    apis: []
  g:
    url: https://user:pw@x.example/v1
    provider: openai
    auth: {key: sk-inline}
    headers: {Authorization: Bearer sk-inline}
"""
    with pytest.raises(PolicyError) as err:
        parse_upstreams(text, "ups.yaml", environ={}, base=tmp_path)
    got = [str(p) for p in err.value.problems]
    expected = [
        ("ups.yaml:6: upstreams.a.auth.env", "MISSING_VAR is not set"),
        ("ups.yaml:10: upstreams.b.tls", "only for https"),
        ("ups.yaml:13: upstreams.c.provider", "'openai'"),
        ("ups.yaml:17: upstreams.d.auth.file", "No such file"),
        ("ups.yaml:22: upstreams.e.colour", "unknown key"),
        ("ups.yaml:25: upstreams.f.apis", "speaks none of the APIs in use"),
        ("ups.yaml:29: upstreams.g.auth", "never written in the file"),
    ]
    for where, what in expected:
        assert any(g.startswith(where) and what in g for g in got), (where, got)
    # e's key file problem is found once its unknown key is fixed; g's URL and headers too.
    text = text.replace("    colour: blue\n", "").replace("auth: {key: sk-inline}", "")
    with pytest.raises(PolicyError) as err:
        parse_upstreams(text, "ups.yaml", environ={}, base=tmp_path)
    got = [str(p) for p in err.value.problems]
    assert any("upstreams.e.auth.file: key file" in g and "newline" in g for g in got), got
    assert any("upstreams.g.url: credentials in the URL" in g for g in got), got
    assert any("upstreams.g.headers: Authorization: credentials go in auth" in g for g in got)
    assert any("upstreams.g.auth: provider openai needs a key" in g for g in got), got
    assert not any("sk-inline" in g for g in got)  # an inline key is not echoed back


def test_unknown_top_level_key_and_undeclared_default() -> None:
    with pytest.raises(PolicyError) as err:
        parse_upstreams("upstreams: {a: {url: 'http://h/v1'}}\nextra: 1\n", "f.yaml", {})
    assert [str(p) for p in err.value.problems] == ["f.yaml:2: extra: unknown key"]
    with pytest.raises(PolicyError) as err:
        parse_upstreams("default: b\nupstreams: {a: {url: 'http://h/v1'}}\n", "f.yaml", {})
    assert "f.yaml:1: default: upstream 'b' is not declared" in str(err.value)


def test_envoy_config_has_tls_rewrites_injection_and_no_key(good: Path) -> None:
    cfg = load_upstreams(good, ENV)
    settings = Settings(upstreams=cfg.upstreams, default_upstream=cfg.default)
    doc = render(settings)
    static = doc["static_resources"]
    clusters = {c["name"]: c for c in static["clusters"]}
    tls = clusters["openai"]["transport_socket"]["typed_config"]
    assert tls["sni"] == "api.openai.com"
    vc = tls["common_tls_context"]["validation_context"]
    assert Path(vc["trusted_ca"]["filename"]).is_file()  # the system bundle
    assert vc["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "api.openai.com"}}
    ]
    assert "transport_socket" not in clusters["local"]
    opts = clusters["claude"]["typed_extension_protocol_options"]
    injector = next(iter(opts.values()))["http_filters"][0]["typed_config"]["credential"]
    assert injector["typed_config"]["header"] == "x-api-key"
    secrets = {s["name"]: s["generic_secret"]["secret"] for s in static["secrets"]}
    assert secrets["irtgate_key_openai"] == {"environment_variable": "OPENAI_API_KEY"}
    assert secrets["irtgate_key_gemini"] == {"filename": str(good.parent / "gemini.key")}
    routes = static["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]["virtual_hosts"][0]["routes"]
    by_name = {r.get("name"): r for r in routes}
    gem = by_name["to_gemini"]
    assert gem["route"]["host_rewrite_literal"] == "generativelanguage.googleapis.com"
    assert gem["route"]["regex_rewrite"]["substitution"] == "/v1beta/openai/"
    assert gem["request_headers_to_add"][0]["header"]["value"] == "50%%"
    assert by_name["to_claude"]["route"]["timeout"] == "60s"
    assert by_name["to_claude"]["route"]["retry_policy"]["num_retries"] == 3
    assert by_name["default"]["route"]["cluster"] == "local"
    for r in routes[2:]:  # every upstream route drops the client's credentials
        assert set(r["request_headers_to_remove"]) == {"authorization", "x-api-key", "api-key"}
    text = render_yaml(settings)
    assert not any(secret in text for secret in [*ENV.values(), "AIza-secret-3"])
    # Envoy accepts it (it reads the variables itself).
    path = good.parent / "envoy.yaml"
    path.write_text(text)
    out = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert yaml.safe_load(text)["static_resources"]["secrets"]


def test_cli_lists_every_problem_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "ups.yaml"
    bad.write_text(
        "upstreams:\n  a: {url: 'ftp://h/v1'}\n  b: {url: 'https://h/v1', provider: openai}\n"
    )
    assert main(["envoy-config", "--upstreams", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert f"{bad}:2: upstreams.a.url: scheme must be http or https" in err
    assert f"{bad}:3: upstreams.b.auth: provider openai needs a key" in err


def test_shipped_example_upstreams_fit_their_policy() -> None:
    from irtgate.server.deciders import load_decider

    repo = Path(__file__).resolve().parents[2]
    cfg = load_upstreams(repo / "deploy/upstreams/openai-and-vllm.yaml", {"OPENAI_API_KEY": "k"})
    assert {u.name: u.provider for u in cfg.upstreams} == {"openai": "openai", "vllm": "vllm"}
    settings = Settings(
        upstreams=cfg.upstreams,
        default_upstream=cfg.default,
        policy_path=repo / "policies/examples/openai-and-vllm.yaml",
        policy_watch=False,
    )
    assert load_decider(settings) is not None  # names only declared upstreams, right families


@pytest.mark.parametrize("command", ["serve", "up"])
def test_serve_and_up_stop_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    bad = tmp_path / "ups.yaml"
    # This gateway serves chat only; the upstream speaks messages only, and has no key.
    bad.write_text(
        "apis: [chat]\nupstreams:\n  a: {url: 'https://h/v1', provider: gemini, apis: [messages]}\n"
    )
    assert main([command, "--upstreams", str(bad), "--route", "a/m"]) == 2
    err = capsys.readouterr().err
    assert "upstreams.a.auth: provider gemini needs a key" in err
    assert "upstreams.a.apis: speaks none of the APIs in use" in err


def test_envoy_config_can_render_where_the_keys_are_not(
    good: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    (good.parent / "gemini.key").unlink()
    assert main(["envoy-config", "--upstreams", str(good)]) == 2
    assert "OPENAI_API_KEY is not set" in capsys.readouterr().err
    assert main(["envoy-config", "--upstreams", str(good), "--no-check-keys"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    names = {s["name"] for s in doc["static_resources"]["secrets"]}
    assert names == {"irtgate_key_openai", "irtgate_key_claude", "irtgate_key_gemini"}
