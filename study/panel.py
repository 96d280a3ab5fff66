"""A simulated expert panel for the example study, with a known truth.

Every rendition gets a true *global* quality per attribute (:func:`true_quality`, from its
recorded parameters, plus a per-scene content offset). Observers of a per-scene session
judge on that scene's own distorted scale x = s_j q + c_j (unknown spread s_j and offset
c_j, as PIQ23 scenes differ in spread); cross-content observers judge the global q
directly, but compress it (harder judgments across framing and lighting). Thurstone noise,
biased and careless observers come from ``scaling.simulate.simulate_trials``.

Input: a rendition manifest (``scene, condition`` and the ``RenditionParams`` fields).
Output: trial tables in the ``scaling.formats`` trial layout; cross-content trials carry
``scene_A/scene_B``. The truth table (``scene, attribute, condition, q_true``) comes back
alongside, for evaluation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.formats import image_keys, split_image_keys
from scaling.simulate import simulate_trials
from study.renditions import RenditionParams

ATTRIBUTES = ("detail", "noise")


def true_quality(p: RenditionParams) -> dict[str, float]:
    """True JOD of a rendition per attribute, 0 for the untouched original.

    Detail falls with log-resolution, smoothing and JPEG and rises a little with
    sharpening; noise quality falls with the noise std, smoothing hides some of it and
    sharpening amplifies it.
    """
    jpeg_loss = 0.0 if p.jpeg_quality == 0 else (100 - p.jpeg_quality) / 40
    detail = 3.0 * np.log2(p.scale) - 1.2 * p.smooth_sigma + 0.8 * p.sharpen - jpeg_loss
    noise = -70.0 * p.noise_sigma * (1 + 0.5 * p.sharpen) / (1 + 0.6 * p.smooth_sigma)
    return {"detail": float(detail), "noise": float(noise - 0.5 * jpeg_loss)}


def make_truth(manifest: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Global truth plus each scene's hidden spread and offset, per attribute.

    Returns ``scene, attribute, condition, q_true, x_true, spread, offset``: ``q_true`` the
    global quality (content offset included), ``x_true`` = spread * q_true + offset, the
    scale the scene's own observers use.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for scene, grp in manifest.groupby("scene", sort=True):
        for attr in ATTRIBUTES:
            content, spread, offset = rng.normal(0, 1.0), rng.uniform(0.6, 1.5), rng.normal(0, 2)
            for rec in grp.to_dict("records"):
                q = true_quality(RenditionParams.from_dict(rec))[attr] + content
                rows.append((scene, attr, rec["condition"], q, spread * q + offset, spread, offset))
    cols = ["scene", "attribute", "condition", "q_true", "x_true", "spread", "offset"]
    return pd.DataFrame(rows, columns=cols)


def per_scene_trials(
    truth: pd.DataFrame, n_observers: int = 15, careless: float = 0.1, seed: int = 0
) -> pd.DataFrame:
    """Every observer judges every pair of every scene once, on the scene's own scale."""
    return simulate_trials(
        truth.rename(columns={"x_true": "jod"})[["scene", "attribute", "condition", "jod"]],
        n_observers=n_observers,
        design="full",
        outlier_fraction=careless,
        left_bias_sd=0.3,
        compression=0.2,
        seed=seed,
    )


def cross_trials(
    truth: pd.DataFrame,
    selected: pd.DataFrame,
    n_observers: int = 15,
    careless: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """Observers compare the ``selected`` images across scenes, on the global scale.

    ``selected``: ``attribute, scene, condition`` rows (e.g. from
    ``alignment.selection.select_cross_images``). Same-scene pairs are dropped: the
    cross-content task shows two different scenes.
    """
    chosen = truth.merge(selected[["attribute", "scene", "condition"]], how="inner")
    ids = chosen.assign(
        condition=image_keys(chosen["scene"], chosen["condition"]).to_numpy(),
        scene="cross",
        jod=chosen["q_true"],
    )[["scene", "attribute", "condition", "jod"]]
    trials = simulate_trials(
        ids,
        n_observers=n_observers,
        design="full",
        outlier_fraction=careless,
        compression=0.4,
        seed=seed + 1,
    )
    out = trials.drop(columns="scene")
    for side in ("A", "B"):
        parts = split_image_keys(out[f"condition_{side}"])
        out[f"scene_{side}"], out[f"condition_{side}"] = parts["scene"], parts["condition"]
    out = out[out["scene_A"] != out["scene_B"]].reset_index(drop=True)
    out["session"] = "cross-" + out["session"]
    out.attrs = trials.attrs
    return out
