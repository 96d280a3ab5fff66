"""Diagnostic plots of an alignment (matplotlib, written as PNG).

Input: a unified-scale table (``alignment.formats``) with its ``attrs["jodkit"]``.
Output, per attribute: ``<prefix>maps.png`` (a_j against b_j; a perfect alignment puts every
scene at a = 1, b = 0), ``<prefix>unified_hist.png`` (the unified scale stacked by scene)
and ``<prefix>residuals.png`` (cross-content score minus fitted line, per scene).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_alignment(unified: pd.DataFrame, out_dir: Path | str) -> list[Path]:
    """Write the three diagnostic plots per attribute; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = unified.attrs["jodkit"]
    written = []
    for attr, info in meta["attributes"].items():
        part = unified[unified["attribute"] == attr] if "attribute" in unified else unified
        prefix = "" if attr == "all" else f"{attr}_"
        scenes = sorted(info["scenes"])
        a = np.array([info["scenes"][s]["a"] for s in scenes])
        b = np.array([info["scenes"][s]["b"] for s in scenes])

        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(b, a)
        for s, ai, bi in zip(scenes, a, b, strict=True):
            ax.annotate(s, (bi, ai), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(1, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set(
            xlabel="offset b_j (JOD)",
            ylabel="slope a_j",
            title=f"{attr}: scene maps ({meta['method']}; perfect = a 1, b 0)",
        )
        written.append(_save(fig, out_dir / f"{prefix}maps.png"))

        fig, ax = plt.subplots(figsize=(6, 4))
        values = [part.loc[part["scene"] == s, "jod_unified"].to_numpy() for s in scenes]
        ax.hist(values, bins=20, stacked=True, label=scenes)
        ax.set(
            xlabel=f"unified JOD (reference {info['reference']})",
            ylabel="images",
            title=f"{attr}: unified scale by scene",
        )
        ax.legend(fontsize=7)
        written.append(_save(fig, out_dir / f"{prefix}unified_hist.png"))

        fig, ax = plt.subplots(figsize=(6, 4))
        for k, s in enumerate(scenes):
            rows = part[(part["scene"] == s) & part["jod_cross"].notna()]
            fitted = info["scenes"][s]["a"] * rows["jod_scene"] + info["scenes"][s]["b"]
            ax.scatter(np.full(len(rows), k), rows["jod_cross"] - fitted, s=12)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xticks(range(len(scenes)), scenes, rotation=45, fontsize=7)
        ax.set(ylabel="cross score - fitted (JOD)", title=f"{attr}: per-scene fit residuals")
        written.append(_save(fig, out_dir / f"{prefix}residuals.png"))
    return written


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
