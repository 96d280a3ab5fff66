"""How close jodkit's scores come to the truth, on simulated experiments.

Run from the repository root:

    python benchmarks/scaling_accuracy.py                      # both studies
    python benchmarks/scaling_accuracy.py --studies recovery
    python benchmarks/scaling_accuracy.py --studies coverage --experiments 100 --prior none

Studies:
  recovery  RMSE between estimated and true JOD (means removed) against the number of
            comparisons per condition, random design, 100 conditions, 5 repetitions.
  coverage  Share of true scores inside the 95% observer-bootstrap interval, over many
            simulated experiments (nominal: 0.95).

Trials come from ``scaling.simulate`` and go through the public ``scaling.scale``.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import pandas as pd

from scaling.bootstrap import bootstrap_scores
from scaling.simulate import make_true_scores, simulate_observer_counts, simulate_trials
from scaling.solvers import solve_exact

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--studies", nargs="+", default=["recovery", "coverage"], choices=["recovery", "coverage"]
    )
    parser.add_argument("--prior", default="gaussian", choices=["gaussian", "none"])
    parser.add_argument("--conditions", type=int, default=100, help="recovery study")
    parser.add_argument("--repetitions", type=int, default=5, help="recovery study")
    parser.add_argument("--experiments", type=int, default=50, help="coverage study")
    parser.add_argument("--coverage-conditions", type=int, default=15)
    parser.add_argument("--observers", type=int, default=12)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    if "recovery" in args.studies:
        recovery(args.conditions, args.repetitions, args.prior)
    if "coverage" in args.studies:
        coverage(
            args.experiments, args.coverage_conditions, args.observers, args.samples, args.prior
        )


if __name__ == "__main__":
    main()
