"""The one reasoning-budget translator: a table of provider families, and per family and API
the fields a budget is written in.

Everything that names a budget goes through here: the policy engine (the ``budget`` plugin,
always last in a chain), the static decider (:func:`irtgate.server.rewrite.apply_choice`),
and validation (the policy schema and the static ``--route`` take the families and the
budgets each accepts from :data:`FAMILIES`), so what validates is exactly what translates.

A *family* is the dialect the upstream speaks; the *API* is the shape the client sent, which
the upstream receives unchanged (irtgate never converts one API into another). A *budget* is a
label: a level word (``none`` ... ``xhigh``), a family's own word (``on``/``off``), or a number
of tokens (an int, or a string of digits: labels travel as strings in headers and choices).

Every reasoning field irtgate knows (:data:`KNOWN`) that the chosen family does not own in
that API is removed, so a model never receives a parameter it does not accept. With no
budget, the family's own fields from the client pass as they are. Where a family has no
budget field in an API (``-`` below) nothing is written and :func:`translate` says so.

==============  ========================  ===================================================
family          budgets                   Chat / Responses / Messages
==============  ========================  ===================================================
``none``        none allowed              nothing; every known reasoning field is removed
``native``      level words               OpenAI's on Chat and Responses, Anthropic's on
                                          Messages (an upstream that speaks each API natively)
``openai``      level words               ``reasoning_effort`` / ``reasoning.effort`` / -
``anthropic``   level words, tokens>=1024 ``thinking`` (+ output cap) / - / ``thinking``
``deepseek``    on/off, level words,      ``thinking.type`` / ``reasoning.effort`` /
                tokens >= 1 (all "on")    ``thinking.type``
``gemini``      none...high, tokens >= 1  ``reasoning_effort`` or ``extra_body.google.
                                          thinking_config.thinking_budget`` / - / -
``qwen``        on/off, tokens >= 1       ``chat_template_kwargs.enable_thinking`` (+ vLLM's
                                          ``thinking_token_budget``) / ``reasoning.effort`` / -
``max_tokens``  tokens >= 1               the output cap, in every API
==============  ========================  ===================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from irtgate.signals.request import ApiKind

CHAT, RESPONSES, MESSAGES = ApiKind.CHAT, ApiKind.RESPONSES, ApiKind.MESSAGES
ALL_APIS: Final = (CHAT, RESPONSES, MESSAGES)

# The shared vocabulary, least to most thinking. "none" and "xhigh" are OpenAI's own words
# (the GPT-5 family); the others are older OpenAI efforts.
LEVELS: Final = ("none", "minimal", "low", "medium", "high", "xhigh")
# A level word as a token count, for providers that take tokens (Anthropic's budget_tokens).
# Round figures from Anthropic's documented minimum (1024), each step about doubling.
LEVEL_TOKENS: Final[Mapping[str, int]] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
}
# Room for the visible answer above an Anthropic thinking budget.
ANTHROPIC_ANSWER_TOKENS: Final = 1024

Path = tuple[str, ...]
EFFORT: Final[Path] = ("reasoning_effort",)
REASONING: Final[Path] = ("reasoning",)
THINKING: Final[Path] = ("thinking",)
QWEN_SWITCH: Final[Path] = ("chat_template_kwargs", "enable_thinking")
QWEN_TEMPLATE_BUDGET: Final[Path] = ("chat_template_kwargs", "thinking_budget")
VLLM_BUDGET: Final[Path] = ("thinking_token_budget",)
GEMINI_CONFIG: Final[Path] = ("extra_body", "google", "thinking_config")
GEMINI_BUDGET: Final[Path] = (*GEMINI_CONFIG, "thinking_budget")
# Every reasoning field of every family: what a family does not own is removed.
KNOWN: Final = (EFFORT, REASONING, THINKING, QWEN_SWITCH, QWEN_TEMPLATE_BUDGET, VLLM_BUDGET,
                GEMINI_CONFIG)  # fmt: skip

Value = str | int  # a checked budget: a word, or a number of tokens
Writer = Callable[[dict[str, Any], ApiKind, Value], None]


class BudgetError(ValueError):
    """A family or budget the translator does not know; the message says what it takes."""


# --- Editing nested fields without touching the client's objects --------------------------
# A plugin's body is a shallow copy of the request's: nested objects are rebuilt, never
# edited in place.


def _get(body: Mapping[str, Any], path: Path) -> Any:
    cur: Any = body
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def _with(obj: Any, path: Path, value: Any) -> dict[str, Any]:
    out = dict(obj) if isinstance(obj, dict) else {}
    head, rest = path[0], path[1:]
    out[head] = _with(out.get(head), rest, value) if rest else value
    return out


def _set(body: dict[str, Any], path: Path, value: Any) -> None:
    head, rest = path[0], path[1:]
    body[head] = _with(body.get(head), rest, value) if rest else value


def _without(obj: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """``obj`` without ``path`` (objects left empty go too), or None if it has no such path."""
    head, rest = path[0], path[1:]
    if head not in obj:
        return None
    out = dict(obj)
    if rest:
        child = obj[head]
        inner = _without(child, rest) if isinstance(child, dict) else None
        if inner is None:
            return None
        if inner:
            out[head] = inner
            return out
    del out[head]
    return out


def _remove(body: dict[str, Any], path: Path) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        body.pop(head, None)
        return
    child = body.get(head)
    inner = _without(child, rest) if isinstance(child, dict) else None
    if inner:
        body[head] = inner
    elif inner is not None:
        del body[head]


def _output_cap(body: Mapping[str, Any], api: ApiKind) -> tuple[str, int | None]:
    """The field that caps the output in ``api``, and the client's cap if it set one."""
    if api is RESPONSES:
        field = "max_output_tokens"
    elif api is CHAT and "max_completion_tokens" in body:
        field = "max_completion_tokens"
    else:
        field = "max_tokens"
    cap = body.get(field)
    ok = isinstance(cap, int) and not isinstance(cap, bool) and cap > 0
    return field, cap if ok else None


# --- The writers: one per family, called only for the APIs listed in its table row --------


def _openai(body: dict[str, Any], api: ApiKind, v: Value) -> None:
    # OpenAI's effort word as is: Chat's top-level field, the Responses' reasoning object
    # (its other keys, e.g. summary, are the client's and kept).
    if api is RESPONSES:
        _set(body, ("reasoning", "effort"), v)
    else:
        body["reasoning_effort"] = v


def _anthropic(body: dict[str, Any], api: ApiKind, v: Value) -> None:
    # Messages, and Anthropic's OpenAI-compatible Chat endpoint, which takes the same
    # `thinking` object. "none" is said explicitly: some models think unless told not to.
    if v == "none":
        body["thinking"] = {"type": "disabled"}
        return
    n = v if isinstance(v, int) else LEVEL_TOKENS[v]
    body["thinking"] = {"type": "enabled", "budget_tokens": n}
    # Anthropic rejects a max_tokens not above budget_tokens: the client's cap is kept for
    # the answer and the thinking budget added below it.
    field, cap = _output_cap(body, api)
    if cap is None or cap <= n:
        body[field] = n + (cap or ANTHROPIC_ANSWER_TOKENS)


def _deepseek(body: dict[str, Any], api: ApiKind, v: Value) -> None:
    # DeepSeek's thinking switch (https://api-docs.deepseek.com/guides/thinking_mode): Chat
    # and its Anthropic-format endpoint take `thinking: {"type": "enabled" | "disabled"}`;
    # its Responses format has only `reasoning.effort`, where "none" turns thinking off.
    # A switch, not a dial: every budget but none/off means "on" at DeepSeek's own effort,
    # so the client's effort is kept, and "high" (DeepSeek's default) fills in for none.
    on = v not in ("none", "off")
    if api is not RESPONSES:
        body["thinking"] = {"type": "enabled" if on else "disabled"}
        return
    effort = _get(body, ("reasoning", "effort"))
    if not on:
        effort = "none"
    elif effort in (None, "none"):
        effort = "high"
    _set(body, ("reasoning", "effort"), effort)


def _gemini(body: dict[str, Any], api: ApiKind, v: Value) -> None:
    # Gemini's OpenAI-compatible endpoint (https://ai.google.dev/gemini-api/docs/openai):
    # `reasoning_effort` (Google maps low/medium/high to 1K/8K/24K thinking tokens, "none"
    # turns thinking off where the model allows it), or an exact token budget in the body's
    # `extra_body: {google: {thinking_config: {thinking_budget: N}}}`. The two overlap and
    # Google refuses both at once, so writing one removes the other (other thinking_config
    # keys, e.g. include_thoughts, are the client's and kept).
    if isinstance(v, int):
        body.pop("reasoning_effort", None)
        _set(body, GEMINI_BUDGET, v)
    else:
        _remove(body, GEMINI_BUDGET)
        body["reasoning_effort"] = v


def _qwen(body: dict[str, Any], api: ApiKind, v: Value) -> None:
    # vLLM / SGLang serving Qwen-style templates. Chat: the template switch, plus vLLM's
    # thinking_token_budget for a number (a template without it ignores it); the configured
    # budget replaces the client's. vLLM's Responses endpoint builds the switch from
    # reasoning.effort ("none" off, medium/high on) and has no token budget.
    on = v != "off"
    if api is RESPONSES:
        _set(body, ("reasoning", "effort"), "medium" if on else "none")
        return
    _remove(body, QWEN_TEMPLATE_BUDGET)
    _remove(body, VLLM_BUDGET)
    _set(body, QWEN_SWITCH, on)
    if isinstance(v, int):
        body["thinking_token_budget"] = v


def _max_tokens(body: dict[str, Any], api: ApiKind, v: Value) -> None:
    # No reasoning control: the budget caps the output instead, never raising the client's.
    field, cap = _output_cap(body, api)
    body[field] = v if cap is None or not isinstance(v, int) else min(cap, v)


# --- The table ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Family:
    """One provider family: the budgets it accepts and, per API, its fields and writer."""

    name: str
    words: tuple[str, ...]  # the budget words it accepts
    min_tokens: int | None  # the least token count it accepts; None: no token counts
    tokens_mean: str  # what a token count is to it, for messages
    owns: Mapping[ApiKind, tuple[Path, ...]]  # its fields: kept from the client
    writers: Mapping[ApiKind, Writer]  # the APIs it has a budget field in

    @property
    def accepts(self) -> str:
        """The budgets it takes, in words (errors, the schema, the docs)."""
        if not self.words and self.min_tokens is None:
            return "no budget"
        parts = [f"one of {', '.join(self.words)}"] if self.words else []
        if self.min_tokens is not None:
            parts.append(f"{self.tokens_mean}: an integer >= {self.min_tokens}")
        return ", or ".join(parts)

    def check(self, budget: object) -> Value:
        """``budget`` as this family takes it; :class:`BudgetError` if it does not."""
        if isinstance(budget, str) and budget.isascii() and budget.isdigit():
            budget = int(budget)
        if isinstance(budget, int) and not isinstance(budget, bool):
            if self.min_tokens is not None and budget >= self.min_tokens:
                return budget
        elif isinstance(budget, str) and budget in self.words:
            return budget
        if not self.words and self.min_tokens is None:
            raise BudgetError(f"family {self.name!r} takes no budget (set family to use one)")
        raise BudgetError(f"{self.name} budget must be {self.accepts}; got {budget!r}")


def _family(
    name: str,
    words: tuple[str, ...] = (),
    min_tokens: int | None = None,
    tokens_mean: str = "",
    owns: Mapping[ApiKind, tuple[Path, ...]] | None = None,
    writer: Writer | None = None,
    apis: tuple[ApiKind, ...] = ALL_APIS,
) -> Family:
    writers = {api: writer for api in apis} if writer is not None else {}
    return Family(name, words, min_tokens, tokens_mean, owns or {}, writers)


_OPENAI = _family(
    "openai", LEVELS, owns={CHAT: (EFFORT,), RESPONSES: (REASONING,)},
    writer=_openai, apis=(CHAT, RESPONSES),
)  # fmt: skip
_ANTHROPIC = _family(
    "anthropic", LEVELS, 1024, "thinking tokens", owns={CHAT: (THINKING,), MESSAGES: (THINKING,)},
    writer=_anthropic, apis=(CHAT, MESSAGES),
)  # fmt: skip
# The demo upstreams, and gateways that take each API in its own provider's dialect.
_NATIVE = Family(
    "native", LEVELS, None, "",
    owns={CHAT: _OPENAI.owns[CHAT], RESPONSES: _OPENAI.owns[RESPONSES],
          MESSAGES: _ANTHROPIC.owns[MESSAGES]},
    writers={CHAT: _openai, RESPONSES: _openai, MESSAGES: _anthropic},
)  # fmt: skip

FAMILIES: Final[Mapping[str, Family]] = {
    f.name: f
    for f in (
        _family("none"),
        _NATIVE,
        _OPENAI,
        _ANTHROPIC,
        _family(
            "deepseek", ("off", "on", *LEVELS), 1, "a token count (means on)",
            owns={CHAT: (THINKING, EFFORT), RESPONSES: (REASONING,), MESSAGES: (THINKING,)},
            writer=_deepseek,
        ),
        # xhigh is refused rather than mapped: Gemini's top effort is high, and the token
        # figure above it is out of range for some Gemini models; give a token count instead.
        _family(
            "gemini", LEVELS[:-1], 1, "thinking tokens",
            owns={CHAT: (EFFORT, GEMINI_CONFIG)}, writer=_gemini, apis=(CHAT,),
        ),
        _family(
            "qwen", ("off", "on"), 1, "thinking tokens",
            owns={CHAT: (QWEN_SWITCH, QWEN_TEMPLATE_BUDGET, VLLM_BUDGET), RESPONSES: (REASONING,)},
            writer=_qwen, apis=(CHAT, RESPONSES),
        ),
        _family("max_tokens", (), 1, "output tokens", writer=_max_tokens),
    )
}  # fmt: skip


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise BudgetError(f"unknown family {name!r}; one of {', '.join(FAMILIES)}") from None


def check_budget(family_name: str, budget: object) -> Value | None:
    """The budget as the translator will use it (None: no budget); :class:`BudgetError` if
    the family or the budget is unknown to it."""
    fam = family(family_name)
    return None if budget is None else fam.check(budget)


def translate(body: dict[str, Any], api: ApiKind, family_name: str, budget: object) -> bool:
    """Edit ``body`` in place for ``family_name`` and ``budget``: remove the reasoning fields
    the family does not own in ``api``, then write the budget. True if it was written; False
    with no budget, or where the family has no budget field in ``api``."""
    value = check_budget(family_name, budget)  # refused before anything is touched
    fam = FAMILIES[family_name]
    own = fam.owns.get(api, ())
    for path in KNOWN:
        if path not in own:
            _remove(body, path)
    writer = fam.writers.get(api)
    if value is None or writer is None:
        return False
    writer(body, api, value)
    return True
