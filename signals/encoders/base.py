"""The encoder interface every consumer (signals, IRT training, evaluation) codes against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

ENCODER_NAMES: tuple[str, ...] = ("static", "minilm")


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into L2-normalised float32 rows, applying the encoder's token window.

    ``truncations`` counts the texts that were longer than the window (since loading).
    A text with no tokens at all gives a zero row from ``static`` (nothing to average).
    """

    name: str  # "minilm" | "static"
    dim: int
    truncations: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class CountingEncoder(Encoder, Protocol):
    """An encoder that also says which texts of one call were cut by its window.

    Concurrent callers use this instead of diffing ``truncations``, which other threads move.
    """

    def encode_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]: ...


class EncoderError(ValueError):
    """An artifact is missing, corrupt or of the wrong kind; the message names the path."""
