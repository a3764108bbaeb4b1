"""A PNG chart of bed turnaround per group (matplotlib, no screen needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The Kent care coordination centre's before and after (DOMAIN.md), for scale.
KENT_BEFORE_MIN = 180
KENT_AFTER_MIN = 60


def turnaround_png(rows: list[dict[str, Any]], path: Path, *, title: str) -> None:
    """Median and 90th-percentile turnaround per group, beside Kent's ~3 h and ~1 h."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        " ".join(
            str(v)
            for k, v in row.items()
            if k in ("ward", "day", "scope") or (k == "site" and "ward" not in row)
        )
        for row in rows
    ]
    medians = [row.get("turnaround_median") or 0 for row in rows]
    p90s = [row.get("turnaround_p90") or 0 for row in rows]
    height = max(3.0, 0.35 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(9, height), dpi=110)
    try:
        y = list(range(len(rows)))
        ax.barh([i - 0.2 for i in y], medians, height=0.4, color="#005eb8", label="median")
        ax.barh([i + 0.2 for i in y], p90s, height=0.4, color="#9bb7d4", label="90th percentile")
        ax.axvline(
            KENT_AFTER_MIN, color="#007f3b", linestyle="--", linewidth=1, label="Kent after (~1 h)"
        )
        ax.axvline(
            KENT_BEFORE_MIN,
            color="#d5281b",
            linestyle="--",
            linewidth=1,
            label="Kent before (~3 h)",
        )
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel("minutes from discharge to bed available")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
