"""How close jodkit's scores come to the truth, on simulated experiments.

Run from the repository root:

    python benchmarks/scaling_accuracy.py                      # both studies
    python benchmarks/scaling_accuracy.py --studies recovery
    python benchmarks/scaling_accuracy.py --studies coverage --experiments 100 --prior none
    python benchmarks/scaling_accuracy.py --studies tolerance

Studies:
  recovery  RMSE between estimated and true JOD (means removed) against the number of
            comparisons per condition, random design, 100 conditions, 5 repetitions.
  coverage  Share of true scores inside the 95% observer-bootstrap interval, over many
            simulated experiments (nominal: 0.95).
  tolerance How far the bootstrap's fast re-solves (chord start, BOOTSTRAP_STEP_TOL, last
            step unconfirmed) move std and CI bounds from fully converged re-solves (same
            seed), on scenes of the speed benchmark (200 conditions, 6,000 comparisons).

Trials come from ``scaling.simulate`` and go through the public ``scaling.scale``.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import pandas as pd

from scaling.api import _unit_counts, pw_scale
from scaling.bootstrap import bootstrap_scores
from scaling.io import counts_from_trials
from scaling.simulate import make_true_scores, simulate_observer_counts, simulate_trials
from scaling.solvers import BOOTSTRAP_STEP_TOL, solve_exact

RECOVERY_COMPARISONS = (5, 10, 20, 40, 80)


def _centred_error(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Join estimate and truth per condition and remove each scale's mean."""
    merged = table.merge(truth, on=["scene", "attribute", "condition"], suffixes=("", "_true"))
    shift = merged["jod"].mean()
    true_shift = merged["jod_true"].mean()
    return merged.assign(
        est=merged["jod"] - shift,
        true=merged["jod_true"] - true_shift,
        low=merged["ci_low"] - shift,
        high=merged["ci_high"] - shift,
    )


def recovery(n_conditions: int, repetitions: int, prior: str) -> None:
    """RMSE to truth against comparisons per condition (through the public ``scale``)."""
    from scaling import scale

    print(f"\n== recovery: {n_conditions} conditions, random design, {repetitions} repetitions")
    print(f"{'comparisons/cond':>17} {'trials':>8} {'RMSE JOD':>9} {'max abs':>8} {'s/solve':>8}")
    for per_condition in RECOVERY_COMPARISONS:
        rmse, worst, seconds = [], [], []
        for rep in range(repetitions):
            truth = make_true_scores(n_conditions, jod_range=6.0, seed=rep)
            n_trials = per_condition * n_conditions // 2
            trials = simulate_trials(
                truth, n_observers=15, design="random", n_comparisons=n_trials, seed=rep
            )
            start = time.perf_counter()
            table = scale(trials, prior=prior, progress=False)
            seconds.append(time.perf_counter() - start)
            err = _centred_error(table, truth)
            rmse.append(float(np.sqrt(np.mean((err["est"] - err["true"]) ** 2))))
            worst.append(float(np.max(np.abs(err["est"] - err["true"]))))
        print(
            f"{per_condition:>17} {n_trials:>8} {np.mean(rmse):>9.3f} {np.mean(worst):>8.2f}"
            f" {np.mean(seconds):>8.3f}"
        )


def _solve(counts: np.ndarray, q0: np.ndarray | None, prior: str) -> np.ndarray:
    return solve_exact(counts, prior=prior, anchor="mean0", q0=q0).q


def coverage(experiments: int, n_conditions: int, observers: int, samples: int, prior: str) -> None:
    """Coverage of the 95% observer-bootstrap interval (engine level: counts, solver, bootstrap)."""
    print(
        f"\n== coverage: {experiments} experiments, {n_conditions} conditions, {observers}"
        f" observers (full design), {samples}-sample observer bootstrap, prior {prior}"
    )
    solve = partial(_solve, prior=prior)
    covered, widths = [], []
    start = time.perf_counter()
    for e in range(experiments):
        truth = make_true_scores(n_conditions, jod_range=4.0, seed=1000 + e)["jod"].to_numpy()
        counts = simulate_observer_counts(truth, observers, seed=1000 + e)
        q0 = solve(counts.sum(axis=0), None)
        result = bootstrap_scores(counts, solve, n_samples=samples, q0=q0, seed=e, progress=False)
        # Scores are relative: compare after removing the mean of the full-data solution.
        shift = q0.mean()
        covered.append((result.ci_low - shift <= truth) & (truth <= result.ci_high - shift))
        widths.append(result.ci_high - result.ci_low)
    hits = np.concatenate(covered)
    per_experiment = np.array([c.mean() for c in covered])
    print(f"scores: {hits.size}; coverage: {hits.mean():.3f} (nominal 0.950)")
    print(
        f"per-experiment coverage: min {per_experiment.min():.2f}, median"
        f" {np.median(per_experiment):.2f}, max {per_experiment.max():.2f}"
    )
    print(f"median CI width: {np.median(np.concatenate(widths)):.2f} JOD")
    print(f"time: {time.perf_counter() - start:.1f} s")


def _converged(counts: np.ndarray, q0: np.ndarray | None) -> np.ndarray:
    """A bootstrap re-solve run to the default tolerance (1e-9 JOD), confirmed."""
    return pw_scale(counts, q0=q0).jod


def tolerance(scenes: int, samples: int) -> None:
    """Fast bootstrap re-solves against converged ones, same resamples."""
    from scaling import scale

    print(
        f"\n== tolerance: {scenes} scenes x 200 conditions, {samples}-sample observer bootstrap,"
        f" BOOTSTRAP_STEP_TOL = {BOOTSTRAP_STEP_TOL:g} JOD against 1e-9"
    )
    truth = make_true_scores(200, n_scenes=25, seed=200)
    trials = simulate_trials(
        truth, n_observers=20, design="random", n_comparisons=6000, neighbours=5, seed=200
    )
    print(f"{'scene':>6} {'max |d std|':>12} {'max |d ci_low|':>15} {'max |d ci_high|':>16}")
    for scene in sorted(trials["scene"].unique())[:scenes]:
        group = trials[trials["scene"] == scene]
        fast = scale(group, bootstrap=samples, seed=0, progress=False)
        conditions = sorted(set(group["condition_A"]) | set(group["condition_B"]))
        full = pw_scale(counts_from_trials(group, conditions)).jod
        units = _unit_counts(group, conditions, "drop", "observer")
        slow = bootstrap_scores(units, _converged, n_samples=samples, q0=full, progress=False)
        print(
            f"{scene:>6} {np.nanmax(np.abs(fast['jod_std'] - slow.std)):>12.1e}"
            f" {np.nanmax(np.abs(fast['ci_low'] - slow.ci_low)):>15.1e}"
            f" {np.nanmax(np.abs(fast['ci_high'] - slow.ci_high)):>16.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--studies",
        nargs="+",
        default=["recovery", "coverage"],
        choices=["recovery", "coverage", "tolerance"],
    )
    parser.add_argument("--prior", default="gaussian", choices=["gaussian", "none"])
    parser.add_argument("--conditions", type=int, default=100, help="recovery study")
    parser.add_argument("--repetitions", type=int, default=5, help="recovery study")
    parser.add_argument("--experiments", type=int, default=50, help="coverage study")
    parser.add_argument("--coverage-conditions", type=int, default=15)
    parser.add_argument("--observers", type=int, default=12)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--tolerance-scenes", type=int, default=2)
    parser.add_argument("--tolerance-samples", type=int, default=500)
    args = parser.parse_args()
    if "recovery" in args.studies:
        recovery(args.conditions, args.repetitions, args.prior)
    if "coverage" in args.studies:
        coverage(
            args.experiments, args.coverage_conditions, args.observers, args.samples, args.prior
        )
    if "tolerance" in args.studies:
        tolerance(args.tolerance_scenes, args.tolerance_samples)


if __name__ == "__main__":
    main()
