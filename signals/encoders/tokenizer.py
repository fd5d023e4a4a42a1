"""Loading a fast (Rust) tokenizer with the upstream padding/truncation switched off."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from signals.encoders.base import EncoderError


def load_tokenizer(path: Path) -> Any:
    """A ``tokenizers.Tokenizer``; the window, not the tokenizer, decides what is cut.

    Typed as Any: the tokenizers package ships no type information.
    """
    if not path.is_file():
        raise EncoderError(f"{path}: tokenizer file is missing")
    tokenizer = importlib.import_module("tokenizers").Tokenizer.from_file(str(path))
    # all-MiniLM's tokenizer.json pads and truncates to 128 on the right.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
