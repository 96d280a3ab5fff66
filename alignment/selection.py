"""Choosing which images of each scene go into the cross-content task.

An affine map is best determined by points spread along the whole range of x and measured
precisely, so per scene we place ``budget`` targets evenly along the current score range
and give each the unused image minimising ``|jod - target| + ci_weight * CI width``.
Input: a per-scene scale table (``scene, condition, jod``, optional ``ci_low/ci_high``);
output: its selected rows, with the ``target`` score they stand for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.errors import InputError


def select_cross_images(
    scale: pd.DataFrame, budget: int, ci_weight: float = 0.5, by: str = "scene"
) -> pd.DataFrame:
    """Pick ``budget`` images per ``by`` group spread along its range, favouring narrow CIs."""
    if budget < 2:
        raise ValueError(
            f"budget must be at least 2 images per scene (an affine fit), not {budget}"
        )
    for col in (by, "condition", "jod"):
        if col not in scale.columns:
            raise InputError(f"missing column {col!r}", source="scale table", field=col)
    jod = pd.to_numeric(scale["jod"], errors="coerce").to_numpy(float)
    if not np.all(np.isfinite(jod)):
        row = int(np.flatnonzero(~np.isfinite(jod))[0])
        raise InputError(
            "score is not a finite number", source="scale table", row=row + 1, field="jod"
        )
    width = np.zeros(len(scale))
    if {"ci_low", "ci_high"} <= set(scale.columns):
        width = (scale["ci_high"] - scale["ci_low"]).to_numpy(float)
        width = np.where(np.isfinite(width), width, np.nanmax(width, initial=0.0))
    picked = []
    for _, idx in scale.groupby(by, sort=True).indices.items():
        x, w = jod[idx], width[idx]
        targets = np.linspace(x.min(), x.max(), min(budget, len(idx)))
        free = np.ones(len(idx), bool)
        for t in targets:
            cost = np.where(free, np.abs(x - t) + ci_weight * w, np.inf)
            k = int(np.argmin(cost))
            free[k] = False
            picked.append((idx[k], t))
    rows, targets = zip(*picked, strict=True)
    out = scale.iloc[list(rows)].copy()
    out["target"] = targets
    return out.reset_index(drop=True)
