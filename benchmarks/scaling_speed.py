"""How fast jodkit scales, against pwcmp's reference times.

Run from the repository root:

    python benchmarks/scaling_speed.py                 # all sections
    python benchmarks/scaling_speed.py --sections single growth
    python benchmarks/scaling_speed.py --max-conditions 500 --bootstrap-samples 100

Sections:
  single     200 conditions from 6,000 comparisons, one scene (target < 0.1 s).
  growth     25 ... 1000 conditions, ~30 comparisons per condition, both priors, with the
             solver's iterations (trust-region Newton steps, rejected ones included).
  bootstrap  25 scenes x 200 conditions, observer bootstrap (target < 60 s on 2 cores).
  resolve    One process: warm re-solves of observer resamples at N = 200 (the bootstrap's
             unit of work): ms per re-solve, Newton iterations, ms per objective evaluation.
  profile    The bootstrap's cost per resample on six of its scenes, in one process and on
             two, and where one scene's re-solves spend their time (cProfile).

Time with one BLAS thread per process (``OPENBLAS_NUM_THREADS=1``); on a shared machine
report ``uptime`` next to the figures.

Everything goes through the public ``scaling.scale`` on simulated trial tables
(``scaling.simulate``), so the times include building the count matrices. pwcmp's reference
times (MATLAB code under GNU Octave): about 280 s for 100 conditions / 3,000 trials and
65 min (4.3 GB) for 200 conditions / 6,000 trials.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from scaling import scale
from scaling.api import _solve_for_bootstrap, _unit_counts, pw_scale
from scaling.bootstrap import round_split_ties
from scaling.io import counts_from_trials
from scaling.likelihood import ThurstoneObjective
from scaling.simulate import make_true_scores, simulate_trials
from scaling.solvers import BOOTSTRAP_STEP_TOL, chord_start, solve_exact
from scaling.threads import single_threaded_blas

PWCMP_SECONDS = {100: 280.0, 200: 65 * 60.0}
GROWTH_SIZES = (25, 50, 100, 200, 500, 1000)
COMPARISONS_PER_CONDITION = 30
N_OBSERVERS = 20


def _trials(
    n_conditions: int, n_comparisons: int, n_scenes: int = 1, design: str = "random"
) -> pd.DataFrame:
    """Random design: every pair about once. Neighbour design: each condition against its 5
    nearest, so pairs are compared many times (as in PIQ23-style studies)."""
    truth = make_true_scores(n_conditions, n_scenes=n_scenes, seed=n_conditions)
    return simulate_trials(
        truth,
        n_observers=N_OBSERVERS,
        design=design,
        n_comparisons=n_comparisons,
        neighbours=5,
        seed=n_conditions,
    )


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _row(n: int, comparisons: int, seconds: float) -> str:
    ref = PWCMP_SECONDS.get(n)
    ratio = f"{ref / seconds:10.0f}x" if ref else f"{'-':>11}"
    ref_text = f"{ref:9.0f}" if ref else f"{'-':>9}"
    return f"{n:>10} {comparisons:>12} {seconds:>10.3f} {ref_text} {ratio}"


def single() -> None:
    """200 conditions, 6,000 comparisons."""
    trials = _trials(200, 6000)
    seconds = _best_of(lambda: scale(trials, progress=False), repeats=3)
    print("\n== single scene: 200 conditions, 6,000 comparisons (best of 3)")
    print(f"{'conditions':>10} {'comparisons':>12} {'seconds':>10} {'pwcmp s':>9} {'speed-up':>11}")
    print(_row(200, 6000, seconds))
    print(f"target < 0.1 s: {'met' if seconds < 0.1 else 'NOT met'}")


def _iterations(trials: pd.DataFrame, prior: str) -> int:
    conditions = sorted(set(trials["condition_A"]) | set(trials["condition_B"]))
    return solve_exact(counts_from_trials(trials, conditions), prior=prior).iterations


def growth(max_conditions: int) -> None:
    """Time against the number of conditions at ~30 comparisons per condition."""
    print(f"\n== growth: {COMPARISONS_PER_CONDITION} comparisons per condition (best of 3)")
    print(f"{'prior':>9} {'conditions':>10} {'comparisons':>12} {'seconds':>10} {'iterations':>11}")
    for prior in ("gaussian", "none"):
        for n in (s for s in GROWTH_SIZES if s <= max_conditions):
            comparisons = COMPARISONS_PER_CONDITION * n
            trials = _trials(n, comparisons)
            seconds = _best_of(lambda t=trials, p=prior: scale(t, prior=p, progress=False), 3)
            iterations = _iterations(trials, prior)
            print(f"{prior:>9} {n:>10} {comparisons:>12} {seconds:>10.3f} {iterations:>11}")


def bootstrap(n_samples: int) -> None:
    """25 scenes x 200 conditions with an observer bootstrap."""
    trials = _trials(200, 6000, n_scenes=25)
    start = time.perf_counter()
    table = scale(trials, bootstrap=n_samples, resample="observer", progress=False)
    seconds = time.perf_counter() - start
    print(f"\n== 25 scenes x 200 conditions, {n_samples}-sample observer bootstrap")
    print(f"trials: {len(trials)}, rows out: {len(table)}, seconds: {seconds:.1f}")
    per_solve_ms = seconds / 25 / n_samples * 1e3
    print(f"per scene: {seconds / 25:.2f} s; per bootstrap solve: {per_solve_ms:.1f} ms")
    if n_samples == 500:
        print(f"target < 60 s: {'met' if seconds < 60 else 'NOT met'}")


def resolve(design: str, n_resamples: int = 16) -> None:
    """Warm re-solves of observer resamples of one 200-condition scene, in this process.

    The prior costs O(pairs x distinct (k, n) count pairs): the design decides how many.
    """
    trials = _trials(200, 6000, design=design)
    conditions = sorted(set(trials["condition_A"]) | set(trials["condition_B"]))
    full_counts = counts_from_trials(trials, conditions)
    full = pw_scale(full_counts).jod
    chord = chord_start(full_counts, full)
    units = _unit_counts(trials, conditions, "drop", "observer").T.tocsr()
    rng = np.random.default_rng(1)
    resamples = []
    for _ in range(n_resamples):
        n_units = units.shape[1]
        weights = np.bincount(rng.integers(n_units, size=n_units), minlength=n_units)
        resamples.append(round_split_ties((units @ weights).reshape(200, 200), rng))

    def solve_all() -> None:
        for counts in resamples:
            _solve_for_bootstrap(counts, full, "gaussian", "mean0", chord)

    with single_threaded_blas():
        per_solve = _best_of(solve_all, 3) / n_resamples * 1e3
        iterations = [
            solve_exact(c, q0=full, step_tol=BOOTSTRAP_STEP_TOL, chord=chord).iterations
            for c in resamples
        ]
        objective = ThurstoneObjective(resamples[0])
        groups = objective.positions.group_k.size
        evaluations = {
            "value": lambda: objective.value(full),
            "value+gradient": lambda: objective.value_and_grad(full),
            "value+gradient+Hessian": lambda: objective.value_grad_hess(full),
            "build objective": lambda: ThurstoneObjective(resamples[0]),
        }
        costs = {name: _best_of(fn, 20) * 1e3 for name, fn in evaluations.items()}
    print(
        f"\n== warm re-solves, 200 conditions, {design} design, {n_resamples} observer"
        " resamples (one process)"
    )
    print(f"ms per re-solve (pw_scale, best of 3): {per_solve:.1f}")
    print(f"Newton iterations: mean {np.mean(iterations):.2f}, max {max(iterations)}")
    print(f"distinct (k, n) groups in the first resample: {groups}")
    for name, ms in costs.items():
        print(f"  {name:>24}: {ms:.3f} ms")


def profile(n_samples: int = 160) -> None:
    """Serial and pooled cost per resample, and the functions a re-solve spends time in."""
    trials = _trials(200, 6000, n_scenes=25)
    six = trials[trials["scene"].isin(sorted(trials["scene"].unique())[:6])]
    print(f"\n== bootstrap cost per resample: 6 scenes x {n_samples} samples")
    for jobs in (1, 2):
        run = partial(scale, six, bootstrap=n_samples, n_jobs=jobs, progress=False)
        seconds = _best_of(run, 2)
        print(f"n_jobs={jobs}: {seconds / (6 * n_samples) * 1e3:.2f} ms per resample (wall)")
    one = trials[trials["scene"] == trials["scene"].iloc[0]]
    profiler = cProfile.Profile()
    profiler.runcall(scale, one, bootstrap=200, n_jobs=1, progress=False)
    print("\n== one scene, 200 resamples in one process (cProfile, cumulative seconds)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"scaling/", 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["single", "growth", "bootstrap", "resolve"],
        choices=["single", "growth", "bootstrap", "resolve", "profile"],
    )
    parser.add_argument("--max-conditions", type=int, default=max(GROWTH_SIZES))
    parser.add_argument("--bootstrap-samples", type=int, default=500)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores")
    if "single" in args.sections:
        single()
    if "growth" in args.sections:
        growth(args.max_conditions)
    if "bootstrap" in args.sections:
        bootstrap(args.bootstrap_samples)
    if "resolve" in args.sections:
        for design in ("random", "neighbour"):
            resolve(design)
    if "profile" in args.sections:
        profile()


if __name__ == "__main__":
    main()
