"""Reading an encoder artifact directory: its ``irtgate.json`` and file checks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irtgate.signals.encoders.base import ENCODER_NAMES, EncoderError
from irtgate.signals.encoders.window import TokenWindow

META_FILE = "irtgate.json"
SHIPPED = Path(__file__).resolve().parents[1] / "artifacts" / "encoders"


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    path: Path
    name: str
    dim: int
    window: TokenWindow
    weights: Path
    weights_sha256: str
    meta: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        """Identifies what the encoder computes: weights and window. Used as a cache key."""
        key = json.dumps(
            {"name": self.name, "weights": self.weights_sha256, "window": self.window.to_json()},
            sort_keys=True,
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def shipped_path(name: str) -> Path:
    if name not in ENCODER_NAMES:
        raise EncoderError(f"unknown encoder {name!r}; expected one of {', '.join(ENCODER_NAMES)}")
    return SHIPPED / name


def read_artifact(path: Path, expected_name: str | None = None) -> ArtifactInfo:
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise EncoderError(f"{path}: not an encoder artifact (missing {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
        name = str(meta["name"])
        info = ArtifactInfo(
            path=path,
            name=name,
            dim=int(meta["dim"]),
            window=TokenWindow.from_json(meta["window"]),
            weights=path / str(meta["weights"]),
            weights_sha256=str(meta["weights_sha256"]),
            meta=meta,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise EncoderError(f"{meta_path}: invalid encoder metadata ({e!r})") from e
    if expected_name is not None and name != expected_name:
        raise EncoderError(f"{path}: holds encoder {name!r}, not {expected_name!r}")
    if not info.weights.is_file():
        raise EncoderError(f"{path}: weights file {info.weights.name} is missing")
    return info
