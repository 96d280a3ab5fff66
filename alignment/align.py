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

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

import scaling
from alignment.checks import check_alignment, eligible_references, report
from alignment.fits import METHODS, LineFit, fit_line
from alignment.formats import (
    CROSS_TABLE,
    MIN_CROSS_IMAGES,
    SCENE_TABLE,
    UNIFIED_COLUMNS,
    check_cross_against_scenes,
    check_scores,
    split_cross_ids,
)
from alignment.options import NEEDS_STD
from alignment.reference import choose_reference
from alignment.trials import CROSS_TRIALS, SCENE_TRIALS, check_trial_pair
from scaling.bootstrap import summarise
from scaling.errors import InputError
from scaling.formats import TRAINING_COLUMNS, image_keys
from scaling.io import read_any_table


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
    _check_one_component(cross, keys[:-2], sources[1])
    return scenes.reset_index(drop=True), cross.reset_index(drop=True), keys


def _check_one_component(cross: pd.DataFrame, group: list[str], source: str) -> None:
    """Cross-content scores of separate graph components share no offset: refuse them."""
    if "component" not in cross.columns:
        return
    for _, part in cross.groupby(group) if group else [((), cross)]:
        labels = part["component"]
        if labels.nunique() > 1:
            row = int(np.flatnonzero((labels != labels.iloc[0]).to_numpy())[0])
            raise InputError(
                f"the cross-content scale has {labels.nunique()} separate components: "
                "their scores share no offset, so scenes cannot be aligned through them; "
                "add cross-content trials that link them",
                source=source,
                row=int(part.index[row]) + 1,
                field="component",
            )


def _fit_points(
    scene: pd.DataFrame, cross: pd.DataFrame, method: str, sources: tuple[str, str]
) -> tuple[np.ndarray, ...]:
    """x, y, sx, sy of the images of one scene that have both scores (for ``weighted`` and
    ``eiv``: those whose interval is two-sided)."""

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
    if method not in NEEDS_STD:
        return x, y, sx, sy
    name = scene["scene"].iloc[0]
    used = ((sy, sources[1]),) if method == "weighted" else ((sy, sources[1]), (sx, sources[0]))
    for std, src in used:
        if np.any(np.isnan(std) | (std < 0)):
            raise InputError(
                f"method {method!r} needs a jod_std for every cross-content image (scene "
                f"{name!r}); scale with a bootstrap",
                source=src,
                field="jod_std",
            )
    # an infinite std is a one-sided interval: the score is a placement, no point on a line
    two_sided = np.logical_and.reduce([np.isfinite(std) for std, _ in used])
    if two_sided.sum() < MIN_CROSS_IMAGES or np.ptp(x[two_sided]) <= 0:
        raise InputError(
            f"method {method!r}: scene {name!r} has {int(two_sided.sum())} cross-content "
            f"image(s) with a two-sided interval (finite jod_std), and the fit needs "
            f"{MIN_CROSS_IMAGES} with different scores; the others are bounded on one side "
            "only: use method 'paper' or compare them more",
            source=sources[1],
            field="jod_std",
        )
    return x[two_sided], y[two_sided], sx[two_sided], sy[two_sided]


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


def _interval(samples: np.ndarray) -> np.ndarray:
    """Rows low and high of the percentile interval (``scaling.bootstrap.summarise``)."""
    summary = summarise(samples)
    return np.vstack([summary.ci_low, summary.ci_high])


def _align_attribute(
    scenes: pd.DataFrame,
    cross: pd.DataFrame,
    reference: str,
    method: str,
    bootstrap: int,
    rng: np.random.Generator,
    sources: tuple[str, str],
    progress: bool,
) -> tuple[pd.DataFrame, dict]:
    names = sorted(scenes["scene"].unique())
    groups = {s: scenes[scenes["scene"] == s] for s in names}
    pts = {s: _fit_points(groups[s], cross, method, sources) for s in names}
    fits = {s: fit_line(*pts[s], method=method) for s in names}
    slopes = {s: fits[s].a for s in names}
    ref_scene, reason = choose_reference(scenes, cross, reference, eligible_references(slopes))
    x = scenes["jod"].to_numpy(float)
    sx = _std(scenes)
    scene_of = scenes["scene"].to_numpy()
    a = np.array([fits[s].a for s in scene_of])
    b = np.array([fits[s].b for s in scene_of])
    ref = fits[ref_scene]
    u = (a * x + b - ref.b) / ref.a
    u_std = np.abs(a / ref.a) * sx
    lo, hi = u - 1.96 * u_std, u + 1.96 * u_std
    info: dict = {
        "reference": ref_scene,
        "reference_reason": reason,
        "scenes": {},
    }
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
        summary = summarise(samples)
        u_std, lo, hi = summary.std, summary.ci_low, summary.ci_high
        boot_ab = {s: _interval(v) for s, v in ab.items()}
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
    info["problems"] = check_alignment(scene_of, x, jod_cross.to_numpy(float), u, slopes, ref_scene)
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
    strict: bool = False,
) -> pd.DataFrame:
    """Map every scene's scale onto the reference scene's scale.

    ``reference``: a scene name or a rule of ``alignment.reference.RULES`` (rules pick
    among scenes with a sound slope, ``alignment.checks``).
    ``method``: ``paper`` (OLS), ``weighted``, ``eiv`` or ``offset`` (``alignment.fits``).
    ``bootstrap``: number of resamples for the CIs (0: CIs from ``jod_std`` alone).
    ``sources``: names of the two inputs, used in error messages.
    ``strict``: raise :class:`alignment.checks.AlignmentRefused` where the fitted slopes or
    the unified scores make no sense, instead of warning.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    scenes, cross, keys = _prepare(scene_scales, cross_scales, sources)
    notes = check_cross_against_scenes(scenes, cross, keys, sources[1])
    rng = np.random.default_rng(seed)
    parts, meta, problems = [], {}, []
    by_attr = "attribute" in keys
    for attr, sc in scenes.groupby("attribute") if by_attr else [(None, scenes)]:
        cr = cross[cross["attribute"] == attr] if by_attr else cross
        part, info = _align_attribute(sc, cr, reference, method, bootstrap, rng, sources, progress)
        if by_attr:
            part.insert(0, "attribute", attr)
        parts.append(part)
        label = f"attribute {attr}, " if by_attr else ""
        problems += [label + p for p in info["problems"]]
        meta[str(attr) if by_attr else "all"] = info
    notes += report(problems, strict)
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


def align_trials(
    scene_trials: pd.DataFrame | str | Path,
    cross_trials: pd.DataFrame | str | Path,
    method: str = "paper",
    scale_bootstrap: int = 0,
    seed: int = 0,
    progress: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """:func:`align` from the two trial tables (``alignment.trials``), scaled first.

    Per-scene trials are scaled per scene (and attribute), cross-content trials as one
    graph of image keys per attribute (``scaling.scale`` defaults), each with
    ``scale_bootstrap`` observer resamples for ``jod_std`` (``weighted`` and ``eiv`` need
    them). ``options`` go to :func:`align`; errors name the trial files.
    """
    frames, names = [], []
    for given, default in zip(
        (scene_trials, cross_trials), (SCENE_TRIALS, CROSS_TRIALS), strict=True
    ):
        path = not isinstance(given, pd.DataFrame)
        frames.append(read_any_table(given) if path else given)
        names.append(str(given) if path else default)
    check_trial_pair(*frames, sources=(names[0], names[1]))
    if method in NEEDS_STD and scale_bootstrap < 2:
        raise ValueError(
            f"method {method!r} weighs images by their jod_std, which comes from a bootstrap "
            "of the scales: give scale_bootstrap >= 2 (e.g. 200)"
        )
    scaled = [
        scaling.scale(
            given if isinstance(given, pd.DataFrame) else str(given),
            bootstrap=scale_bootstrap,
            seed=seed,
            progress=progress,
        )
        for given in (scene_trials, cross_trials)
    ]
    out = align(
        *scaled,
        method=method,
        seed=seed,
        progress=progress,
        sources=(f"scales of {names[0]}", f"scales of {names[1]}"),
        **options,
    )
    out.attrs["jodkit"]["scaling"] = {
        "per_scene": scaled[0].attrs.get("jodkit"),
        "cross_content": scaled[1].attrs.get("jodkit"),
    }
    return out


def to_training(unified: pd.DataFrame, image_path: pd.Series | None = None) -> pd.DataFrame:
    """The training table (``scaling.formats.TRAINING_COLUMNS``) from a unified table.

    ``image_path`` aligned with ``unified``'s rows; defaults to each image's key
    ``"<scene>/<condition>"`` (``scaling.formats``).
    """
    paths = (
        image_path.to_numpy()
        if image_path is not None
        else image_keys(unified["scene"], unified["condition"]).to_numpy()
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


def manifest_paths(
    unified: pd.DataFrame, manifest: pd.DataFrame, source: str = "image manifest"
) -> pd.Series:
    """``image_path`` of every row of ``unified`` from a manifest (``scene, condition,
    image_path``, e.g. ``jod example``'s ``manifest.csv``); every image must be listed once."""
    for column in ("scene", "condition", "image_path"):
        if column not in manifest.columns:
            raise InputError("missing column", source=source, field=column)
    empty = manifest["image_path"].isna().to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0]) + 1
        raise InputError("is empty", source=source, row=row, field="image_path")
    dup = manifest.duplicated(["scene", "condition"]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise InputError(
            f"image (scene {manifest['scene'].iloc[row]!r}, condition "
            f"{manifest['condition'].iloc[row]!r}) is listed twice",
            source=source,
            row=row + 1,
            field="condition",
        )
    keys = manifest[["scene", "condition"]].astype(str)
    found = (
        unified[["scene", "condition"]]
        .astype(str)
        .merge(keys.assign(image_path=manifest["image_path"].to_numpy()), how="left")
    )
    missing = found["image_path"].isna().to_numpy()
    if missing.any():
        row = found.iloc[int(np.flatnonzero(missing)[0])]
        raise InputError(
            f"no image_path for scene {row['scene']!r}, condition {row['condition']!r}",
            source=source,
            field="image_path",
        )
    return found["image_path"].astype(str)
