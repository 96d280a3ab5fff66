"""Figures for the scaling stage: rankings, comparison counts, observer screening, recovery.

Every function takes the stage's own tables (``scaling.formats``, the screening table of
``scaling.outliers``) or plain arrays, writes PNG files and returns their paths. Figures are
drawn on ``matplotlib.figure.Figure`` objects (Agg canvas), never through pyplot's global
state, so plotting is safe in tests and worker processes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from scaling.errors import InputError
from scaling.formats import SCALE_COLUMNS
from scaling.outputs import output_file

DPI = 150
MAX_LABELLED = 60
"""Above this many conditions the ranking and heatmap drop per-condition tick labels."""

_COMPONENT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_UNDETERMINED = "#7f7f7f"
_RANKING_COLUMNS = ("condition", "jod", "ci_low", "ci_high", "component", "determined")
_SCREENING_COLUMNS = ("observer", "dist_L", "flagged", "n_trials")


def _require(table: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise InputError("expected a DataFrame", source=source)
    for column in columns:
        if column not in table.columns:
            raise InputError("missing column", source=source, field=column)
    if table.empty:
        raise InputError("table has no rows", source=source)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "all"


def _save(fig: Figure, path: Path) -> Path:
    with output_file(path) as temporary:  # the format follows the suffix: png, pdf, svg
        fig.savefig(temporary, dpi=DPI, bbox_inches="tight", facecolor="white")
    return path


def group_keys(scale_table: pd.DataFrame) -> list[str]:
    """The scale table's group columns: those before ``condition`` that are not scores."""
    return [c for c in scale_table.columns if c not in SCALE_COLUMNS]


def plot_rankings(scale_table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One ranking figure per group: conditions sorted by JOD, with confidence intervals.

    Colour tells the comparison-graph component (scores in different components share no
    offset). Hollow grey markers are scores outside the determined core: circles where
    pwcmp's prior alone holds them, triangles (diamonds) where their optimum lies at
    infinity and they are placed (``bound``), pointing where it lies. A one-sided interval
    (an infinite end) is drawn as an arrow to the edge. Without a bootstrap (NaN
    intervals) no error bars are drawn.

    Parameters
    ----------
    scale_table : pandas.DataFrame
        Scale table (``scaling.formats``); group columns are the non-score columns.
    out_dir : str or Path
        Folder for ``ranking_<group>.png``.

    Returns
    -------
    list of Path
        The files written, one per group.
    """
    _require(scale_table, _RANKING_COLUMNS, "scale table")
    keys = group_keys(scale_table)
    groups = scale_table.groupby(keys, sort=True) if keys else [((), scale_table)]
    paths = []
    for name, group in groups:
        label = " / ".join(str(v) for v in (name if isinstance(name, tuple) else (name,)))
        fig = _ranking_figure(group, label or "all conditions")
        paths.append(_save(fig, Path(out_dir) / f"ranking_{_slug(label)}.png"))
    return paths


def _ranking_figure(group: pd.DataFrame, title: str) -> Figure:
    n = len(group)
    height = min(max(2.5, 0.22 * n + 1.2), 16.0) if n <= MAX_LABELLED else 7.0
    fig = Figure(figsize=(7.5, height))
    _draw_ranking(fig.add_subplot(), group, title, labelled=n <= MAX_LABELLED)
    return fig


def plot_overview(scale_table: pd.DataFrame, path: str | Path, *, max_groups: int = 12) -> Path:
    """All groups' rankings on one page (the first ``max_groups``, in group order).

    A quick look at a whole study: per-group detail lives in :func:`plot_rankings`.
    """
    _require(scale_table, _RANKING_COLUMNS, "scale table")
    keys = group_keys(scale_table)
    groups = list(scale_table.groupby(keys, sort=True)) if keys else [((), scale_table)]
    shown = groups[:max_groups]
    columns = min(3, len(shown))
    rows = -(-len(shown) // columns)
    largest = max(len(g) for _, g in shown)
    panel_height = min(max(2.2, 0.16 * largest + 1.0), 8.0)
    fig = Figure(figsize=(5.0 * columns, panel_height * rows))
    for k, (name, group) in enumerate(shown):
        label = " / ".join(str(v) for v in (name if isinstance(name, tuple) else (name,)))
        ax = fig.add_subplot(rows, columns, k + 1)
        _draw_ranking(ax, group, label or "all conditions", labelled=len(group) <= 30)
    if len(groups) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(groups)} groups", fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    return _save(fig, Path(path))


_PLACED = {"lower": (">", "+inf"), "upper": ("<", "-inf"), "none": ("D", "infinity")}
"""Marker of a placed score (``bound`` column), pointing where its optimum lies, and where
that is."""


def _draw_ranking(ax, group: pd.DataFrame, title: str, *, labelled: bool) -> None:
    g = group.sort_values("jod", kind="stable").reset_index(drop=True)
    n = len(g)
    y = np.arange(n)
    jod = g["jod"].to_numpy(float)
    low, high = g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float)
    has_ci = np.isfinite(low) & np.isfinite(high)
    # One-sided intervals (a score unbounded on a side in the bootstrap) run to the edge.
    open_above = (high == np.inf) & (low < np.inf)
    open_below = (low == -np.inf) & (high > -np.inf)
    component = g["component"].fillna(-1).astype(int).to_numpy()
    determined = g["determined"].astype(bool).to_numpy()
    bound = g["bound"].astype(str).to_numpy() if "bound" in g else np.full(n, "two-sided")
    colours = np.array(
        [
            _COMPONENT_COLOURS[c % len(_COMPONENT_COLOURS)] if c >= 0 else _UNDETERMINED
            for c in component
        ]
    )
    if has_ci.any():
        for colour in np.unique(colours[has_ci]):
            sel = has_ci & (colours == colour)
            ax.errorbar(
                jod[sel],
                y[sel],
                xerr=[jod[sel] - low[sel], high[sel] - jod[sel]],
                fmt="none",
                ecolor=colour,
                elinewidth=1.2,
                capsize=2.5 if labelled else 0,
                alpha=0.8,
            )
    seen = np.concatenate([jod, low[np.isfinite(low)], high[np.isfinite(high)]])
    span = max(float(np.ptp(seen)), 1.0)
    left, right = float(seen.min()) - 0.08 * span, float(seen.max()) + 0.08 * span
    ax.set_xlim(left, right)
    for k in np.flatnonzero(open_above | open_below):
        start = low[k] if open_above[k] else high[k]
        start = jod[k] if not np.isfinite(start) else start
        for edge, opened in ((right, open_above[k]), (left, open_below[k])):
            if opened:
                ax.annotate(
                    "",
                    xy=(edge, y[k]),
                    xytext=(start, y[k]),
                    arrowprops={"arrowstyle": "->", "color": colours[k], "lw": 1.2},
                )
    marker_size = 28 if labelled else 10
    two_sided = bound == "two-sided"
    solid = determined & two_sided
    ax.scatter(jod[solid], y[solid], s=marker_size, c=colours[solid], zorder=3)
    for kind, selected in (("o", ~determined & two_sided), *_placed(bound)):
        ax.scatter(
            jod[selected],
            y[selected],
            s=marker_size,
            marker=kind,
            facecolors="white",
            edgecolors=_UNDETERMINED,
            linewidths=1.2,
            zorder=3,
        )
    if labelled:
        ax.set_yticks(y, g["condition"].astype(str).tolist(), fontsize=8)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{n} conditions, sorted by JOD")
    ax.set_ylim(-0.8, n - 0.2)
    ax.axvline(0.0, color="0.75", linewidth=0.8, zorder=0)
    ax.grid(axis="x", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    has_interval = has_ci | open_above | open_below
    ax.set_xlabel("JOD" + (" (95% bootstrap CI)" if has_interval.any() else ""))
    ax.set_title(title, fontsize=11, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            color=_COMPONENT_COLOURS[c % 6],
            label=f"component {c}",
        )
        for c in sorted(set(component[component >= 0]))
    ]
    if len(handles) == 1:
        handles = []
    legend = [("o", "prior only / undetermined", ~determined & two_sided)]
    legend += [
        (marker, f"placed: optimum at {where}", bound == name)
        for name, (marker, where) in _PLACED.items()
    ]
    for marker, label, selected in legend:
        if selected.any():
            handles.append(
                Line2D(
                    [],
                    [],
                    marker=marker,
                    linestyle="",
                    markerfacecolor="white",
                    markeredgecolor=_UNDETERMINED,
                    label=label,
                )
            )
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)


def _placed(bound: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(marker, rows) of the placed scores, by which way their optimum lies."""
    return [(marker, bound == name) for name, (marker, _) in _PLACED.items()]


def plot_comparison_counts(
    counts: np.ndarray,
    conditions: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    order: Sequence[float] | None = None,
) -> Path:
    """Heatmap of how often each pair was compared (S = D + D^T).

    Parameters
    ----------
    counts : numpy.ndarray
        N x N count matrix, D[i, j] = times i was chosen over j.
    conditions : sequence of str
        The N condition names.
    path : str or Path
        PNG file to write.
    title : str
        Figure title (e.g. the group).
    order : sequence of float, optional
        Scores to sort the conditions by (e.g. the JOD), so that a neighbour design shows
        as a band along the diagonal.

    Returns
    -------
    Path
    """
    d = np.asarray(counts, dtype=float)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] != len(conditions):
        raise InputError(
            f"counts must be {len(conditions)} x {len(conditions)}, not {d.shape}",
            source="counts",
        )
    if not np.all(np.isfinite(d)) or (d < 0).any():
        raise InputError("counts must be finite and non-negative", source="counts")
    idx = np.argsort(np.asarray(order, dtype=float), kind="stable") if order is not None else None
    names = list(map(str, conditions))
    if idx is not None:
        d = d[np.ix_(idx, idx)]
        names = [names[i] for i in idx]
    totals = d + d.T
    n = len(names)
    size = min(max(4.0, 0.18 * n + 2.0), 11.0)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    shown = np.ma.masked_where(totals == 0, totals)
    image = ax.imshow(shown, cmap="viridis", interpolation="nearest")
    ax.set_facecolor("#f2f2f2")
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("comparisons of the pair")
    if n <= MAX_LABELLED:
        ax.set_xticks(range(n), names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{n} conditions" + (" (sorted by JOD)" if idx is not None else ""))
    compared = int((np.triu(totals, 1) > 0).sum())
    ax.set_title(
        f"{title}\n{int(totals.sum() / 2)} comparisons, {compared} of {n * (n - 1) // 2} pairs",
        fontsize=10,
        loc="left",
    )
    return _save(fig, Path(path))


def plot_screening(screening: pd.DataFrame, path: str | Path, *, threshold: float = 1.5) -> Path:
    """Bar chart of each observer's ``dist_L`` with the investigation threshold.

    Flagged observers are red; every bar carries the observer's number of trials, since
    with few trials honest observers can exceed the threshold by chance.
    """
    _require(screening, _SCREENING_COLUMNS, "screening table")
    s = screening.sort_values("dist_L", kind="stable").reset_index(drop=True)
    n = len(s)
    fig = Figure(figsize=(7.0, min(max(2.5, 0.28 * n + 1.2), 14.0)))
    ax = fig.add_subplot()
    dist = s["dist_L"].fillna(0.0).to_numpy(float)
    flagged = s["flagged"].astype(bool).to_numpy()
    colours = np.where(flagged, "#d62728", "#4c72b0")
    y = np.arange(n)
    ax.barh(y, dist, color=colours, height=0.7)
    ax.axvline(threshold, color="0.2", linestyle="--", linewidth=1.0)
    ax.text(threshold, n - 0.4, f" {threshold:g}", va="bottom", fontsize=8, color="0.2")
    top = max(float(dist.max()), threshold) * 1.25
    for yi, d, trials in zip(y, dist, s["n_trials"].to_numpy(), strict=True):
        ax.text(d + top * 0.01, yi, f"{trials} trials", va="center", fontsize=7, color="0.35")
    ax.set_yticks(y, s["observer"].astype(str).tolist(), fontsize=8)
    ax.set_xlim(0, top)
    ax.set_ylim(-0.6, n + 0.2)
    ax.set_xlabel("dist_L = (Q1 - L) / IQR  (L: log10 likelihood per compared pair)")
    ax.set_title(
        f"Observer screening: {int(flagged.sum())} of {n} at or above {threshold:g}",
        fontsize=11,
        loc="left",
    )
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _save(fig, Path(path))


def plot_recovery(
    true_jod: np.ndarray,
    estimate: pd.DataFrame,
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Estimated against true scores (simulation check), with CIs where available.

    Parameters
    ----------
    true_jod : numpy.ndarray
        True scores, in the order of ``estimate``'s rows; both are compared after removing
        their means (JOD scales are relative).
    estimate : pandas.DataFrame
        Rows of a scale table (``jod``, ``ci_low``, ``ci_high``).
    path : str or Path
        PNG file to write.
    title : str
        Figure title.

    Returns
    -------
    Path
    """
    _require(estimate, ("jod", "ci_low", "ci_high"), "scale table")
    truth = np.asarray(true_jod, dtype=float)
    if truth.shape != (len(estimate),):
        raise InputError(
            f"true_jod has {truth.size} values for {len(estimate)} rows", source="true_jod"
        )
    shift = estimate["jod"].mean()
    est = estimate["jod"].to_numpy(float) - shift
    truth = truth - truth.mean()
    low = estimate["ci_low"].to_numpy(float) - shift
    high = estimate["ci_high"].to_numpy(float) - shift
    fig = Figure(figsize=(5.5, 5.2))
    ax = fig.add_subplot()
    has_ci = np.isfinite(low) & np.isfinite(high)
    if has_ci.any():
        covered = has_ci & (low <= truth) & (truth <= high)
        ax.errorbar(
            truth[has_ci],
            est[has_ci],
            yerr=[est[has_ci] - low[has_ci], high[has_ci] - est[has_ci]],
            fmt="none",
            ecolor="0.7",
            elinewidth=0.8,
        )
        title += f"\n95% CI covers the truth for {covered.sum()} of {has_ci.sum()}"
    ax.scatter(truth, est, s=12, color="#1f77b4", zorder=3)
    lim = [min(truth.min(), est.min()) - 0.5, max(truth.max(), est.max()) + 0.5]
    ax.plot(lim, lim, color="0.3", linewidth=0.8, linestyle="--")
    rmse = float(np.sqrt(np.mean((est - truth) ** 2)))
    ax.set_title(f"{title}\nRMSE {rmse:.3f} JOD".strip(), fontsize=10, loc="left")
    ax.set_xlabel("true JOD (mean removed)")
    ax.set_ylabel("estimated JOD (mean removed)")
    ax.set_aspect("equal")
    ax.grid(color="0.92")
    ax.set_axisbelow(True)
    return _save(fig, Path(path))
