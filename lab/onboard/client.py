"""Asking an OpenAI-compatible endpoint one bank question, as the gateway would send it.

The reasoning budget is written by the gateway's own translator
(:func:`irtgate.plugins.reasoning.translate`), so a configuration calibrated here is asked
exactly the way production will ask it; a family with no budget field on the Chat API is
refused rather than calibrated without its budget. 429 and 5xx replies (and dropped connections) are
retried with exponential back-off and jitter, honouring ``Retry-After``; any other error
stops the calibration with the endpoint's message.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from irtgate.plugins.reasoning import translate
from irtgate.policies.spec import CatalogEntry
from irtgate.signals.request import ApiKind

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class EndpointError(RuntimeError):
    """The endpoint refused a question for a reason retrying will not fix, or kept failing."""


@dataclass(frozen=True)
class Target:
    """What is being calibrated: a model behind an endpoint, at a reasoning budget."""

    endpoint: str  # base URL, e.g. http://127.0.0.1:8000/v1
    entry: CatalogEntry  # model, family and budget, validated as a catalog entry is
    api_key: str | None = None

    @property
    def url(self) -> str:
        return self.endpoint.rstrip("/") + "/chat/completions"

    @property
    def host(self) -> str:
        """The endpoint's host and port, for the card (never the key, path or query)."""
        parts = urlsplit(self.endpoint)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else ""


def make_entry(name: str, model: str, family: str | None, budget: str | None) -> CatalogEntry:
    """A catalog entry for the target; a numeric budget becomes tokens, as in a policy."""
    b: str | int | None = budget
    if budget is not None and budget.strip().isdigit():
        b = int(budget)
    fam = family or ("none" if budget is None else "openai")
    return CatalogEntry.model_validate(
        {"name": name, "model": model, "upstream": "calibration", "family": fam, "budget": b}
    )


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    seconds: float


def request_body(target: Target, prompt: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": target.entry.model,
        "messages": [{"role": "user", "content": prompt}],
    }
    written = translate(body, ApiKind.CHAT, target.entry.family, target.entry.budget)
    if target.entry.budget is not None and not written:
        raise EndpointError(
            f"family {target.entry.family!r} has no budget field on the Chat Completions API"
        )
    return body


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def parse_reply(data: Any, seconds: float) -> Reply:
    try:
        msg = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise EndpointError(f"the endpoint's reply has no choices[0].message ({e})") from e
    text = msg.get("content") if isinstance(msg, dict) else None
    usage = data.get("usage") if isinstance(data, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("completion_tokens_details")
    reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else None
    if reasoning is None:
        reasoning = _int(usage.get("reasoning_tokens"))
    return Reply(
        text=text if isinstance(text, str) else "",
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        reasoning_tokens=reasoning,
        seconds=seconds,
    )


async def ask(
    session: aiohttp.ClientSession,
    target: Target,
    prompt: str,
    *,
    attempts: int = 8,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    seconds: float = 600.0,
) -> Reply:
    """One question; retried on 429, 5xx and connection errors."""
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    body = request_body(target, prompt)
    loop = asyncio.get_running_loop()
    last = ""
    for attempt in range(attempts):
        started = loop.time()
        wait = min(max_backoff, backoff * 2**attempt) * (0.5 + random.random())
        try:
            async with session.post(
                target.url,
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as resp:
                if resp.status == 200:
                    return parse_reply(await resp.json(content_type=None), loop.time() - started)
                detail = (await resp.text())[:300]
                last = f"HTTP {resp.status}: {detail}"
                if resp.status not in RETRY_STATUSES:
                    raise EndpointError(f"{target.url} answered {last}")
                after = resp.headers.get("Retry-After", "")
                if after.replace(".", "", 1).isdigit():
                    wait = min(max_backoff, float(after))
        except (aiohttp.ClientConnectionError, TimeoutError) as e:
            last = f"{type(e).__name__}: {e}"
        if attempt + 1 < attempts:
            await asyncio.sleep(wait)
    raise EndpointError(f"{target.url} kept failing after {attempts} attempts ({last})")
