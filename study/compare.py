"""Which alignment method recovers the true global scale best? (``python -m study.compare``)

On the simulated panel (truth known), per seed: simulate per-scene trials, scale each scene,
pick cross-content images with ``alignment.selection``, simulate cross-content trials,
scale them, and align with the paper's OLS, the weighted and errors-in-variables fits and
the joint model. Metrics against the true global quality q: RMSE after the best affine map
u -> q (the unified scale inherits the reference scene's unit and offset, which the data
cannot tie to q's, so only agreement up to an affine map is meaningful) and Spearman's rho.

Per-scene and cross-content scales come from ``scaling.scale`` with an observer bootstrap
(``study.pipeline``), as in ``jod demo``.
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd
from tqdm import tqdm

from alignment.align import align
from alignment.formats import AlignmentWarning
from alignment.joint import SLOPE_PRIOR, align_joint
from study.pipeline import PanelConfig, recovery, simulate_study
from study.renditions import ladder

METHODS = ("paper", "weighted", "eiv", "joint")


def study_manifest(n_scenes: int = 6) -> pd.DataFrame:
    """The compared study: ``n_scenes`` scenes x 15 renditions (no images needed)."""
    steps = ladder((1.0, 0.7, 0.5, 0.35, 0.25), (0.0, 0.03, 0.07))
    return pd.DataFrame(
        [
            {"scene": f"s{j}", "condition": f"r{k:02d}"} | p.as_dict()
            for j in range(n_scenes)
            for k, p in enumerate(steps)
        ]
    )


def compare(
    seeds: int = 5, bootstrap: int = 100, progress: bool = True, slope_prior: float = SLOPE_PRIOR
) -> pd.DataFrame:
    """Per-seed metrics of every method (long table: seed, method, rmse, spearman, flagged).

    ``bootstrap``: samples per scaled group, for the ``jod_std`` the weighted and
    errors-in-variables fits use. ``slope_prior``: the joint model's. ``flagged``: scenes
    the alignment checks warn about (``alignment.checks``).
    """
    manifest = study_manifest()
    rows = []
    for seed in tqdm(range(seeds), desc="simulated studies", disable=not progress):
        config = PanelConfig(bootstrap=bootstrap, seed=seed)
        sim = simulate_study(manifest, config, attributes=("detail",), n_jobs=1)
        ref = sorted(sim.scene_scales["scene"].unique())[0]
        for method in METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AlignmentWarning)
                if method == "joint":
                    u = align_joint(
                        sim.scene_trials, sim.cross_trials, reference=ref, slope_prior=slope_prior
                    )
                else:
                    u = align(sim.scene_scales, sim.cross_scales, reference=ref, method=method)
            fit = recovery(u, sim.truth).iloc[0]
            rows.append(
                {
                    "seed": seed,
                    "method": method,
                    "rmse": fit["rmse"],
                    "spearman": fit["spearman"],
                    "flagged": len(u.attrs["jodkit"]["warnings"]),
                }
            )
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per method."""
    groups = results.groupby("method", sort=False)
    out = groups[["rmse", "spearman"]].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["flagged"] = groups["flagged"].sum()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=100, help="samples per scaled group")
    parser.add_argument(
        "--slope-prior", type=float, default=SLOPE_PRIOR, help="the joint model's (0: none)"
    )
    args = parser.parse_args()
    res = compare(args.seeds, args.bootstrap, slope_prior=args.slope_prior)
    table = summary(res)
    print(
        f"| method | RMSE to truth (JOD) | Spearman | warnings | ({args.seeds} seeds, mean ± std)"
    )
    print("|---|---|---|---|")
    for method, r in table.iterrows():
        print(
            f"| {method} | {r.rmse_mean:.3f} ± {r.rmse_std:.3f} | "
            f"{r.spearman_mean:.4f} ± {r.spearman_std:.4f} | {int(r.flagged)} |"
        )


if __name__ == "__main__":
    main()
