"""``irtgate calibrate`` in live mode: from a router and an endpoint to a router with one
more configuration, its P measured on bank questions and its cost from the endpoint's usage.

The output directory holds the extended router (``heads.onnx``, ``router.yaml``) and the
calibration log (``calibration-<name>.jsonl``); rerunning the same command resumes from it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irtgate.lab.irt.adaptive import (
    AdaptiveError,
    add_configuration,
    card_abilities,
    mean_discrimination,
    prior_from,
)
from irtgate.lab.onboard.answer_log import AnswerLog
from irtgate.lab.onboard.bank import bank_digest, bank_params, load_bank
from irtgate.lab.onboard.client import EndpointError, Target, make_entry, request_body
from irtgate.lab.onboard.live import DEFAULT_SE_TARGET, LiveResult, Plan, Prices, run_live, summary
from irtgate.signals.irt.card import file_sha256
from irtgate.signals.irt.runtime import HEADS_FILE


@dataclass(frozen=True)
class LiveSettings:
    router: Path
    name: str
    endpoint: str
    model: str
    out: Path
    budget: str | None = None
    family: str | None = None
    api_key_env: str | None = None
    bank: Path | None = None
    max_queries: int = 200
    concurrency: int = 4
    prices: Prices | None = None
    se_target: float = DEFAULT_SE_TARGET


class Interrupted(RuntimeError):
    """The run was stopped by a signal; the log holds every answer graded so far."""


def log_path(out: Path, name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
    return out / f"calibration-{safe}.jsonl"


def _check(s: LiveSettings) -> None:
    if not s.endpoint.startswith(("http://", "https://")):
        raise AdaptiveError(f"--endpoint must be an http(s) base URL, got {s.endpoint!r}")
    if s.max_queries < 1:
        raise AdaptiveError("--max-queries must be at least 1")
    if s.concurrency < 1:
        raise AdaptiveError("--concurrency must be at least 1")
    if s.out.resolve() == s.router.resolve():
        raise AdaptiveError("--out must differ from --router (the router is copied, not edited)")


def calibrate_live(
    s: LiveSettings,
    *,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> LiveResult:
    """Run a live calibration; write the extended router unless interrupted."""
    from irtgate.signals.irt.runtime import IRTRouter

    _check(s)
    api_key = None
    if s.api_key_env:
        api_key = os.environ.get(s.api_key_env)
        if not api_key:
            raise AdaptiveError(f"--api-key-env {s.api_key_env}: that variable is not set")
    try:
        entry = make_entry(s.name, s.model, s.family, s.budget)
    except ValueError as e:
        raise AdaptiveError(f"--family/--budget: {e}") from e
    target = Target(s.endpoint, entry, api_key)
    try:
        request_body(target, "")  # a budget the family cannot send is refused before any cost
    except EndpointError as e:
        raise AdaptiveError(f"--family/--budget: {e}") from e
    router = IRTRouter.load(s.router)
    if s.name in router.configs:
        raise AdaptiveError(f"the router already has a configuration {s.name!r}")
    items = load_bank(s.bank)
    a, b, how = bank_params(router, items)
    abilities = card_abilities(router.card)
    mu0, cov0 = prior_from(abilities)
    abar = mean_discrimination(router.card)
    if abar is None:
        abar = a.mean(axis=0)
    header = {
        "name": s.name,
        "model": s.model,
        "family": entry.family,
        "budget": entry.budget,
        "endpoint_host": target.host,
        "bank": bank_digest(items),
        "router": file_sha256(s.router / HEADS_FILE)[:16],
    }
    answers = AnswerLog.open(log_path(s.out, s.name), header)
    try:
        if answers.graded or answers.sent:
            lost = f", {len(answers.lost)} lost in flight (not asked again)"
            log(
                f"resuming from {answers.path.name}: {len(answers.graded)} answers graded"
                + (lost if answers.lost else "")
            )
        plan = Plan(
            target=target,
            items=items,
            a=a,
            b=b,
            mu0=mu0,
            cov0=cov0,
            abar=abar,
            log=answers,
            max_queries=s.max_queries,
            concurrency=s.concurrency,
            se_target=s.se_target,
        )
        log(f"{len(items)} bank questions, item parameters {how}; asking {target.host}")
        res = _run(plan, progress)
    finally:
        answers.close()
    if res.stopped_by == "interrupted":
        raise Interrupted(
            f"interrupted after {len(res.graded)} answers; rerun the same command to resume"
        )
    if not res.graded:
        raise AdaptiveError("no question was answered")
    record, cost = summary(res, target, s.prices)
    record["bank"] = s.bank.name if s.bank else "shipped"
    record["log"] = answers.path.name
    fields: dict[str, Any] = {"model": s.model, "family": entry.family}
    if entry.budget is not None:
        fields["budget"] = entry.budget
    add_configuration(s.router, s.out, s.name, res.theta, cost, record, fields)
    log(f"wrote {s.out}")
    return res


def _run(plan: Plan, progress: bool) -> LiveResult:
    async def main() -> LiveResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        presses = [0]

        def on_signal() -> None:
            presses[0] += 1
            if presses[0] == 1:
                stop.set()  # finish and log what is in flight
            elif task is not None:
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        bar = _bar(plan) if progress else None
        try:

            def on_answer(paid: int, strength: float, se: float) -> None:
                if bar is not None:
                    bar.n = paid
                    bar.set_postfix_str(f"strength {strength:+.3f} ± {se:.3f}")

            return await run_live(plan, stop=stop, on_answer=on_answer)
        finally:
            if bar is not None:
                bar.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError as e:  # a second interrupt: the questions in flight are lost
        raise Interrupted(
            "interrupted twice: the answers in flight were abandoned (they will not be asked "
            "again); rerun the same command to resume"
        ) from e


def _bar(plan: Plan) -> Any:
    from tqdm import tqdm

    paid = len(plan.log.sent | set(plan.log.graded))
    return tqdm(total=plan.max_queries, initial=paid, desc=plan.target.entry.name, unit="q")
