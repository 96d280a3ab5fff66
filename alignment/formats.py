"""Table formats of the alignment stage, and the checks that guard its boundary.

Inputs (both are ``scaling.formats`` scale tables)
    Per-scene scale table: one row per (scene, condition) and, optionally, attribute:
    ``scene, condition, jod`` required; ``jod_std`` used by the weighted and
    errors-in-variables fits and by the uncertainty of the unified score.

    Cross-content scale table: the scale of the images that were also compared *across*
    scenes, as ``jod scale`` writes it from cross-content trials (``scene_A/scene_B``):
    ``condition`` is each image's key ``"<scene>/<condition>"`` (``scaling.formats``
    image keys, the one definition), which :func:`split_cross_ids` turns back into
    ``scene`` and ``condition`` columns. A cross table that already has a ``scene`` column
    is taken as is.

Output: the unified-scale table (:data:`UNIFIED_COLUMNS`), one row per image
    [``attribute``], ``scene, condition, jod_scene, jod_scene_std, jod_cross,
    jod_unified, jod_unified_std, ci_low, ci_high``: ``jod_scene`` the per-scene score,
    ``jod_cross`` the cross-content score (NaN for images not in the cross task),
    ``jod_unified`` the score on the reference scene's scale with its std and 95% CI.
    ``df.attrs["jodkit"]`` holds the method, the reference scene per attribute and the
    reason it was chosen, a_j and b_j (with CIs) per scene, and the warnings raised.

Export for training: ``scaling.formats.TRAINING_COLUMNS`` with ``jod = jod_unified``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from scaling.errors import InputError
from scaling.formats import split_image_keys

UNIFIED_COLUMNS = (
    "scene",
    "condition",
    "jod_scene",
    "jod_scene_std",
    "jod_cross",
    "jod_unified",
    "jod_unified_std",
    "ci_low",
    "ci_high",
)
SCENE_TABLE = "per-scene scale table"
CROSS_TABLE = "cross-content scale table"
MIN_CROSS_IMAGES = 2
WARN_CROSS_IMAGES = 3
WARN_CROSS_SPREAD = 0.25  # fraction of the scene's own JOD range


class AlignmentWarning(UserWarning):
    """A scene is aligned, but on thin evidence."""


def split_cross_ids(cross: pd.DataFrame, source: str = CROSS_TABLE) -> pd.DataFrame:
    """Give a cross-content scale table ``scene`` and ``condition`` columns."""
    if "scene" in cross.columns:
        return cross
    _require(cross, ("condition",), source)
    parts = split_image_keys(cross["condition"])
    bad = np.flatnonzero(parts["scene"].isna().to_numpy())
    if bad.size:
        raise InputError(
            f"condition {cross['condition'].iloc[bad[0]]!r} is not an image key "
            "'<scene>/<condition>' and the table has no 'scene' column",
            source=source,
            row=int(bad[0]) + 1,
            field="condition",
        )
    out = cross.copy()
    out.insert(0, "scene", parts["scene"].to_numpy())
    out["condition"] = parts["condition"].to_numpy()
    return out


def _require(df: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}", source=source, field=missing[0])


def check_scores(df: pd.DataFrame, source: str, keys: list[str]) -> None:
    """Required columns present, finite scores, one row per key."""
    _require(df, (*keys, "jod"), source)
    jod = pd.to_numeric(df["jod"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(jod))
    if bad.size:
        raise InputError(
            f"score is not a finite number ({df['jod'].iloc[bad[0]]!r})",
            source=source,
            row=int(bad[0]) + 1,
            field="jod",
        )
    dup = np.flatnonzero(df.duplicated(keys).to_numpy())
    if dup.size:
        raise InputError(
            f"duplicate {keys} = {df[keys].iloc[dup[0]].tolist()}",
            source=source,
            row=int(dup[0]) + 1,
            field=keys[-1],
        )


def check_cross_against_scenes(
    scenes: pd.DataFrame, cross: pd.DataFrame, keys: list[str], source: str = CROSS_TABLE
) -> list[str]:
    """Every cross image must exist in the scene table; every scene needs >= 2 of them.

    Returns warnings for scenes with few or narrowly spread cross-content images.
    """
    group_keys = keys[:-1]  # [attribute,] scene
    known = set(map(tuple, scenes[keys].astype(str).to_numpy()))
    for pos, key in enumerate(map(tuple, cross[keys].astype(str).to_numpy())):
        if key not in known:
            scene_known = any(k[:-1] == key[:-1] for k in known)
            what = "condition" if scene_known else "scene"
            raise InputError(
                f"unknown {what}: {dict(zip(keys, key, strict=True))} is not in the {SCENE_TABLE}",
                source=source,
                row=pos + 1,
                field=what,
            )
    notes = []
    both = scenes[keys].merge(cross[keys], on=keys, how="left", indicator=True)
    both["x"] = scenes["jod"].to_numpy(float)
    for gk, grp in both.groupby(group_keys):
        label = dict(zip(group_keys, gk, strict=True))
        x = grp.loc[grp["_merge"] == "both", "x"].to_numpy(float)
        if len(x) < MIN_CROSS_IMAGES:
            raise InputError(
                f"scene {label} has {len(x)} cross-content image(s); an affine fit needs "
                f"at least {MIN_CROSS_IMAGES}",
                source=source,
                field="scene",
            )
        spread, full = float(np.ptp(x)), float(np.ptp(grp["x"].to_numpy(float)))
        if spread <= 0:
            raise InputError(
                f"scene {label}: all cross-content images have the same per-scene score",
                source=source,
                field="jod",
            )
        if len(x) < WARN_CROSS_IMAGES or spread < WARN_CROSS_SPREAD * full:
            notes.append(
                f"scene {label}: {len(x)} cross-content images spanning {spread:.2f} of "
                f"{full:.2f} JOD; its alignment is poorly determined"
            )
    for note in notes:
        warnings.warn(note, AlignmentWarning, stacklevel=3)
    return notes
