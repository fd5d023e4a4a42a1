"""py3langid's language probabilities, computed with numpy instead of a per-byte Python loop.

py3langid (0.4) counts byte n-gram features by walking a text's UTF-8 bytes one at a time
through a DFA in Python (``visit_counts``): at each byte it moves to the next state and
counts that state's one output feature, if any. With the float16 feature table it casts on
every call, that was most of the time the ``language`` signal spent per request.

The DFA is an Aho-Corasick automaton over the feature n-grams: the state after some bytes
is the longest suffix of them that is a prefix of a feature (a trie string), and no trie
string is longer than ``depth`` bytes (6 in py3langid's model). So the state after byte
``i`` depends only on bytes ``i - depth + 1 .. i``: walking every position's last ``depth``
bytes from state 0 in lockstep, one array gather per step over all positions, reaches the
same states as the sequential walk. Counting their outputs gives exactly ``visit_counts``.
tests/signals/test_language.py checks the automaton property on the whole table, and the
counts and probabilities against py3langid's own on many texts.

That is several times faster than looking every window of L bytes up among the features of
length L (sorted codes and ``searchsorted``: dependent, cache-missing binary searches), and
needs no n-gram recovery. The cost is now mostly numpy's ~1 us per call, so the hot path is
written to make few calls: the transition and output tables are indexed by (byte, row) so
that one add and one gather make a step, and the text is prefixed with ``depth - 1`` bytes
that send every state back to state 0 so that its first positions need no special case.

:class:`FastIdentifier` then scores like py3langid's ``LanguageIdentifier`` with
``norm_probs=True``: the same float32 arithmetic on the same operands (features in order of
first occurrence, as py3langid's ``Counter`` holds them, so the matrix product sums in the
same order), hence the same probabilities, not merely close ones.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

Ints = NDArray[np.intp]


def _frozen(a: NDArray[Any]) -> NDArray[Any]:
    """Read-only: identifiers are shared by threads, nothing may write to their arrays."""
    a.setflags(write=False)
    return a


@dataclass(frozen=True, slots=True)
class Dfa:
    """py3langid's feature automaton, rearranged for lockstep walks.

    py3langid shares one transition row among states that move alike (``tk_row``); a walk
    only needs the row of each state it is in, and the output of the last one. From a
    state with row ``r``, byte ``b`` leads to a state with row ``step[b * rows + r]`` whose
    output is ``emit[b * rows + r]`` (a feature index, or ``n_features`` for none, so that
    "none" sorts last).
    """

    step: NDArray[np.unsignedinteger]
    emit: NDArray[np.int32]
    # The row after two bytes b0, b1 from state 0, at b0 + 256 * b1 (a little-endian uint16
    # read of the two bytes): each position's first two steps in one gather.
    root2: NDArray[np.unsignedinteger]
    rows: int
    root_row: int
    depth: int  # the longest trie string, in bytes
    n_features: int
    pad: bytes  # depth - 1 bytes after which any walk is in state 0

    @classmethod
    def from_identifier(cls, ident: Any) -> Dfa:
        """From a loaded ``py3langid.langid.LanguageIdentifier``."""
        nextmove = np.frombuffer(ident.tk_nextmove, dtype=f"u{ident.tk_nextmove.itemsize}")
        row = np.frombuffer(ident.tk_row, dtype=f"u{ident.tk_row.itemsize}")
        output = np.asarray(ident.tk_output, dtype=np.int64)
        return cls.build(nextmove, row, output)

    @classmethod
    def build(
        cls, nextmove: NDArray[np.unsignedinteger], row: NDArray[np.integer], output: Ints
    ) -> Dfa:
        """From py3langid's arrays: state ``s`` on byte ``b`` goes to
        ``nextmove[row[s] * 256 + b]`` and outputs ``output[s]`` (-1 for none)."""
        table = nextmove.reshape(-1, 256)
        rows = len(table)
        depth = int(state_depths(nextmove, row).max())
        n_features = int(output.max()) + 1
        # A byte that no feature contains moves every state to state 0, which outputs
        # nothing. UTF-8 never contains 0xff; any such byte will do.
        resets = [b for b in range(255, -1, -1) if not table[:, b].any()]
        if not resets or output[0] >= 0:
            raise ValueError("py3langid DFA: no byte leads every state back to state 0")
        step_type = np.uint16 if rows <= 1 << 16 else np.uint32
        step = row.astype(step_type)[table.T]  # (byte, row) -> row of the next state
        emit = np.where(output < 0, n_features, output).astype(np.int32)[table.T]
        after1 = step[:, row[0]]  # by the first byte
        root2 = step[:, after1]  # [second byte, first byte]
        return cls(
            step=_frozen(step.ravel()),
            emit=_frozen(emit.ravel()),
            root2=_frozen(root2.ravel()),
            rows=rows,
            root_row=int(row[0]),
            depth=depth,
            n_features=n_features,
            pad=bytes([resets[0]]) * (depth - 1),
        )

    def outputs(self, data: bytes) -> NDArray[np.int32]:
        """The output of the state py3langid's walk is in after each byte of ``data``
        (``n_features`` where it outputs nothing)."""
        n, depth = len(data), self.depth
        padded = self.pad + data  # position i's window is padded[i : i + depth]
        # offset[j] = rows * byte j: the byte's slice of the (byte, row) tables.
        offset = np.multiply(np.frombuffer(padded, dtype=np.uint8), self.rows, dtype=np.intp)
        row: Any = self.root_row
        walked = 0  # bytes of each window
        if depth >= 3:
            pairs = np.ndarray((n,), dtype="<u2", buffer=padded, strides=(1,))
            row, walked = self.root2[pairs], 2
        for k in range(walked, depth - 1):
            row = self.step[offset[k : k + n] + row]
        out: NDArray[np.int32] = self.emit[offset[depth - 1 :] + row]
        return out

    def feature_counts(self, data: bytes) -> tuple[Ints, NDArray[np.float32]]:
        """What py3langid's ``visit_counts`` counts: the features in order of first
        occurrence and their counts (float32, as py3langid scores them)."""
        out = self.outputs(data)
        # Stable: each run of equal features starts at its first occurrence.
        pos = out.argsort(kind="stable")
        run = out[pos]
        new = np.empty(len(run), dtype=bool)
        new[:1] = True
        np.not_equal(run[1:], run[:-1], out=new[1:])
        start = new.nonzero()[0]
        end = len(run)
        if len(start) and run[start[-1]] == self.n_features:  # "no output" sorts last
            end = int(start[-1])
            start = start[:-1]
        if not len(start):
            return start, np.zeros(0, dtype=np.float32)
        counts = np.empty(len(start), dtype=np.float32)
        np.subtract(start[1:], start[:-1], out=counts[:-1])
        counts[-1] = end - start[-1]
        order = pos[start].argsort()
        feats: Ints = run[start[order]].astype(np.intp)
        return feats, counts[order]


def state_depths(nextmove: NDArray[np.unsignedinteger], row: NDArray[np.integer]) -> Ints:
    """Each state's distance from state 0 (breadth-first, one level at a time): for an
    Aho-Corasick automaton, the length of the state's trie string."""
    table = nextmove.reshape(-1, 256)
    depth = np.full(len(row), -1, dtype=np.intp)
    depth[0] = 0
    frontier = np.zeros(1, dtype=np.intp)
    level = 0
    while len(frontier):
        reached = np.zeros(len(row), dtype=bool)
        reached[table[row[frontier]].ravel()] = True
        frontier = np.flatnonzero(reached & (depth < 0))
        level += 1
        depth[frontier] = level
    if (depth < 0).any():
        raise ValueError("py3langid DFA: some states cannot be reached from state 0")
    return depth


def encode(text: str) -> bytes:
    """The bytes py3langid scores for a ``str`` (``LanguageIdentifier._encode``): all-caps
    text lower-cased, NFC, UTF-8 with lone surrogates passed through rather than refused."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


class FastIdentifier:
    """py3langid's ``LanguageIdentifier(norm_probs=True)`` with the columns (languages)
    ``set_languages`` left it, scoring with numpy.

    Immutable and without scratch buffers, so threads share one.
    """

    def __init__(
        self,
        dfa: Dfa,
        nb_ptc: NDArray[np.floating],
        nb_pc: NDArray[np.float32],
        nb_classes: Sequence[str],
    ) -> None:
        self.dfa = dfa
        # float32 and row-major. py3langid keeps float16 and casts the gathered rows on
        # every call (~0.1 ms); the cast is exact, so the product's operands are unchanged.
        # Row-major: a text's features gather whole rows, not one element per cache line.
        self.nb_ptc = _frozen(np.ascontiguousarray(nb_ptc, dtype=np.float32))
        self.nb_pc = _frozen(np.array(nb_pc, dtype=np.float32))
        self.nb_classes = list(nb_classes)
        first: dict[str, int] = {}
        alias: list[tuple[int, int]] = []
        for i, label in enumerate(self.nb_classes):
            if label in first:
                alias.append((first[label], i))
            else:
                first[label] = i
        # A label in two columns (py3langid's script variants, srl -> sr): the second
        # column's probability is added to the first and zeroed, as py3langid does.
        self._alias_to = _frozen(np.array([i for i, _ in alias], dtype=np.intp))
        self._alias_from = _frozen(np.array([j for _, j in alias], dtype=np.intp))
        self.labels = list(first)
        self.label_columns: Ints = _frozen(np.array(list(first.values()), dtype=np.intp))

    @classmethod
    def from_py3langid(cls, ident: Any, dfa: Dfa | None = None) -> FastIdentifier:
        """From a loaded ``LanguageIdentifier`` (after ``set_languages``); ``dfa``, when
        given, is the same model's automaton, shared rather than rebuilt."""
        if not ident._norm_probs:
            raise ValueError("FastIdentifier computes py3langid's norm_probs=True scores")
        return cls(dfa or Dfa.from_identifier(ident), ident.nb_ptc, ident.nb_pc, ident.nb_classes)

    def probabilities(self, text: str) -> NDArray[np.float32]:
        """Per column, py3langid's ``_decide``: float32 probabilities, a label's second
        column folded into its first and zeroed."""
        data = encode(text)
        feats, counts = self.dfa.feature_counts(data)
        if len(feats):
            scores: NDArray[np.float32] = np.log1p(counts) @ self.nb_ptc[feats] + self.nb_pc
        else:
            scores = np.zeros(len(self.nb_classes), dtype=np.float32)  # -> uniform
        # Temperature sqrt(bytes): py3langid's calibration across text lengths.
        scores *= 1.0 / math.sqrt(len(data) or 1)
        # (ufunc reductions: what ndarray.max and .sum call, without their Python layer)
        np.exp(scores - np.maximum.reduce(scores), out=scores)
        scores /= np.add.reduce(scores)
        if len(self._alias_to):
            scores[self._alias_to] += scores[self._alias_from]
            scores[self._alias_from] = 0.0
        return scores

    def rank(self, text: str) -> list[tuple[str, float]]:
        """py3langid's ``rank``: (label, probability) for every label, best first."""
        probs = self.probabilities(text)[self.label_columns].tolist()
        return sorted(zip(self.labels, probs, strict=True), key=itemgetter(1), reverse=True)
