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


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG four-parameter logistic: (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2."""
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / (abs(b4) + 1e-12))) + b2


def fit_logistic(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Predictions mapped onto the truth's scale; falls back to linear when the fit fails."""
    start = [truth.max(), truth.min(), float(np.median(pred)), float(np.std(pred)) or 1.0]
    try:
        params, _ = curve_fit(logistic4, pred, truth, p0=start, maxfev=20000)
        return logistic4(pred, *params)
    except (RuntimeError, ValueError, TypeError):  # no convergence, or fewer than 4 points
        slope, intercept = np.polyfit(pred, truth, 1)
        return slope * pred + intercept


def metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The four metrics for one set of images (NaN correlations when fewer than 3 images)."""
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    out = {"mae_jod": float(np.mean(np.abs(pred - truth))), "n": len(pred)}
    if len(pred) < 3 or np.ptp(pred) == 0 or np.ptp(truth) == 0:
        return {"srcc": np.nan, "plcc": np.nan, "krcc": np.nan, **out}
    return {
        "srcc": float(spearmanr(pred, truth).statistic),
        "plcc": float(pearsonr(fit_logistic(pred, truth), truth).statistic),
        "krcc": float(kendalltau(pred, truth).statistic),
        **out,
    }


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


def scatter_plot(
    frame: pd.DataFrame, path: Path, pred: str = "jod_pred", truth: str = "jod"
) -> None:
    """Predicted against true JOD per attribute, coloured by scene."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attributes = sorted(frame["attribute"].unique())
    fig, axes = plt.subplots(
        1, len(attributes), figsize=(4.5 * len(attributes), 4.2), squeeze=False
    )
    for ax, attribute in zip(axes[0], attributes, strict=True):
        group = frame[frame["attribute"] == attribute]
        for _, scene in group.groupby("scene"):
            ax.scatter(scene[truth], scene[pred], s=12)
        low, high = group[[truth, pred]].min().min(), group[[truth, pred]].max().max()
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        ax.set(xlabel="true JOD", ylabel="predicted JOD", title=attribute)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_files(predictions: Path, truth: Path, out_dir: Path) -> pd.DataFrame:
    """Join predictions with the truth table on (image_path, attribute); write table and plot."""
    pred = pd.read_csv(predictions)
    missing = [c for c in ("image_path", "attribute", "jod_pred") if c not in pred.columns]
    if missing:
        raise InputError(f"predictions lack columns {missing}", source=str(predictions))
    true = read_table(truth)
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
