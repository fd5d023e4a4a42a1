"""Live calibration against the stand-in endpoint: budgets, cost from usage, resume after a
kill, graceful interrupt, endpoint errors. Runs on a fresh clone (shipped router and bank)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from irtgate.lab.onboard.answer_log import LogError
from irtgate.lab.onboard.bank import BankItem, load_bank
from irtgate.lab.onboard.calibrate import LiveSettings, calibrate_live, log_path
from irtgate.lab.onboard.client import EndpointError
from irtgate.lab.onboard.live import Prices
from irtgate.lab.onboard.standin import Recorded, StandIn, _draw, serve_in_thread
from irtgate.server.cli import main
from irtgate.signals.irt.runtime import DEFAULT_ROUTER_DIR, IRTRouter

REPO = Path(__file__).resolve().parents[2]
BANK = load_bank()


def _model(p_arc: float, p_gsm: float, salt: str) -> Recorded:
    """A recorded model: right on a fixed share of each benchmark's items."""
    p = {"arc-challenge": p_arc, "gsm8k": p_gsm}
    return Recorded({it.id: float(_draw(salt, it.id) < p[it.benchmark]) for it in BANK})


def _settings(url: str, out: Path, **kw: object) -> LiveSettings:
    base: dict[str, object] = {
        "router": DEFAULT_ROUTER_DIR,
        "name": "new@low",
        "endpoint": url,
        "model": "new",
        "out": out,
        "budget": "low",
        "family": "openai",
        "max_queries": 24,
        "concurrency": 4,
    }
    return LiveSettings(**(base | kw))  # type: ignore[arg-type]


def _log(out: Path, name: str) -> list[dict[str, object]]:
    lines = log_path(out, name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_budget_configurations_get_their_own_p_and_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_KEY", "sk-secret-123")
    standin = StandIn(
        BANK,
        {("new", "low"): _model(0.5, 0.2, "low"), ("new", "high"): _model(0.95, 0.9, "high")},
        api_key="sk-secret-123",
        fail_every=5,  # 429s and 503s now and then: retried
    )
    prices = Prices(input_per_mtok=2.0, output_per_mtok=8.0)
    low, both = tmp_path / "low", tmp_path / "both"
    with serve_in_thread(standin) as url:
        s = _settings(url, low, api_key_env="STANDIN_KEY", prices=prices)
        r_low = calibrate_live(s, log=lambda _: None, progress=False)
        s = _settings(
            url,
            both,
            router=low,
            name="new@high",
            budget="high",
            api_key_env="STANDIN_KEY",
            prices=prices,
        )
        r_high = calibrate_live(s, log=lambda _: None, progress=False)
    assert standin.asked_twice() == []
    assert len(r_low.graded) == len(r_high.graded) == 24
    assert r_high.strength > r_low.strength + 0.3
    card = yaml.safe_load((both / "router.yaml").read_text())
    cfgs = {c["name"]: c for c in card["configurations"]}
    for name, out in (("new@low", low), ("new@high", both)):
        c = cfgs[name]
        cal = c["calibration"]
        assert (c["model"], c["family"], c["budget"]) == ("new", "openai", name.split("@")[1])
        assert cal["questions"] == 24 and cal["endpoint_host"].startswith("127.0.0.1:")
        # The cost is the mean of what the endpoint's usage says, at the given prices.
        recs = [r for r in _log(out, name) if r["kind"] == "graded"]
        want = np.mean([(2.0 * r["prompt_tokens"] + 8.0 * r["output_tokens"]) / 1e6 for r in recs])  # type: ignore[operator]
        assert c["expected_cost"] == pytest.approx(want, rel=1e-4)
        assert all(r["output_tokens"] == r["completion_tokens"] for r in recs)
    assert cfgs["new@high"]["expected_cost"] > 2 * cfgs["new@low"]["expected_cost"]
    for f in both.iterdir():
        assert "sk-secret-123" not in f.read_text(encoding="utf-8", errors="replace")
    # The router loads, routes, and tells the two budgets apart.
    router = IRTRouter.load(both)
    x = np.zeros((1, router.dim), dtype=np.float32)
    x[0, :8] = 0.1
    pred = router.score(x)
    assert pred.p["new@high"] > pred.p["new@low"]
    assert router.expected_cost["new@high"] == cfgs["new@high"]["expected_cost"]


def test_without_prices_the_cost_is_unknown_and_the_router_still_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standin = StandIn(BANK, {("new", None): _model(0.7, 0.4, "x")})
    out = tmp_path / "out"
    with serve_in_thread(standin) as url:
        argv = [
            "calibrate",
            "--router",
            str(DEFAULT_ROUTER_DIR),
            "--name",
            "plain",
            "--endpoint",
            url,
            "--model",
            "new",
            "--out",
            str(out),
            "--max-queries",
            "12",
        ]
        assert main(argv) == 0
    assert "plain: 12 questions (stopped by max-queries)" in capsys.readouterr().out
    card = yaml.safe_load((out / "router.yaml").read_text())
    new = card["configurations"][-1]
    assert new["expected_cost"] is None and new["family"] == "none"
    assert "cost unknown" in new["calibration"]["cost_note"]
    assert new["calibration"]["tokens_per_query"]["output_mean"] == 40.0
    assert main(["route", "What is 17 times 23?", "--router", str(out)]) == 0
    assert "plain" in capsys.readouterr().out
    assert main(["router", "show", str(out)]) == 0
    assert "calibrated without retraining" in capsys.readouterr().out


def _cli(url: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "irtgate.server.cli",
        "calibrate",
        "--router",
        str(DEFAULT_ROUTER_DIR),
        "--name",
        "slow",
        "--endpoint",
        url,
        "--model",
        "new",
        "--out",
        str(out),
        "--max-queries",
        "40",
        "--concurrency",
        "3",
    ]


def _run_until(argv: list[str], out: Path, graded: int, sig: int) -> int:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            lp = log_path(out, "slow")
            if lp.is_file() and sum(r["kind"] == "graded" for r in _log(out, "slow")) >= graded:
                break
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
            time.sleep(0.05)
        proc.send_signal(sig)
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_calibration_resumes_without_asking_a_question_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sig: int
) -> None:
    standin = StandIn(BANK, {("new", None): _model(0.7, 0.4, "slow")}, delay=0.05)
    out = tmp_path / "out"
    with serve_in_thread(standin) as url:
        rc = _run_until(_cli(url, out), out, graded=8, sig=sig)
        first = _log(out, "slow")
        sent = {r["id"] for r in first if r["kind"] == "sent"}
        graded = {r["id"] for r in first if r["kind"] == "graded"}
        if sig == signal.SIGINT:
            # Ctrl-C: what was in flight is awaited and logged; nothing paid for is lost.
            assert rc == 130 and sent == graded
        assert 8 <= len(graded) < 40 and not (out / "router.yaml").exists()
        assert main(_cli(url, out)[3:]) == 0
    assert standin.asked_twice() == []
    log = _log(out, "slow")
    assert len({r["id"] for r in log if r["kind"] == "sent"}) == 40
    card = yaml.safe_load((out / "router.yaml").read_text())
    cal = card["configurations"][-1]["calibration"]
    assert cal["questions"] + cal["lost_questions"] == 40
    assert cal["lost_questions"] == len(sent - graded)
    # A question killed in flight may or may not have reached the model; none was repeated.
    assert cal["questions"] <= sum(standin.answered.values()) <= 40


def test_endpoint_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    standin = StandIn(BANK, {("new", "low"): _model(0.7, 0.4, "e")}, api_key="right")
    monkeypatch.setenv("WRONG_KEY", "wrong")
    with serve_in_thread(standin) as url:
        s = _settings(url, tmp_path / "a", api_key_env="WRONG_KEY")
        with pytest.raises(EndpointError, match="HTTP 401"):
            calibrate_live(s, log=lambda _: None, progress=False)
        # A rerun into the same directory for another model is refused, not mixed in.
        s = _settings(url, tmp_path / "a", model="other", api_key_env="WRONG_KEY")
        with pytest.raises(LogError, match="another calibration"):
            calibrate_live(s, log=lambda _: None, progress=False)
    argv = [
        "calibrate",
        "--router",
        str(DEFAULT_ROUTER_DIR),
        "--name",
        "x",
        "--model",
        "m",
        "--out",
        str(tmp_path / "b"),
    ]
    assert main(argv) == 2
    assert (
        main(
            [*argv, "--endpoint", "http://127.0.0.1:9/v1", "--family", "openai", "--budget", "9000"]
        )
        == 2
    )
    assert main([*argv, "--endpoint", "http://127.0.0.1:9/v1", "--price-in", "1"]) == 2


def test_user_bank_in_the_same_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the embedding cache goes under ./.cache
    src = [it for it in BANK if it.benchmark == "gsm8k"][:30]
    # New ids: the shipped parameters do not cover them, so they are computed.
    mine = [BankItem(f"my-{it.id}", "mine", it.prompt, it.answer, "number") for it in src]
    bank = tmp_path / "bank.jsonl"
    bank.write_text(
        "".join(
            json.dumps(
                {
                    "id": it.id,
                    "benchmark": "mine",
                    "prompt": it.prompt,
                    "answer": it.answer,
                    "answer_type": "number",
                }
            )
            + "\n"
            for it in mine
        )
    )
    standin = StandIn(mine, {("new", None): _model(0.6, 0.6, "b")})
    with serve_in_thread(standin) as url:
        s = _settings(url, tmp_path / "out", budget=None, family=None, bank=bank, max_queries=10)
        res = calibrate_live(s, log=lambda _: None, progress=False)
    assert {r["benchmark"] for r in res.graded} == {"mine"}
    assert {r["id"] for r in res.graded} <= {it.id for it in mine}
