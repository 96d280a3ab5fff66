"""Alignment of per-scene JOD scales onto one unified scale (DXOMARK portrait paper).

Per scene j, fit y = a_j x + b_j over the images that have both a per-scene score x and a
cross-content score y (``alignment.fits``); choose a reference scene r
(``alignment.reference``); the unified score is u = (a_j x + b_j - b_r) / a_r, so the
reference keeps its own scores exactly and every scene lands on its unit and offset.

Inputs: a per-scene scale table and a cross-content scale table (``alignment.formats``).
Output: the unified-scale table (``alignment.formats.UNIFIED_COLUMNS``, with
``attribute`` first when the inputs have it) and its metadata in ``attrs["jodkit"]``.
Optional bootstrap: images of each scene's fit resampled with replacement, per-scene
scores perturbed by their ``jod_std``; CIs from the 2.5/97.5 percentiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from alignment.fits import METHODS, NEEDS_STD, LineFit, fit_line
from alignment.formats import (
    CROSS_TABLE,
    SCENE_TABLE,
    UNIFIED_COLUMNS,
    check_cross_against_scenes,
    check_scores,
    split_cross_ids,
)
from alignment.reference import choose_reference
from scaling.errors import InputError


def _std(df: pd.DataFrame) -> np.ndarray:
    if "jod_std" not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df["jod_std"], errors="coerce").to_numpy(float)


def _prepare(
    scene_scales: pd.DataFrame, cross_scales: pd.DataFrame, sources: tuple[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Validate both tables and normalise their keys to strings."""
    scenes, cross = scene_scales.copy(), split_cross_ids(cross_scales, sources[1])
    keys = ["scene", "condition"]
    if "attribute" in scenes.columns:
        if "attribute" not in cross.columns:
            if scenes["attribute"].nunique() > 1:
                raise InputError(
                    "the per-scene table has several attributes; the cross table needs an "
                    "'attribute' column",
                    source=sources[1],
                    field="attribute",
                )
            cross = cross.assign(attribute=scenes["attribute"].iloc[0])
        keys = ["attribute", *keys]
    for df, src in ((scenes, sources[0]), (cross, sources[1])):
        check_scores(df, src, keys)
        for k in keys:
            df[k] = df[k].astype(str)
    return scenes.reset_index(drop=True), cross.reset_index(drop=True), keys


def _fit_points(
    scene: pd.DataFrame, cross: pd.DataFrame, method: str, source: str
) -> tuple[np.ndarray, ...]:
    """x, y, sx, sy of the images of one scene that have both scores."""

    def cols(df: pd.DataFrame, tag: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "scene": df["scene"],
                "condition": df["condition"],
                f"v{tag}": df["jod"],
                f"s{tag}": _std(df),
            }
        )

    both = cols(scene, "x").merge(cols(cross, "y"), on=["scene", "condition"])
    x, y, sx, sy = (both[c].to_numpy(float) for c in ("vx", "vy", "sx", "sy"))
    if method in NEEDS_STD:
        for s, src in ((sy, CROSS_TABLE), (sx, SCENE_TABLE)):
            if method == "weighted" and src == SCENE_TABLE:
                continue
            if not np.all(np.isfinite(s) & (s >= 0)):
                raise InputError(
                    f"method {method!r} needs a finite jod_std for every cross-content image "
                    f"(scene {scene['scene'].iloc[0]!r}); scale with a bootstrap",
                    source=source if src == CROSS_TABLE else SCENE_TABLE,
                    field="jod_std",
                )
    return x, y, sx, sy


def _unify(x: np.ndarray, fit: LineFit, ref: LineFit) -> np.ndarray:
    return (fit.a * x + fit.b - ref.b) / ref.a


def _resample_fit(pts: tuple[np.ndarray, ...], method: str, rng: np.random.Generator) -> LineFit:
    """One bootstrap replicate of a scene's fit: images resampled with replacement."""
    x = pts[0]
    for _ in range(50):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) > 0:
            return fit_line(*(p[idx] for p in pts), method=method)
    return fit_line(*pts, method=method)  # a scene with two distinct x values: keep its fit


def _align_attribute(
    scenes: pd.DataFrame,
    cross: pd.DataFrame,
    reference: str,
    method: str,
    bootstrap: int,
    rng: np.random.Generator,
    source: str,
    progress: bool,
) -> tuple[pd.DataFrame, dict]:
    ref_scene, reason = choose_reference(scenes, cross, reference)
    names = sorted(scenes["scene"].unique())
    groups = {s: scenes[scenes["scene"] == s] for s in names}
    pts = {s: _fit_points(groups[s], cross, method, source) for s in names}
    fits = {s: fit_line(*pts[s], method=method) for s in names}
    x = scenes["jod"].to_numpy(float)
    sx = _std(scenes)
    scene_of = scenes["scene"].to_numpy()
    a = np.array([fits[s].a for s in scene_of])
    b = np.array([fits[s].b for s in scene_of])
    ref = fits[ref_scene]
    u = (a * x + b - ref.b) / ref.a
    u_std = np.abs(a / ref.a) * sx
    lo, hi = u - 1.96 * u_std, u + 1.96 * u_std
    info: dict = {"reference": ref_scene, "reference_reason": reason, "scenes": {}}
    boot_ab: dict[str, np.ndarray] = {}
    if bootstrap:
        samples = np.empty((bootstrap, len(x)))
        ab = {s: np.empty((bootstrap, 2)) for s in names}
        noise_sx = np.where(np.isfinite(sx), sx, 0.0)
        for k in tqdm(range(bootstrap), desc="alignment bootstrap", disable=not progress):
            rep = {s: _resample_fit(pts[s], method, rng) for s in names}
            ra = np.array([rep[s].a for s in scene_of])
            rb = np.array([rep[s].b for s in scene_of])
            xb = x + rng.standard_normal(len(x)) * noise_sx
            r = rep[ref_scene]
            samples[k] = (ra * xb + rb - r.b) / r.a
            for s in names:
                ab[s][k] = rep[s].a, rep[s].b
        u_std = samples.std(axis=0, ddof=1)
        lo, hi = np.percentile(samples, [2.5, 97.5], axis=0)
        boot_ab = {s: np.percentile(v, [2.5, 97.5], axis=0) for s, v in ab.items()}
    for s in names:
        entry = {
            "a": fits[s].a,
            "b": fits[s].b,
            "rmse": fits[s].rmse,
            "n_cross": len(pts[s][0]),
        }
        if s in boot_ab:
            entry |= {
                "a_ci": boot_ab[s][:, 0].tolist(),
                "b_ci": boot_ab[s][:, 1].tolist(),
            }
        info["scenes"][s] = entry
    jod_cross = scenes[["scene", "condition"]].merge(
        cross[["scene", "condition", "jod"]], how="left", on=["scene", "condition"]
    )["jod"]
    out = pd.DataFrame(
        {
            "scene": scene_of,
            "condition": scenes["condition"].to_numpy(),
            "jod_scene": x,
            "jod_scene_std": sx,
            "jod_cross": jod_cross.to_numpy(float),
            "jod_unified": u,
            "jod_unified_std": u_std,
            "ci_low": lo,
            "ci_high": hi,
        }
    )
    return out, info


def align(
    scene_scales: pd.DataFrame,
    cross_scales: pd.DataFrame,
    reference: str = "auto",
    method: str = "paper",
    bootstrap: int = 0,
    seed: int = 0,
    progress: bool = False,
    sources: tuple[str, str] = (SCENE_TABLE, CROSS_TABLE),
) -> pd.DataFrame:
    """Map every scene's scale onto the reference scene's scale.

    ``reference``: a scene name or a rule of ``alignment.reference.RULES``.
    ``method``: ``paper`` (OLS), ``weighted`` or ``eiv`` (``alignment.fits``).
    ``bootstrap``: number of resamples for the CIs (0: CIs from ``jod_std`` alone).
    ``sources``: names of the two inputs, used in error messages.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    scenes, cross, keys = _prepare(scene_scales, cross_scales, sources)
    notes = check_cross_against_scenes(scenes, cross, keys, sources[1])
    rng = np.random.default_rng(seed)
    parts, meta = [], {}
    by_attr = "attribute" in keys
    for attr, sc in scenes.groupby("attribute") if by_attr else [(None, scenes)]:
        cr = cross[cross["attribute"] == attr] if by_attr else cross
        part, info = _align_attribute(
            sc, cr, reference, method, bootstrap, rng, sources[1], progress
        )
        if by_attr:
            part.insert(0, "attribute", attr)
        parts.append(part)
        meta[str(attr) if by_attr else "all"] = info
    out = pd.concat(parts, ignore_index=True)
    out = out[[*(["attribute"] if by_attr else []), *UNIFIED_COLUMNS]]
    out.attrs["jodkit"] = {
        "stage": "alignment",
        "method": method,
        "bootstrap": bootstrap,
        "seed": seed,
        "attributes": meta,
        "warnings": notes,
    }
    return out


def to_training(unified: pd.DataFrame, image_path: pd.Series | None = None) -> pd.DataFrame:
    """The training table (``scaling.formats.TRAINING_COLUMNS``) from a unified table.

    ``image_path`` aligned with ``unified``'s rows; defaults to ``<scene>/<condition>``.
    """
    from scaling.formats import TRAINING_COLUMNS

    paths = (
        image_path.to_numpy()
        if image_path is not None
        else (unified["scene"] + "/" + unified["condition"]).to_numpy()
    )
    out = pd.DataFrame(
        {
            "image_path": paths,
            "scene": unified["scene"].to_numpy(),
            "attribute": unified["attribute"].to_numpy()
            if "attribute" in unified.columns
            else "overall",
            "jod": unified["jod_unified"].to_numpy(),
            "jod_std": unified["jod_unified_std"].to_numpy(),
        }
    )
    out = out[list(TRAINING_COLUMNS)]
    out.attrs["jodkit"] = {"stage": "training-export", "alignment": unified.attrs.get("jodkit")}
    return out
