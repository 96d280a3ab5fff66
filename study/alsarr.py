"""Alignment on real data: ALSaRR's motion-quality experiment (``python -m study.alsarr``).

Data: ``shared/data/real/alsarr_vrs/vrs_exp_data.csv`` (Jindal et al., SIGGRAPH Asia 2021;
see its README): 13 observers, 9 config x velocity experiments, 4 textures (the
"scenes"), shading resolution 1, 0.5 or 0.25. Within-texture trials compare the three
resolutions of one texture; cross-texture trials compare reduced resolutions of two
textures; full resolution, never compared across textures, is one shared anchor in the
authors' analysis.

Per experiment, two routes to one scale:

``aligned``
    scale each texture's own trials (``scaling.scale``, by texture: full, 0.5, 0.25), scale
    the cross-texture trials (images ``"<texture>/<resolution>"``), and align the textures
    through them (``alignment.align``, paper or offset method, or
    ``alignment.joint.align_joint``).
    Each texture has exactly two images in the cross task, so its line is exact and the
    shared full-resolution anchor is not used to tie textures together.
``one scale``
    scale all trials of the experiment at once, full resolution as one condition
    (the authors' 9-condition layout).

Both are JOD scales (Thurstone, 1 JOD = 75%); the aligned one takes the reference
texture's unit, so both are shifted to put full resolution (the reference texture's, for
``aligned``) at 0, and compared on the 8 reduced-resolution conditions. How far the other
textures' full-resolution scores land from 0 on the aligned scale tells whether the
alignment agrees with the assumption that full resolution looks the same for every texture.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm import tqdm

import scaling
from alignment.align import align
from alignment.formats import AlignmentWarning
from alignment.joint import align_joint
from scaling.errors import InputError

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/real/alsarr_vrs/vrs_exp_data.csv"
FULL = "full_res"
METHODS = ("paper", "offset", "joint")
_COLUMNS = (
    "Observer",
    "Config",
    "Stimulus1_type",
    "Stimulus2_type",
    "Stimulus1_resolution",
    "Stimulus2_resolution",
    "Stimulus1_xvelolicty",
    "User_Selection",
)


def _resolution(values: pd.Series) -> pd.Series:
    """Resolution labels as in the README: ``1``, ``0.5``, ``0.25``."""
    return values.map(lambda r: f"{float(r):g}")


def read_vrs(path: Path | str = DATA) -> pd.DataFrame:
    """The VRS trials in jodkit's layout, one row per trial.

    Columns: ``observer, experiment, scene_A, scene_B, condition_A, condition_B,
    is_A_selected`` with scene = texture, condition = resolution label, experiment =
    ``<Config>_v<velocity>``.
    """
    raw = scaling.io.read_any_table(path)
    missing = [c for c in _COLUMNS if c not in raw.columns]
    if missing:
        raise InputError("missing column", source=str(path), field=missing[0])
    choice = pd.to_numeric(raw["User_Selection"], errors="coerce")
    bad = np.flatnonzero(~choice.isin([1, 2]).to_numpy())
    if bad.size:
        raise InputError(
            f"must be 1 or 2, got {raw['User_Selection'].iloc[bad[0]]!r}",
            source=str(path),
            row=int(bad[0]) + 1,
            field="User_Selection",
        )
    velocity = raw["Stimulus1_xvelolicty"].map(lambda v: f"{float(v):g}")
    return pd.DataFrame(
        {
            "observer": raw["Observer"].astype(str),
            "experiment": raw["Config"].astype(str) + "_v" + velocity,
            "scene_A": raw["Stimulus1_type"].astype(str),
            "scene_B": raw["Stimulus2_type"].astype(str),
            "condition_A": _resolution(raw["Stimulus1_resolution"]),
            "condition_B": _resolution(raw["Stimulus2_resolution"]),
            "is_A_selected": (choice == 1).astype(int),
        }
    )


def _one_scale_names(trials: pd.DataFrame, side: str) -> pd.Series:
    """The authors' condition names: ``full_res`` shared, else ``<texture>_<resolution>``."""
    cond = trials[f"condition_{side}"]
    return cond.where(cond == "1", trials[f"scene_{side}"] + "_" + cond).replace("1", FULL)


def compare_experiment(trials: pd.DataFrame, method: str = "paper") -> pd.DataFrame:
    """One experiment's trials -> aligned and one-scale scores, per texture and resolution.

    Returns ``scene, condition, aligned, one_scale, difference`` (JOD, full resolution of
    the reference texture at 0 on both scales); the reference is in ``attrs``.
    """
    within = trials[trials["scene_A"] == trials["scene_B"]]
    cross = trials[trials["scene_A"] != trials["scene_B"]]
    texture_trials = within.drop(columns="scene_B").rename(columns={"scene_A": "scene"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)  # counted in ``problems``
        if method == "joint":
            unified = align_joint(texture_trials, cross)
        else:
            scenes = scaling.scale(texture_trials, by=["scene"], progress=False)
            cross_scale = scaling.scale(cross, by=[], progress=False)
            unified = align(scenes, cross_scale, method=method)
    info = unified.attrs["jodkit"]["attributes"]["all"]
    reference = info["reference"]
    one = trials.assign(
        condition_A=_one_scale_names(trials, "A"), condition_B=_one_scale_names(trials, "B")
    )
    joint = scaling.scale(one.drop(columns=["scene_A", "scene_B"]), by=[], progress=False)
    joint_jod = joint.set_index("condition")["jod"]
    u = unified.set_index(["scene", "condition"])["jod_unified"]
    rows = []
    for (scene, cond), value in u.items():
        name = FULL if cond == "1" else f"{scene}_{cond}"
        rows.append(
            {
                "scene": scene,
                "condition": cond,
                "aligned": value - u[(reference, "1")],
                "one_scale": joint_jod[name] - joint_jod[FULL],
            }
        )
    out = pd.DataFrame(rows)
    out["difference"] = out["aligned"] - out["one_scale"]
    out.attrs["reference"] = reference
    out.attrs["problems"] = info["problems"]
    return out


def compare_all(
    path: Path | str = DATA, method: str = "paper", progress: bool = True
) -> pd.DataFrame:
    """Per experiment, on the 8 reduced-resolution conditions: max and mean |aligned - one
    scale| (full resolution at 0), the same after removing the mean difference
    (``centred_*``: the shape alone), Spearman's rho; and the largest distance of a
    texture's aligned full-resolution score from the shared anchor; ``problems``: how many
    scenes the alignment checks flag (``alignment.checks``)."""
    trials = read_vrs(path)
    rows = []
    groups = list(trials.groupby("experiment", sort=True))
    for name, exp in tqdm(groups, desc=f"ALSaRR experiments ({method})", disable=not progress):
        scores = compare_experiment(exp, method)
        reduced = scores[scores["condition"] != "1"]
        centred = (reduced["difference"] - reduced["difference"].mean()).abs()
        full = scores[scores["condition"] == "1"]["aligned"]
        rows.append(
            {
                "experiment": name,
                "method": method,
                "reference": scores.attrs["reference"],
                "problems": len(scores.attrs["problems"]),
                "max_abs_diff": reduced["difference"].abs().max(),
                "mean_abs_diff": reduced["difference"].abs().mean(),
                "centred_max_abs_diff": centred.max(),
                "centred_mean_abs_diff": centred.mean(),
                "spearman": spearmanr(reduced["aligned"], reduced["one_scale"])[0],
                "full_res_max_abs": full.abs().max(),
                "one_scale_range": np.ptp(scores["one_scale"]),
            }
        )
    return pd.DataFrame(rows)


def trial_tables(path: Path | str = DATA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The VRS trials as ``jod export`` would write them: per-scene (within-texture) and
    cross-content (cross-texture) trials, ``attribute`` = the experiment."""
    trials = read_vrs(path).rename(columns={"experiment": "attribute"})
    within = trials["scene_A"] == trials["scene_B"]
    per_scene = trials[within].drop(columns="scene_B").rename(columns={"scene_A": "scene"})
    return per_scene.reset_index(drop=True), trials[~within].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="vrs_exp_data.csv")
    parser.add_argument("--method", choices=METHODS, nargs="+", default=list(METHODS))
    parser.add_argument(
        "--export",
        type=Path,
        help="only write trials_per_scene.csv and trials_cross_content.csv (for jod align) here",
    )
    args = parser.parse_args()
    if args.export is not None:
        args.export.mkdir(parents=True, exist_ok=True)
        for name, table in zip(
            ("per_scene", "cross_content"), trial_tables(args.data), strict=True
        ):
            table.to_csv(args.export / f"trials_{name}.csv", index=False)
            print(f"wrote {args.export / f'trials_{name}.csv'} ({len(table)} trials)")
        return
    table = pd.concat([compare_all(args.data, m) for m in args.method], ignore_index=True)
    print(
        "| experiment | method | reference | flagged | max / mean abs diff (JOD) | centred: "
        "max / mean (JOD) | Spearman | textures' full res, max abs (JOD) | one-scale range "
        "(JOD) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        print(
            f"| {r.experiment} | {r.method} | {r.reference} | {r.problems} | "
            f"{r.max_abs_diff:.2f} / "
            f"{r.mean_abs_diff:.2f} | {r.centred_max_abs_diff:.2f} / "
            f"{r.centred_mean_abs_diff:.2f} | {r.spearman:.2f} | {r.full_res_max_abs:.2f} | "
            f"{r.one_scale_range:.2f} |"
        )


if __name__ == "__main__":
    main()
