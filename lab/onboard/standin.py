"""A stand-in OpenAI-compatible endpoint that answers bank questions as a recorded model did.

For tests and the onboarding benchmark: ``POST /v1/chat/completions`` finds the bank item by
its prompt and answers in the kind of prose real models write ("The answer is (B).",
``#### 42``, ``\\boxed{42}``, a number restated after it is given): the gold answer where the
recorded model scored 1, a wrong one where it scored 0 (a fractional score is the chance of
being right, drawn once per item so a repeat gets the same answer). Each configuration is a
model name and a reasoning budget (read from the body the way the gateway writes it:
``reasoning_effort``, ``thinking.budget_tokens``, ``thinking_token_budget``); the reasoning
tokens it reports grow with the budget. It counts the questions it answered, so a test can
check that none was asked twice, and can be told to fail with 429/503 now and then.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from irtgate.lab.onboard.bank import BankItem

# Reasoning tokens per answer, before per-item variation, for the budgets the gateway writes.
EFFORT_TOKENS = {"none": 0, "minimal": 0, "low": 300, "medium": 1200, "high": 3000}
ANSWER_TOKENS = 40


@dataclass(frozen=True)
class Recorded:
    """How one configuration answers: item id -> score in [0, 1]; ``base`` for unknown items."""

    scores: Mapping[str, float]
    base: float = 0.5
    # Output tokens per item where the record says what the answer cost (else by budget).
    output_tokens: Mapping[str, int] = field(default_factory=dict)


@dataclass
class StandIn:
    bank: Sequence[BankItem]
    # (model, budget as the body carried it, or None) -> recorded behaviour
    configs: Mapping[tuple[str, str | None], Recorded]
    api_key: str | None = None
    fail_every: int = 0  # every n-th request gets a 429 or 503 (0: never)
    delay: float = 0.0  # seconds before each answer, like a model thinking
    answered: Counter[tuple[str, str]] = field(default_factory=Counter)  # (config, id)
    requests: int = 0

    def __post_init__(self) -> None:
        self._by_prompt = {it.prompt: it for it in self.bank}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _error(401, "invalid api key")
        if self.fail_every and self.requests % self.fail_every == 0:
            status = 429 if (self.requests // self.fail_every) % 2 else 503
            return _error(status, "try again", retry_after=True)
        body = await request.json()
        model = body.get("model")
        budget = _budget_of(body)
        rec = self.configs.get((model, budget))
        if rec is None:
            return _error(404, f"no configuration {model!r} at budget {budget!r}")
        msgs = body.get("messages") or [{}]
        item = self._by_prompt.get(str(msgs[-1].get("content", "")))
        if item is None:
            return _error(400, "not a bank question")
        cfg = f"{model}@{budget}"
        if self.delay:
            await asyncio.sleep(self.delay)
        self.answered[(cfg, item.id)] += 1
        score = rec.scores.get(item.id, rec.base)
        right = _draw(cfg, item.id) < score
        text = _reply(item, right, _draw("style", item.id))
        reasoning = _reasoning_tokens(budget, item.id)
        completion = rec.output_tokens.get(item.id, ANSWER_TOKENS + reasoning)
        prompt_tokens = max(1, len(item.prompt) // 4)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        return web.json_response(
            {
                "id": f"cmpl-{item.id}",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": usage,
            }
        )

    def asked_twice(self) -> list[tuple[str, str]]:
        return [k for k, n in self.answered.items() if n > 1]


def _error(status: int, msg: str, retry_after: bool = False) -> web.Response:
    headers = {"Retry-After": "0"} if retry_after else None
    return web.json_response(
        {"error": {"message": msg, "type": "invalid_request_error"}}, status=status, headers=headers
    )


def _budget_of(body: Mapping[str, Any]) -> str | None:
    if isinstance(body.get("reasoning_effort"), str):
        return str(body["reasoning_effort"])
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping) and "budget_tokens" in thinking:
        return str(thinking["budget_tokens"])
    if "thinking_token_budget" in body:
        return str(body["thinking_token_budget"])
    return None


def _draw(*parts: str) -> float:
    """A number in [0, 1) fixed by its inputs: the same question gets the same answer."""
    h = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _reasoning_tokens(budget: str | None, item_id: str) -> int:
    if budget is None:
        return 0
    base = EFFORT_TOKENS.get(budget)
    if base is None:
        base = int(int(budget) * 0.6) if budget.isdigit() else 0
    return int(base * (0.5 + _draw("tokens", item_id)))


def _wrong(item: BankItem) -> str:
    if item.answer_type == "choice":
        i = item.choices.index(item.answer)
        return item.choices[(i + 1) % len(item.choices)]
    gold = float(item.answer)
    return f"{int(gold) + 1}" if gold.is_integer() else f"{gold + 1:g}"


def _reply(item: BankItem, right: bool, style: float) -> str:
    ans = item.answer if right else _wrong(item)
    if item.answer_type == "choice":
        forms = [
            f"{ans}",
            f"The answer is ({ans}).",
            f"{ans}) because the other options do not fit the question.",
            f"Let me think. Option A is unlikely. The correct answer is {ans}.",
            f"**{ans}**",
        ]
    else:
        n = float(ans)
        shown = f"{int(n):,}" if n.is_integer() else f"{n:g}"
        forms = [
            f"Step by step: we combine the quantities.\n#### {ans}",
            f"Adding it up gives \\boxed{{{ans}}}.",
            f"The answer is {shown}. That is {shown} in total, after 2 steps.",
            f"So the total comes to ${shown}.00.",
            f"First we find 3 parts, then the rest. The result is {shown} (from 2 + 1 steps).",
        ]
    return forms[int(style * len(forms))]


@contextmanager
def serve_in_thread(standin: StandIn, host: str = "127.0.0.1") -> Iterator[str]:
    """Run the stand-in on a free port in a background thread; yields its base URL (``/v1``)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(standin.app(), access_log=None)
    ready = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port.append(int(runner.addresses[0][1]))
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the stand-in endpoint did not start")
    try:
        yield f"http://{host}:{port[0]}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
