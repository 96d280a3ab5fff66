"""PIQ23 score files: read published per-scene scales, write unified ones back.

Layout (METHODS.md section 6), one row per image: ``IMAGE PATH, JOD, JOD STD, CI LOW,
CI HIGH, CI RANGE, QUALITY LEVEL, CLUSTER, TOTAL COMPARISONS, IMAGE, SCENE, ATTRIBUTE,
SCENE IDX, CONDITION``, with Windows-style (backslash) image paths. PIQ23's ``CONDITION``
is the lighting condition, not an image id, so the image (``IMAGE``) is jodkit's
``condition``.

``read_piq23`` gives a ``scaling.formats`` scale table (``scene, attribute, condition,
jod, jod_std, ci_low, ci_high, n_comparisons``) plus ``image_path`` (forward slashes) and
the PIQ23 extras (``quality_level, cluster, scene_idx, lighting``); ``write_piq23`` writes
any table with ``image_path, scene, attribute, jod, jod_std`` (e.g. the training table) in
the PIQ23 layout.
"""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd

from scaling.errors import InputError

PIQ23_COLUMNS = (
    "IMAGE PATH",
    "JOD",
    "JOD STD",
    "CI LOW",
    "CI HIGH",
    "CI RANGE",
    "QUALITY LEVEL",
    "CLUSTER",
    "TOTAL COMPARISONS",
    "IMAGE",
    "SCENE",
    "ATTRIBUTE",
    "SCENE IDX",
    "CONDITION",
)
_TO_JODKIT = {
    "SCENE": "scene",
    "ATTRIBUTE": "attribute",
    "IMAGE": "condition",
    "JOD": "jod",
    "JOD STD": "jod_std",
    "CI LOW": "ci_low",
    "CI HIGH": "ci_high",
    "TOTAL COMPARISONS": "n_comparisons",
    "QUALITY LEVEL": "quality_level",
    "CLUSTER": "cluster",
    "SCENE IDX": "scene_idx",
    "CONDITION": "lighting",
}
_REQUIRED = ("IMAGE PATH", "JOD", "IMAGE", "SCENE")


def read_piq23(path: Path | str) -> pd.DataFrame:
    """A PIQ23 score file as a jodkit scale table (see the module docstring)."""
    raw = pd.read_csv(path)
    missing = [c for c in _REQUIRED if c not in raw.columns]
    if missing:
        raise InputError(f"missing PIQ23 column(s) {missing}", source=str(path), field=missing[0])
    jod = pd.to_numeric(raw["JOD"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(jod))
    if bad.size:
        raise InputError(
            "JOD is not a finite number", source=str(path), row=int(bad[0]) + 1, field="JOD"
        )
    out = raw.rename(columns=_TO_JODKIT)[[v for k, v in _TO_JODKIT.items() if k in raw.columns]]
    if "attribute" not in out.columns:
        out["attribute"] = Path(path).stem
    out["scene"] = out["scene"].astype(str)
    out["condition"] = out["condition"].astype(str)
    out.insert(
        0, "image_path", [PureWindowsPath(p).as_posix() for p in raw["IMAGE PATH"].astype(str)]
    )
    return out


def write_piq23(table: pd.DataFrame, path: Path | str) -> None:
    """Write ``image_path, scene, attribute, jod, jod_std`` (+ optional CIs) as PIQ23."""
    for col in ("image_path", "scene", "attribute", "jod", "jod_std"):
        if col not in table.columns:
            raise InputError(f"missing column {col!r}", source="table to export", field=col)
    std = table["jod_std"].to_numpy(float)
    jod = table["jod"].to_numpy(float)
    low = table["ci_low"].to_numpy(float) if "ci_low" in table else jod - 1.96 * std
    high = table["ci_high"].to_numpy(float) if "ci_high" in table else jod + 1.96 * std
    scenes = sorted(table["scene"].astype(str).unique())
    out = pd.DataFrame(
        {
            "IMAGE PATH": [str(PureWindowsPath(*Path(p).parts)) for p in table["image_path"]],
            "JOD": jod,
            "JOD STD": std,
            "CI LOW": low,
            "CI HIGH": high,
            "CI RANGE": high - low,
            "QUALITY LEVEL": table.get(
                "quality_level", pd.Series([np.nan] * len(table))
            ).to_numpy(),
            "CLUSTER": table.get("cluster", pd.Series([np.nan] * len(table))).to_numpy(),
            "TOTAL COMPARISONS": table.get(
                "n_comparisons", pd.Series([np.nan] * len(table))
            ).to_numpy(),
            "IMAGE": [Path(p).name for p in table["image_path"]],
            "SCENE": table["scene"].to_numpy(),
            "ATTRIBUTE": table["attribute"].to_numpy(),
            "SCENE IDX": [scenes.index(str(s)) for s in table["scene"]],
            "CONDITION": table.get("lighting", pd.Series([""] * len(table))).to_numpy(),
        }
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
