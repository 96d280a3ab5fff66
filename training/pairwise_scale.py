"""From the comparator's answers back to a JOD scale, and where it disagrees with the experts.

The comparator gives P(A better) for each pair. Scaling's likelihood takes counts, and its
input boundary takes whole counts or halves (a split tie), so the model becomes one observer
who casts ``votes`` judgments per pair: ``round(2 votes P) / 2`` wins for A, the half as a
tie. ``jod scale --ties split`` (or :func:`comparator_scale`) then scales them like any
observer's trials. The rounding moves P by at most 1 / (4 votes), a difference d by at most
SIGMA / (4 votes phi(d / SIGMA)) JOD: 0.023 JOD for pairs 2 JOD apart at 100 votes, more for
far pairs (P near 0 or 1), which the near pairs outweigh in the fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import scaling
from scaling.errors import InputError

MODEL_OBSERVER = "comparator"
DEFAULT_VOTES = 100


def comparisons_to_trials(
    predictions: pd.DataFrame, votes: int = DEFAULT_VOTES, observer: str = MODEL_OBSERVER
) -> pd.DataFrame:
    """Per-scene trial table (``scaling.formats``) in which the comparator is one observer.

    ``predictions``: ``jod predict --pairs`` output with ``scene`` (or ``scene_A`` =
    ``scene_B``), ``attribute, condition_A, condition_B, p_a_better``. Pairs across scenes
    are left out (they belong to a cross-content scale). Each pair gives ``votes`` rows:
    ``k`` wins for A, ``votes - k - t`` for B and ``t`` ties (0 or 1), with
    ``k + t / 2 = round(2 votes P) / 2``.
    """
    if votes < 1:
        raise ValueError(f"votes must be at least 1, not {votes}")
    frame = predictions.copy()
    if "scene" not in frame.columns:
        if not {"scene_A", "scene_B"} <= set(frame.columns):
            raise InputError(
                "pair predictions need 'scene' (or 'scene_A' and 'scene_B') to be scaled",
                field="scene",
            )
        frame = frame[frame["scene_A"] == frame["scene_B"]].assign(scene=lambda f: f["scene_A"])
    missing = [
        c for c in ("attribute", "condition_A", "condition_B", "p_a_better") if c not in frame
    ]
    if missing:
        raise InputError(f"pair predictions lack columns {missing}", field=missing[0])
    if frame.empty:
        raise InputError("no pair within one scene to scale")
    halves = np.rint(2 * votes * frame["p_a_better"].to_numpy(float)).astype(int)
    wins, tie = np.divmod(halves, 2)
    losses = votes - wins - tie
    outcome = np.concatenate([np.ones_like(wins), np.zeros_like(wins), np.full_like(wins, -1)])
    count = np.concatenate([wins, losses, tie])
    rows = np.tile(np.arange(len(frame)), 3)
    repeat = np.repeat(rows, count)
    kind = np.repeat(outcome, count)
    base = frame.iloc[repeat][["scene", "attribute", "condition_A", "condition_B"]]
    trials = base.reset_index(drop=True).assign(
        observer=observer,
        is_A_selected=(kind == 1).astype(int),
        tie=(kind == -1).astype(int),
    )
    return trials[
        ["observer", "scene", "attribute", "condition_A", "condition_B", "is_A_selected", "tie"]
    ]


def comparator_scale(
    predictions: pd.DataFrame, votes: int = DEFAULT_VOTES, **options
) -> pd.DataFrame:
    """The comparator's own JOD scale per scene and attribute (``scaling.scale``, ties split;
    ``options`` go to it, e.g. ``prior``)."""
    trials = comparisons_to_trials(predictions, votes)
    return scaling.scale(trials, by=["scene", "attribute"], ties="split", progress=False, **options)


def scale_disagreement(model_scale: pd.DataFrame, expert_scale: pd.DataFrame) -> pd.DataFrame:
    """Per image: the experts' JOD, the comparator's, and their difference after centring
    both on the images they share in each scene (each scale's offset is arbitrary).

    Columns: ``scene, attribute, condition, jod_expert, jod_model, difference``; per-scene
    Spearman correlations are in ``attrs["jodkit"]["spearman"]``.
    """
    keys = ["scene", "attribute", "condition"]
    joined = expert_scale[[*keys, "jod"]].merge(
        model_scale[[*keys, "jod"]], on=keys, suffixes=("_expert", "_model")
    )
    if joined.empty:
        raise InputError("the comparator's scale and the experts' share no image")
    for column in ("jod_expert", "jod_model"):
        joined[column] = joined[column] - joined.groupby(["scene", "attribute"])[column].transform(
            "mean"
        )
    joined["difference"] = joined["jod_model"] - joined["jod_expert"]
    rho = {
        f"{scene}/{attribute}": float(spearmanr(g["jod_expert"], g["jod_model"]).statistic)
        for (scene, attribute), g in joined.groupby(["scene", "attribute"])
        if len(g) >= 3
    }
    joined.attrs["jodkit"] = {"spearman": rho}
    return joined.reset_index(drop=True)


def plot_disagreement(disagreement: pd.DataFrame, path: Path) -> Path:
    """Comparator JOD against expert JOD, one panel per attribute, one colour per scene."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attributes = sorted(disagreement["attribute"].unique())
    fig, axes = plt.subplots(
        1, len(attributes), figsize=(4.5 * len(attributes), 4.3), squeeze=False
    )
    for ax, attribute in zip(axes[0], attributes, strict=True):
        part = disagreement[disagreement["attribute"] == attribute]
        for scene, group in part.groupby("scene"):
            ax.scatter(group["jod_expert"], group["jod_model"], s=14, label=str(scene))
        low = part[["jod_expert", "jod_model"]].min().min()
        high = part[["jod_expert", "jod_model"]].max().max()
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        worst = part["difference"].abs().max()
        ax.set(
            xlabel="experts' JOD (centred per scene)",
            ylabel="comparator's JOD (centred per scene)",
            title=f"{attribute}: largest |difference| {worst:.2f} JOD",
        )
        ax.legend(fontsize=7, ncols=2)
    fig.tight_layout()
    from scaling.outputs import output_file

    with output_file(path) as temporary:
        fig.savefig(temporary, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
