"""Evaluation: SRCC, PLCC after a four-parameter logistic fit, KRCC and MAE in JOD, globally
and averaged per scene, written as a table and a scatter plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.stats import kendalltau, pearsonr, spearmanr

from scaling.errors import InputError
from training.data import read_table

METRICS = ("srcc", "plcc", "krcc", "mae_jod", "n")


def logistic4(x: np.ndarray, bottom: float, height: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG four-parameter logistic, increasing: bottom + height / (1 + exp(-(x - b3) / b4))
    with height >= 0 and b4 > 0 (the fit's bounds)."""
    return bottom + height / (1.0 + np.exp(-(x - b3) / b4))


def fit_logistic(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Predictions mapped onto the truth's scale by an increasing logistic, or by a linear map
    with a non-negative slope where that fits better (the logistic fit did not converge, or
    fewer than 4 points): the mapping never does worse than linear."""
    slope, intercept = np.polyfit(pred, truth, 1)
    best = max(slope, 0.0) * pred + (intercept if slope > 0 else truth.mean())
    spread = float(np.ptp(truth)) or 1.0
    start = [float(truth.min()), spread, float(np.median(pred)), float(np.std(pred)) or 1.0]
    bounds = ([-np.inf, 0.0, -np.inf, 1e-12], np.inf)
    try:
        params, _ = curve_fit(logistic4, pred, truth, p0=start, bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError, TypeError):
        return best
    fitted = logistic4(pred, *params)
    return fitted if np.sum((fitted - truth) ** 2) < np.sum((best - truth) ** 2) else best


def metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The four metrics for one set of images (NaN correlations when fewer than 3 images)."""
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    out = {"mae_jod": float(np.mean(np.abs(pred - truth))), "n": len(pred)}
    if len(pred) < 3 or np.ptp(pred) == 0 or np.ptp(truth) == 0:
        return {"srcc": np.nan, "plcc": np.nan, "krcc": np.nan, **out}
    srcc = float(spearmanr(pred, truth).statistic)
    # the logistic rises in the data's direction, so an inverted prediction keeps its sign
    direction = 1.0 if srcc >= 0 else -1.0
    fitted = fit_logistic(direction * pred, truth)
    plcc = direction * float(pearsonr(fitted, truth).statistic) if np.ptp(fitted) else np.nan
    return {"srcc": srcc, "plcc": plcc, "krcc": float(kendalltau(pred, truth).statistic), **out}


def evaluate(frame: pd.DataFrame, pred: str = "jod_pred", truth: str = "jod") -> pd.DataFrame:
    """One row per attribute and level ('global' or 'per_scene_mean')."""
    for column in (pred, truth, "scene", "attribute"):
        if column not in frame.columns:
            raise InputError(f"column {column!r} missing for evaluation", field=column)
    rows = []
    for attribute, group in frame.groupby("attribute", sort=True):
        rows.append(
            {"attribute": attribute, "level": "global", **metrics(group[pred], group[truth])}
        )
        per_scene = pd.DataFrame([metrics(g[pred], g[truth]) for _, g in group.groupby("scene")])
        summary = per_scene.mean(numeric_only=True).to_dict()
        summary["n"] = int(per_scene["n"].sum())
        rows.append({"attribute": attribute, "level": "per_scene_mean", **summary})
    return pd.DataFrame(rows, columns=["attribute", "level", *METRICS])


def evaluate_models(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`evaluate` for several models' predictions on the same rows, side by side
    (e.g. the MLLM and the ResNet baseline); one row per model, attribute and level."""
    tables = [evaluate(frame).assign(model=name) for name, frame in frames.items()]
    table = pd.concat(tables, ignore_index=True)
    return table[["model", "attribute", "level", *METRICS]]


SPLIT_MARKERS = {"train": "o", "val": "s", "test": "^"}
#: Scenes named in a panel's legend; more are summed up in one entry.
LEGEND_SCENES = 12


def scatter_plot(
    frame: pd.DataFrame, path: Path, pred: str = "jod_pred", truth: str = "jod"
) -> None:
    """Predicted against true JOD per attribute: colour by scene, marker by split (when the
    frame has one), the identity line, and the global metrics written in each panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    attributes = sorted(frame["attribute"].unique())
    fig, axes = plt.subplots(
        1, len(attributes), figsize=(5.5 * len(attributes), 4.8), squeeze=False
    )
    colours = plt.get_cmap("tab20")
    for ax, attribute in zip(axes[0], attributes, strict=True):
        group = frame[frame["attribute"] == attribute]
        scenes = sorted(group["scene"].unique())
        for i, scene in enumerate(scenes):
            rows = group[group["scene"] == scene]
            splits = rows["split"] if "split" in rows else pd.Series("all", index=rows.index)
            for split, part in rows.groupby(splits):
                ax.scatter(
                    part[truth],
                    part[pred],
                    s=16,
                    color=colours(i % 20),
                    marker=SPLIT_MARKERS.get(split, "o"),
                    label=scene if i < LEGEND_SCENES else None,
                )
        low, high = group[[truth, pred]].min().min(), group[[truth, pred]].max().max()
        ax.plot([low, high], [low, high], "k--", lw=0.8, label="y = x")
        m = metrics(group[pred], group[truth])
        ax.text(
            0.03,
            0.97,
            f"SRCC {m['srcc']:.3f}\nPLCC {m['plcc']:.3f}\nKRCC {m['krcc']:.3f}\n"
            f"MAE {m['mae_jod']:.2f} JOD\nn {m['n']}",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
        )
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        if len(scenes) > LEGEND_SCENES:
            unique[f"+{len(scenes) - LEGEND_SCENES} more scenes"] = Line2D([], [], ls="")
        if "split" in group:
            for split in sorted(group["split"].unique()):
                marker = SPLIT_MARKERS.get(split, "o")
                unique[f"split: {split}"] = Line2D([], [], ls="", marker=marker, color="grey")
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right", ncol=2)
        ax.set(xlabel="true JOD", ylabel="predicted JOD", title=attribute)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_files(
    predictions: Path, truth: Path, out_dir: Path, split: str | None = None
) -> pd.DataFrame:
    """Join predictions with the truth table on (image_path, attribute); write table and plot.

    ``split`` keeps the truth rows of one split (``all``: every row); by default the test
    split when the truth table has a ``split`` column (a run's ``split.csv``), else all rows.
    """
    pred = pd.read_csv(predictions)
    missing = [c for c in ("image_path", "attribute", "jod_pred") if c not in pred.columns]
    if missing:
        raise InputError(f"predictions lack columns {missing}", source=str(predictions))
    true = read_table(truth)
    true = select_split(true, split, str(truth))
    pred["image_path"] = [str(Path(p).resolve()) for p in pred["image_path"]]
    true["image_path"] = [str(Path(p).resolve()) for p in true["image_path"]]
    keep = [c for c in pred.columns if c not in ("scene", "jod", "jod_std", "split")]
    joined = pred[keep].merge(true, on=["image_path", "attribute"])
    if joined.empty:
        raise InputError(
            "no prediction matches a truth row by image path and attribute", source=str(predictions)
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    table = evaluate(joined)
    table.to_csv(out_dir / "metrics.csv", index=False)
    scatter_plot(joined, out_dir / "scatter.png")
    return table


def select_split(table: pd.DataFrame, split: str | None, source: str) -> pd.DataFrame:
    """The rows of ``split`` (default: 'test' when the table has a split column, else all)."""
    if split == "all" or (split is None and "split" not in table.columns):
        return table
    split = split or "test"
    if "split" not in table.columns:
        raise InputError(
            f"--split {split} needs a 'split' column: pass the run's split.csv as the truth",
            source=source,
        )
    if split not in SPLIT_MARKERS:
        raise InputError(f"split must be one of {[*SPLIT_MARKERS, 'all']}, not {split!r}")
    chosen = table[table["split"].astype(str) == split]
    if chosen.empty:
        raise InputError(f"the truth table has no {split!r} rows", source=source, field="split")
    return chosen
