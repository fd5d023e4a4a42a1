"""The PNG of ``irtgate policy replay --png``: matplotlib lives in the lab.

Registered under the ``irtgate.replay_png`` entry-point group, which the serving core's
:func:`irtgate.server.replay_report.render_png` looks up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irtgate.server.replay_report import Summary


def render_png(s: Summary, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4.5))
    models = sorted(set(s.before.models) | set(s.after.models))
    x = np.arange(len(models))
    for off, side in ((-0.2, s.before), (0.2, s.after)):
        share = [100.0 * side.models.get(m, 0) / max(side.routed, 1) for m in models]
        ax1.bar(x + off, share, 0.4, label=side.label)
    ax1.set_xticks(x, models, rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("share of routed requests (%)")
    ax1.set_title("traffic per model")
    ax1.legend()
    labels = [s.before.label, s.after.label]
    ax2.bar(labels, [s.before.mean_p or 0.0, s.after.mean_p or 0.0], color=["C0", "C1"])
    ax2.set_ylim(0, 1)
    ax2.set_title("expected accuracy (mean P)")
    ax3.bar(labels, [s.before.cost_per_1k, s.after.cost_per_1k], color=["C0", "C1"])
    ax3.set_title("expected USD per 1,000 requests")
    fig.suptitle(f"{title}: the choice changes for {100.0 * s.changed_share:.1f}% of requests")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
