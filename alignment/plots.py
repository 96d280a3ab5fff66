"""Diagnostic plots of an alignment (matplotlib, written as PNG).

Input: a unified-scale table (``alignment.formats``) with its ``attrs["jodkit"]``.
Output, per attribute: ``<prefix>maps.png`` (a_j against b_j with their bootstrap CIs; a
perfect alignment puts every scene at a = 1, b = 0), ``<prefix>unified_by_scene.png``
(every image's unified score, one row per scene, with its CI: how the scenes cover the
unified range) and ``<prefix>residuals.png`` (cross-content score minus the fitted line,
against the per-scene score: curvature or outliers show up here).
Figures are ``matplotlib.figure.Figure`` objects, never pyplot's global state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scaling.outputs import output_file

DPI = 120
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _colour(k: int) -> str:
    return _COLOURS[k % len(_COLOURS)]


def plot_alignment(unified: pd.DataFrame, out_dir: Path | str) -> list[Path]:
    """Write the three diagnostic plots per attribute; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = unified.attrs["jodkit"]
    written = []
    for attr, info in meta["attributes"].items():
        part = unified[unified["attribute"] == attr] if "attribute" in unified else unified
        prefix = "" if attr == "all" else f"{attr}_"
        label = "" if attr == "all" else f"{attr}: "
        scenes = sorted(info["scenes"])
        fig = _maps(info, scenes, f"{label}scene maps ({meta['method']})")
        written.append(_save(fig, out_dir / f"{prefix}maps.png"))
        fig = _by_scene(part, scenes, info["reference"], f"{label}unified scale by scene")
        written.append(_save(fig, out_dir / f"{prefix}unified_by_scene.png"))
        fig = _residuals(part, scenes, info, f"{label}cross-content fit residuals")
        written.append(_save(fig, out_dir / f"{prefix}residuals.png"))
    return written


def _maps(info: dict, scenes: list[str], title: str) -> Figure:
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    for k, s in enumerate(scenes):
        v = info["scenes"][s]
        xerr = yerr = None
        if "a_ci" in v:
            xerr = [[v["b"] - v["b_ci"][0]], [v["b_ci"][1] - v["b"]]]
            yerr = [[v["a"] - v["a_ci"][0]], [v["a_ci"][1] - v["a"]]]
        ref = s == info["reference"]
        ax.errorbar(
            v["b"],
            v["a"],
            xerr=xerr,
            yerr=yerr,
            fmt="*" if ref else "o",
            ms=12 if ref else 6,
            color=_colour(k),
            elinewidth=1,
            capsize=2,
            label=f"{s} (reference)" if ref else s,
        )
    ax.axhline(1, color="0.6", lw=0.8, ls="--")
    ax.axvline(0, color="0.6", lw=0.8, ls="--")
    ax.set(xlabel="offset b_j (JOD)", ylabel="slope a_j")
    ax.set_title(f"{title}\ny = a_j x + b_j; no correction needed at a = 1, b = 0", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="best")
    ax.grid(color="0.93")
    ax.set_axisbelow(True)
    return fig


def _by_scene(part: pd.DataFrame, scenes: list[str], reference: str, title: str) -> Figure:
    fig = Figure(figsize=(6.5, 0.45 * len(scenes) + 1.6))
    ax = fig.add_subplot()
    for k, s in enumerate(scenes):
        rows = part[part["scene"] == s]
        u = rows["jod_unified"].to_numpy(float)
        lo, hi = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
        y = np.full(len(u), k) + np.linspace(-0.2, 0.2, len(u))[np.argsort(np.argsort(u))]
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.errorbar(
            u[ok],
            y[ok],
            xerr=[u[ok] - lo[ok], hi[ok] - u[ok]],
            fmt="none",
            ecolor=_colour(k),
            alpha=0.35,
            elinewidth=1,
        )
        ax.scatter(u, y, s=14, color=_colour(k), zorder=3)
    ax.set_yticks(range(len(scenes)), [s + (" (ref)" if s == reference else "") for s in scenes])
    ax.invert_yaxis()
    ax.set_xlabel(f"unified JOD (unit and offset of {reference}; bars: 95% CI)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="x", color="0.93")
    ax.set_axisbelow(True)
    return fig


def _residuals(part: pd.DataFrame, scenes: list[str], info: dict, title: str) -> Figure:
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for k, s in enumerate(scenes):
        rows = part[(part["scene"] == s) & part["jod_cross"].notna()]
        v = info["scenes"][s]
        fitted = v["a"] * rows["jod_scene"] + v["b"]
        order = np.argsort(rows["jod_scene"].to_numpy())
        x, r = rows["jod_scene"].to_numpy()[order], (rows["jod_cross"] - fitted).to_numpy()[order]
        ax.plot(x, r, "o-", ms=4, lw=0.6, color=_colour(k), label=s)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel="per-scene JOD x", ylabel="cross score - (a_j x + b_j)  (JOD)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.grid(color="0.93")
    ax.set_axisbelow(True)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    with output_file(path) as temporary:
        fig.savefig(temporary, dpi=DPI, facecolor="white")
    return path
