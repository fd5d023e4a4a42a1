"""Batch scoring: P(correct) and expected cost of every configuration for every item of a
routing-data file, as the router would see each one at serving time (``irtgate predict``).

One JSON line per item: ``{"id": ..., "p": {config: P}, "cost": {config: USD}}``. The cost
is the configuration's expected cost from the router card (``null`` where the card has
none); the router's P is per item, its cost per configuration.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def predict_file(router_dir: Path, data: Path, out: Path, *, progress: bool = True) -> int:
    """Write the predictions for ``data`` to ``out``; return the number of items."""
    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.lab.irt.data import load_routing_data
    from irtgate.signals.irt.runtime import IRTRouter

    router = IRTRouter.load(router_dir)
    items = load_routing_data([data])
    X = embed_corpus(router.encoder_name, list(items.prompts), progress=progress)
    _, _, p = router.predict_batch(X)
    cost = {c: router.expected_cost[c] for c in router.configs}  # None: unknown
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed: a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for i, item_id in enumerate(items.ids):
                row = np.round(p[i].astype(np.float64), 6)
                rec = {
                    "id": item_id,
                    "p": {c: float(row[g]) for g, c in enumerate(router.configs)},
                    "cost": cost,
                }
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(items)
