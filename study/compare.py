"""Which alignment method recovers the true global scale best? (``python -m study.compare``)

On the simulated panel (truth known), per seed: simulate per-scene trials, scale each scene,
pick cross-content images with ``alignment.selection``, simulate cross-content trials,
scale them, and align with the paper's OLS, the weighted and errors-in-variables fits and
the joint model. Metrics against the true global quality q: RMSE after the best affine map
u -> q (the unified scale inherits the reference scene's unit and offset, which the data
cannot tie to q's, so only agreement up to an affine map is meaningful) and Spearman's rho.

Per-scene and cross-content scales here come from ``scaling.solvers.solve_exact`` on each
group's count matrix, with the JOD std from the inverse Hessian of the likelihood (fast
enough to repeat over seeds; a bootstrap would give similar widths).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm import tqdm

from alignment.align import align
from alignment.formats import AlignmentWarning, cross_id
from alignment.joint import align_joint
from alignment.selection import select_cross_images
from scaling.likelihood import ThurstoneObjective
from scaling.solvers import solve_exact
from study.panel import cross_trials, make_truth, per_scene_trials
from study.renditions import ladder

METHODS = ("paper", "weighted", "eiv", "joint")


def scale_group(a: pd.Series, b: pd.Series, picked_a: pd.Series) -> pd.DataFrame:
    """JOD and std of one group's conditions from its trials (A ids, B ids, is_A_selected)."""
    names = sorted(set(a) | set(b))
    idx = {n: i for i, n in enumerate(names)}
    ia, ib = a.map(idx).to_numpy(), b.map(idx).to_numpy()
    sel = picked_a.to_numpy(int)
    counts = np.zeros((len(names), len(names)))
    np.add.at(counts, (np.where(sel == 1, ia, ib), np.where(sel == 1, ib, ia)), 1)
    q = solve_exact(counts).q
    hess = ThurstoneObjective(counts).likelihood_hessian(q)
    std = np.sqrt(np.clip(np.diag(np.linalg.pinv(hess)), 0, None))
    return pd.DataFrame({"condition": names, "jod": q, "jod_std": std})


def simulate_and_scale(seed: int, n_scenes: int = 6, budget: int = 5) -> dict:
    """One simulated study of the detail attribute: truth, trials and both scales."""
    steps = ladder((1.0, 0.7, 0.5, 0.35, 0.25), (0.0, 0.03, 0.07))
    manifest = pd.DataFrame(
        [
            {"scene": f"s{j}", "condition": f"r{k:02d}"} | p.as_dict()
            for j in range(n_scenes)
            for k, p in enumerate(steps)
        ]
    )
    truth = make_truth(manifest, seed=seed)
    truth = truth[truth["attribute"] == "detail"].reset_index(drop=True)
    st = per_scene_trials(truth, n_observers=15, seed=seed)
    scenes = pd.concat(
        [
            scale_group(g["condition_A"], g["condition_B"], g["is_A_selected"]).assign(scene=s)
            for s, g in st.groupby("scene")
        ],
        ignore_index=True,
    )
    scenes["ci_low"] = scenes["jod"] - 1.96 * scenes["jod_std"]
    scenes["ci_high"] = scenes["jod"] + 1.96 * scenes["jod_std"]
    chosen = select_cross_images(scenes, budget).assign(attribute="detail")
    ct = cross_trials(truth, chosen, n_observers=15, seed=seed)
    ida = pd.Series([cross_id(s, c) for s, c in zip(ct["scene_A"], ct["condition_A"], strict=True)])
    idb = pd.Series([cross_id(s, c) for s, c in zip(ct["scene_B"], ct["condition_B"], strict=True)])
    cross = scale_group(ida, idb, ct["is_A_selected"])
    return {"truth": truth, "st": st, "ct": ct, "scenes": scenes, "cross": cross}


def score(unified: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    """RMSE after the best affine map to the truth, and Spearman's rho."""
    m = truth.merge(unified, on=["scene", "condition"])
    design = np.c_[m["jod_unified"], np.ones(len(m))]
    coef = np.linalg.lstsq(design, m["q_true"], rcond=None)[0]
    rmse = float(np.sqrt(np.mean((design @ coef - m["q_true"]) ** 2)))
    return rmse, float(spearmanr(m["q_true"], m["jod_unified"])[0])


def compare(seeds: int = 5, progress: bool = True) -> pd.DataFrame:
    """Per-seed metrics of every method (long table: seed, method, rmse, spearman)."""
    rows = []
    for seed in tqdm(range(seeds), desc="simulated studies", disable=not progress):
        sim = simulate_and_scale(seed)
        ref = sorted(sim["scenes"]["scene"].unique())[0]
        for method in METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AlignmentWarning)
                if method == "joint":
                    u = align_joint(sim["st"], sim["ct"], reference=ref)
                else:
                    u = align(sim["scenes"], sim["cross"], reference=ref, method=method)
            rmse, rho = score(u, sim["truth"])
            rows.append({"seed": seed, "method": method, "rmse": rmse, "spearman": rho})
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per method."""
    out = results.groupby("method", sort=False)[["rmse", "spearman"]].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    res = compare(args.seeds)
    table = summary(res)
    print(f"| method | RMSE to truth (JOD) | Spearman | ({args.seeds} seeds, mean ± std)")
    print("|---|---|---|")
    for method, r in table.iterrows():
        print(
            f"| {method} | {r.rmse_mean:.3f} ± {r.rmse_std:.3f} | "
            f"{r.spearman_mean:.4f} ± {r.spearman_std:.4f} |"
        )


if __name__ == "__main__":
    main()
