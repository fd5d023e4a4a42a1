"""Live calibration: onboard a model (or a reasoning budget) by asking it bank questions.

Questions are chosen one at a time by Fisher information at the current ability estimate
(:func:`irtgate.lab.irt.adaptive.fisher_gain`); up to ``concurrency`` are in flight, and each
freed slot gets the most informative question given every answer graded so far. Each answer
is graded, appended to the log and flushed before the estimate uses it. The run stops when
the standard error of the configuration's strength (its logit on an average item, ā·θ) is
below ``se_target``, or after ``max_queries`` paid questions, or when asked to stop (SIGINT:
the questions in flight are awaited and logged; a second SIGINT abandons them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from irtgate.lab.irt.adaptive import estimate_map, fisher_gain
from irtgate.lab.onboard.answer_log import AnswerLog
from irtgate.lab.onboard.bank import BankItem
from irtgate.lab.onboard.client import EndpointError, Reply, Target, ask
from irtgate.lab.onboard.grade import grade

# Standard error of the strength (logits) at which to stop: ±0.1 logit is about ±2.5 points
# of P near 0.5. With a 16-dim ability it takes more than 200 questions (about 0.2 at 200).
DEFAULT_SE_TARGET = 0.1


@dataclass(frozen=True)
class Prices:
    """USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, prompt_tokens: int, output_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


@dataclass
class Plan:
    target: Target
    items: Sequence[BankItem]
    a: np.ndarray  # (n, k) discrimination of each bank item under the router
    b: np.ndarray  # (n,) intercept
    mu0: np.ndarray  # prior mean ability
    cov0: np.ndarray  # prior covariance
    abar: np.ndarray  # mean discrimination: strength = abar·θ
    log: AnswerLog
    max_queries: int = 200
    concurrency: int = 4
    se_target: float = DEFAULT_SE_TARGET


@dataclass
class LiveResult:
    theta: np.ndarray
    cov: np.ndarray
    strength: float
    se: float
    graded: list[dict[str, Any]] = field(default_factory=list)  # log records, in order
    lost: int = 0  # paid for by a killed run, never graded
    stopped_by: str = ""  # "se", "max-queries", "bank", "interrupted"
    se_trace: list[float] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return float(np.mean([r["score"] for r in self.graded])) if self.graded else float("nan")


def output_tokens(reply: Reply) -> int | None:
    """Billed output tokens. OpenAI counts reasoning inside completion_tokens; an endpoint
    that reports more reasoning than completion tokens counts it beside them."""
    if reply.completion_tokens is None:
        return None
    r = reply.reasoning_tokens or 0
    return reply.completion_tokens + (r if r > reply.completion_tokens else 0)


def _record(item: BankItem, reply: Reply) -> dict[str, Any]:
    score, got = grade(item, reply.text)
    return {
        "id": item.id,
        "benchmark": item.benchmark,
        "score": score,
        "answer": got,
        "response": reply.text,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "reasoning_tokens": reply.reasoning_tokens,
        "output_tokens": output_tokens(reply),
        "seconds": round(reply.seconds, 3),
    }


class _State:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.index = {it.id: i for i, it in enumerate(plan.items)}
        self.available = np.ones(len(plan.items), dtype=bool)
        for item_id in plan.log.sent | set(plan.log.graded):
            if item_id in self.index:
                self.available[self.index[item_id]] = False
        self.asked: list[int] = []
        self.ys: list[float] = []
        self.theta = np.array(plan.mu0, dtype=np.float64)
        self.cov = np.array(plan.cov0, dtype=np.float64)
        self.prec0 = np.linalg.inv(plan.cov0)
        self.se_trace: list[float] = []
        for rec in plan.log.graded.values():
            if rec["id"] in self.index:
                self.asked.append(self.index[rec["id"]])
                self.ys.append(float(rec["score"]))
        if self.asked:
            self.update()

    @property
    def paid(self) -> int:
        return len(self.plan.log.sent | set(self.plan.log.graded))

    @property
    def se(self) -> float:
        ab = self.plan.abar
        return float(np.sqrt(ab @ self.cov @ ab))

    @property
    def strength(self) -> float:
        return float(self.plan.abar @ self.theta)

    def update(self) -> None:
        idx = np.array(self.asked)
        p = self.plan
        self.theta, self.cov = estimate_map(
            p.a[idx], p.b[idx], np.array(self.ys), p.mu0, self.prec0, self.theta
        )
        self.se_trace.append(self.se)

    def pick(self) -> int:
        gain = fisher_gain(self.plan.a, self.plan.b, self.theta, self.cov)
        gain[~self.available] = -np.inf
        i = int(np.argmax(gain))
        self.available[i] = False
        return i

    def why_stop(self) -> str:
        if self.asked and self.se < self.plan.se_target:
            return "se"
        if self.paid >= self.plan.max_queries:
            return "max-queries"
        if not self.available.any():
            return "bank"
        return ""


async def run_live(
    plan: Plan,
    *,
    stop: asyncio.Event | None = None,
    on_answer: Callable[[int, float, float], None] | None = None,
    session: aiohttp.ClientSession | None = None,
) -> LiveResult:
    """Calibrate ``plan.target``; ``on_answer(paid, strength, se)`` after every answer."""
    st = _State(plan)
    lost = len(plan.log.lost)
    stop = stop or asyncio.Event()
    own = session is None
    sess = session or aiohttp.ClientSession()
    in_flight: dict[asyncio.Task[Reply], int] = {}
    failure: BaseException | None = None
    try:
        while True:
            while (
                failure is None
                and not stop.is_set()
                and len(in_flight) < plan.concurrency
                and not st.why_stop()
            ):
                i = st.pick()
                plan.log.mark_sent(plan.items[i].id)
                task = asyncio.create_task(ask(sess, plan.target, plan.items[i].prompt))
                in_flight[task] = i
            if not in_flight:
                break
            done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                i = in_flight.pop(task)
                try:
                    reply = task.result()
                except (EndpointError, aiohttp.ClientError) as e:
                    failure = failure or e  # finish (and log) what is in flight, then stop
                    continue
                plan.log.add_graded(_record(plan.items[i], reply))
                st.asked.append(i)
                st.ys.append(float(plan.log.graded[plan.items[i].id]["score"]))
            if st.asked:
                st.update()
            if on_answer is not None:
                on_answer(st.paid, st.strength, st.se)
    finally:
        for task in in_flight:
            task.cancel()  # only on a second interrupt: these were paid for and are lost
        if own:
            await sess.close()
    if failure is not None:
        raise failure
    graded = [plan.log.graded[plan.items[i].id] for i in st.asked]
    return LiveResult(
        theta=st.theta,
        cov=st.cov,
        strength=st.strength,
        se=st.se,
        graded=graded,
        lost=lost,
        stopped_by="interrupted" if stop.is_set() else st.why_stop(),
        se_trace=st.se_trace,
    )


def _mean(xs: Sequence[int | None]) -> float | None:
    known = [x for x in xs if x is not None]
    return round(float(np.mean(known)), 1) if known and len(known) == len(xs) else None


def summary(
    res: LiveResult, target: Target, prices: Prices | None
) -> tuple[dict[str, Any], float | None]:
    """The card's calibration record and the configuration's expected cost (None: unknown)."""
    g = res.graded
    pt = [r.get("prompt_tokens") for r in g]
    ot = [r.get("output_tokens") for r in g]
    tokens = {
        "prompt_mean": _mean(pt),
        "output_mean": _mean(ot),
        "reasoning_mean": _mean([r.get("reasoning_tokens") or 0 for r in g]),
    }
    cost: float | None = None
    note = "no prices given (--price-in/--price-out): cost unknown"
    if prices is not None:
        if all(x is not None for x in pt + ot):
            per = [prices.cost(int(p or 0), int(o or 0)) for p, o in zip(pt, ot, strict=True)]
            cost = float(f"{float(np.mean(per)):.6g}")
            note = "mean over the questions asked, from the endpoint's usage"
        else:
            note = "the endpoint did not report usage for every answer: cost unknown"
    by_bench: dict[str, list[float]] = {}
    for r in g:
        by_bench.setdefault(str(r.get("benchmark")), []).append(float(r["score"]))
    rec: dict[str, Any] = {
        "mode": "live",
        "endpoint_host": target.host,
        "model": target.entry.model,
        "questions": len(g),
        "lost_questions": res.lost,
        "stopped_by": res.stopped_by,
        "strength": round(res.strength, 4),
        "se": round(res.se, 4),
        "posterior_sd": round(float(np.sqrt(np.trace(res.cov) / res.cov.shape[0])), 4),
        "accuracy_on_asked": {b: round(float(np.mean(v)), 4) for b, v in sorted(by_bench.items())},
        "tokens_per_query": tokens,
        "cost_per_query": cost,
        "cost_note": note,
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if prices is not None:
        rec["prices_usd_per_mtok"] = {
            "input": prices.input_per_mtok,
            "output": prices.output_per_mtok,
        }
    return rec, cost
