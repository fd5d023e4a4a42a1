"""Loading an encoder by name from the shipped artifacts (or any artifact directory)."""

from __future__ import annotations

from pathlib import Path

from irtgate.signals.encoders.artifact import read_artifact, shipped_path
from irtgate.signals.encoders.base import ENCODER_NAMES, Encoder, EncoderError


def load_encoder(name: str = "static", path: Path | None = None) -> Encoder:
    """The encoder ``name`` from ``path`` (default: the artifact shipped in the repo).

    Loading takes a moment (model files, ONNX session): do it once at start-up.
    """
    if name not in ENCODER_NAMES:
        raise EncoderError(f"unknown encoder {name!r}; expected one of {', '.join(ENCODER_NAMES)}")
    path = Path(path) if path is not None else shipped_path(name)
    read_artifact(path, name)  # validates before any heavy import
    if name == "static":
        from irtgate.signals.encoders.static import StaticEncoder

        return StaticEncoder(path)
    from irtgate.signals.encoders.minilm import MiniLMEncoder

    return MiniLMEncoder(path)
