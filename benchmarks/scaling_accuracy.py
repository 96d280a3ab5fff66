"""How close jodkit's scores come to the truth and to pwcmp's optimum, on simulated data.

Run from the repository root (each study prints its table and the time it took):

    python benchmarks/scaling_accuracy.py --studies coverage           # the default studies:
    python benchmarks/scaling_accuracy.py --studies recovery           #   recovery, coverage
    python benchmarks/scaling_accuracy.py --studies optimum
    python benchmarks/scaling_accuracy.py --studies bootstrap
    python benchmarks/scaling_accuracy.py --studies starts
    python benchmarks/scaling_accuracy.py --studies tolerance

Studies:
  recovery   RMSE between estimated and true JOD (means removed) against the number of
             comparisons per condition, random design, 100 conditions, 5 repetitions.
  coverage   Share of true scores inside the 95% observer-bootstrap intervals (each
             resample scaled as ``scaling.scale`` scales it), on full, random-incomplete
             and neighbour designs (10-200 conditions, 10-40 observers), for the conditions
             the design determines (the core) and for the others; with pwcmp's prior and
             without; pwcmp's percentile interval and the expanded one
             (``interval="expanded"``) from the same resamples. Also the slope of the
             estimates against the truth and the bias of the scores outside the core.
  optimum    jodkit's scores against an independent exact optimiser of pwcmp's objective
             (tests/scaling/pwcmp_reference.py): the issue's 30-condition design and
             wide-ranged random designs (80-250 conditions over 20-25 JOD).
  bootstrap  jodkit's bootstrap (one estimator) against pwcmp's pw_scale_bootstrp
             (the reference's BFGS from 0) on the same observer resamples of a full design.
  starts     How often each of the estimator's cold starts is the only one to reach the
             lowest objective, on random sparse designs with conditions outside the core.
  tolerance  How far the bootstrap's fast re-solves (chord start, BOOTSTRAP_STEP_TOL, last
             step unconfirmed) move std and CI bounds from fully converged re-solves.

Trials come from ``scaling.simulate``; timings are wall-clock on whatever shares the CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from scaling import scale
from scaling.api import _solve_for_bootstrap, _unit_counts, pw_scale
from scaling.bootstrap import bootstrap_scores, summarise
from scaling.graph import WinOrder, component_labels
from scaling.io import counts_from_trials
from scaling.likelihood import arcsine_scores
from scaling.optimum import TWO_SIDED, _descend, _starts
from scaling.simulate import make_true_scores, simulate_observer_counts, simulate_trials
from scaling.solvers import BOOTSTRAP_STEP_TOL, chord_start
from scaling.threads import single_threaded_blas
from scaling.thurstone import expanded_alpha

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "scaling" / "pwcmp_reference.py"
RECOVERY_COMPARISONS = (5, 10, 20, 40, 80)
COVERAGE_CELLS = (
    # design, conditions, observers, comparisons per condition (None: every pair once
    # per observer), experiments
    ("full", 10, 10, None, 40),
    ("full", 10, 20, None, 40),
    ("full", 10, 40, None, 20),
    ("full", 30, 20, None, 10),
    ("random", 50, 20, 30, 10),
    ("random", 100, 20, 30, 4),
    ("neighbour", 50, 20, 40, 10),
    ("neighbour", 200, 20, 40, 3),
)


def _reference():
    """tests/scaling/pwcmp_reference.py (independent of ``scaling``), loaded by path."""
    spec = importlib.util.spec_from_file_location("pwcmp_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = scale(trials, prior=prior, progress=False)
            seconds.append(time.perf_counter() - start)
            err = _centred_error(table, truth)
            rmse.append(float(np.sqrt(np.mean((err["est"] - err["true"]) ** 2))))
            worst.append(float(np.max(np.abs(err["est"] - err["true"]))))
        print(
            f"{per_condition:>17} {n_trials:>8} {np.mean(rmse):>9.3f} {np.mean(worst):>8.2f}"
            f" {np.mean(seconds):>8.3f}"
        )


def _coverage_cell(
    design: str, n: int, observers: int, per_condition: int | None, experiments: int, samples: int
) -> dict[str, np.ndarray]:
    """Coverage records of one cell, per prior: hits of the percentile and the expanded
    interval (from the same resamples) on the core's scores and on the others, widths,
    one-sidedness, and the errors against the truth (means removed)."""
    records: dict[str, list] = {}
    for e in range(experiments):
        truth = make_true_scores(n, jod_range=6.0, seed=7000 + e)
        comparisons = None if per_condition is None else per_condition * n // 2
        trials = simulate_trials(
            truth,
            n_observers=observers,
            design=design,
            n_comparisons=comparisons,
            neighbours=5,
            seed=8000 + e,
        )
        conditions = sorted(set(trials["condition_A"]) | set(trials["condition_B"]))
        true = truth.set_index("condition").loc[conditions, "jod"].to_numpy()
        true = true - true.mean()
        counts = counts_from_trials(trials, conditions)
        units = _unit_counts(trials, conditions, "drop", "observer")
        for prior in ("gaussian", "none"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = pw_scale(counts, prior)
                chord = (
                    chord_start(counts, result.jod, prior) if result.component.max() == 0 else None
                )
                solve = partial(_solve_for_bootstrap, prior=prior, anchor="mean0", chord=chord)
                boot = bootstrap_scores(
                    units, solve, n_samples=samples, q0=result.jod, seed=e, progress=False
                )
            core = result.determined
            estimate = result.jod - np.nanmean(result.jod)
            for name, alpha in (
                ("percentile", 0.05),
                ("expanded", expanded_alpha(0.05, observers)),
            ):
                summary = summarise(boot.samples, alpha, boot.bounds)
                shift = np.nanmean(result.jod)
                inside = (summary.ci_low - shift <= true) & (true <= summary.ci_high - shift)
                records.setdefault(f"{prior}:{name}:core", []).append(inside[core])
                records.setdefault(f"{prior}:{name}:outside", []).append(inside[~core])
                if name == "percentile":
                    width = summary.ci_high - summary.ci_low
                    records.setdefault(f"{prior}:width", []).append(width[core])
                    records.setdefault(f"{prior}:one_sided", []).append(~np.isfinite(width[~core]))
            records.setdefault(f"{prior}:true_core", []).append(true[core])
            records.setdefault(f"{prior}:est_core", []).append(estimate[core])
            records.setdefault(f"{prior}:true_out", []).append(true[~core])
            records.setdefault(f"{prior}:est_out", []).append(estimate[~core])
    return {k: np.concatenate(v) for k, v in records.items()}


def coverage(samples: int, cells: tuple = COVERAGE_CELLS) -> None:
    """Coverage of the 95% observer-bootstrap intervals, per design and prior."""
    print(f"\n== coverage of 95% observer-bootstrap intervals ({samples} resamples)")
    print(
        "core: the scores the design determines; outside: the others (pwcmp's prior holds"
        " them, or their optimum is at infinity);\npct: pwcmp's percentile interval; exp: the"
        " expanded one (interval='expanded'); slope: estimated against true scores (core);\n"
        "bias: mean error of the outside scores, positive outwards; width: median of the core."
    )
    print(
        f"{'design':>9} {'N':>4} {'U':>3} {'prior':>8} {'core n':>7} {'pct':>6} {'exp':>6}"
        f" {'width':>6} {'slope':>6} {'out n':>6} {'pct':>6} {'exp':>6} {'1-sided':>7}"
        f" {'bias':>6} {'s':>5}"
    )
    for design, n, observers, per_condition, experiments in cells:
        start = time.perf_counter()
        r = _coverage_cell(design, n, observers, per_condition, experiments, samples)
        seconds = time.perf_counter() - start
        for prior in ("gaussian", "none"):
            true, est = r[f"{prior}:true_core"], r[f"{prior}:est_core"]
            slope = np.polyfit(true, est, 1)[0] if true.size > 2 else np.nan
            outside = r[f"{prior}:percentile:outside"]
            print(
                f"{design:>9} {n:>4} {observers:>3} {prior:>8} {true.size:>7}"
                f" {r[f'{prior}:percentile:core'].mean():>6.3f}"
                f" {r[f'{prior}:expanded:core'].mean():>6.3f}"
                f" {np.median(r[f'{prior}:width']):>6.2f} {slope:>6.3f} {outside.size:>6}"
                f" {_mean(outside):>6} {_mean(r[f'{prior}:expanded:outside']):>6}"
                f" {_mean(r[f'{prior}:one_sided']):>7}"
                f" {_bias(r[f'{prior}:true_out'], r[f'{prior}:est_out']):>6} {seconds:>5.0f}"
            )


def _mean(values: np.ndarray) -> str:
    return f"{values.mean():.3f}" if values.size else "-"


def _bias(true: np.ndarray, estimate: np.ndarray) -> str:
    """Mean error, signed towards the end of the scale each score sits at (positive:
    pushed outwards, beyond its true score)."""
    finite = np.isfinite(estimate)
    if not finite.any():
        return "-"
    return f"{np.mean(np.sign(true[finite]) * (estimate - true)[finite]):.2f}"


def optimum() -> None:
    """Agreement with an independent exact optimiser of pwcmp's objective."""
    reference = _reference()
    print("\n== optimum: jodkit against an independent exact optimiser of pwcmp's objective")
    print(
        f"{'design':>34} {'outside core':>12} {'placed':>6} {'max |diff| JOD':>15}"
        f" {'objective gap':>14} {'jodkit s':>9} {'reference s':>12}"
    )
    cases = [("issue: 30 cond., 300 trials, 10 obs.", 30, 300, 10, 14, 8.0, 4, 10)]
    cases += [
        (f"wide: {n} cond. over {spread:g} JOD, {15 * n} trials", n, 15 * n, 20, seed, spread, 1, j)
        for n, spread, seed, j in ((80, 20.0, 1, 10), (150, 22.0, 2, 10), (250, 25.0, 3, 0))
    ]
    for label, n, trials, observers, seed, spread, starts, jumps in cases:
        counts = reference.random_design(n, trials, observers, seed, spread=spread)[0].sum(axis=0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = pw_scale(counts)
        mine = time.perf_counter() - start
        start = time.perf_counter()
        theirs, value = reference.exact_optimum(counts, starts=starts, jumps=jumps)
        theirs_seconds = time.perf_counter() - start
        finite = ours.bound == TWO_SIDED
        difference = np.abs(
            (ours.jod[finite] - ours.jod[finite].mean()) - (theirs[finite] - theirs[finite].mean())
        ).max()
        print(
            f"{label:>34} {(~ours.determined).sum():>12} {(~finite).sum():>6}"
            f" {difference:>15.1e} {ours.objective - value:>14.1e} {mine:>9.2f}"
            f" {theirs_seconds:>12.1f}"
        )


def bootstrap_agreement(samples: int) -> None:
    """jodkit's resample rule against pwcmp's pw_scale_bootstrp on the same resamples."""
    reference = _reference()
    print(
        f"\n== bootstrap: 10 conditions over 12 JOD, 20 observers (full design), {samples}"
        " observer resamples, the same for both"
    )
    per_observer = simulate_observer_counts(np.linspace(-6.0, 6.0, 10), 20, seed=1)
    full = pw_scale(per_observer.sum(axis=0))
    draws = reference.observer_resamples(20, samples, seed=2)
    start = time.perf_counter()
    _, low, high = reference.pwcmp_bootstrap(per_observer, draws)
    theirs = time.perf_counter() - start
    start = time.perf_counter()
    scores, bounds, outside = [], [], 0
    with single_threaded_blas():
        for pick in draws:
            counts = per_observer[pick].sum(axis=0)
            order = WinOrder.from_counts(counts)
            outside += bool((order.strong != order.core).any())
            q, bound = _solve_for_bootstrap(counts, full.jod, "gaussian", "mean0")
            scores.append(q)
            bounds.append(bound)
    mine = time.perf_counter() - start
    ours = summarise(np.array(scores), 0.05, np.array(bounds))
    width = high - low
    print(f"resamples with a condition outside the core: {outside / samples:.0%}")
    print(
        f"max |ci_low - pwcmp| = {np.abs(ours.ci_low - low).max():.4f} JOD"
        f" ({np.max(np.abs(ours.ci_low - low) / width):.2%} of the width);"
        f" max |ci_high - pwcmp| = {np.abs(ours.ci_high - high).max():.4f} JOD"
        f" ({np.max(np.abs(ours.ci_high - high) / width):.2%})"
    )
    print(f"time: jodkit {mine:.1f} s, reference {theirs:.1f} s")


def starts(designs: int) -> None:
    """Which of the estimator's cold starts reach the lowest objective."""
    reference = _reference()
    rng = np.random.default_rng(0)
    only_best = np.zeros(3, dtype=int)
    counted = 0
    for trial in range(designs):
        n = int(rng.integers(8, 60))
        per_condition = int(rng.choice([3, 5, 8, 15, 30]))
        spread = float(rng.choice([2.0, 4.0, 8.0, 15.0, 25.0]))
        observers = int(rng.integers(3, 20))
        per_observer, _ = reference.random_design(
            n, n * per_condition // 2, observers, 5000 + trial, spread=spread
        )
        counts = per_observer.sum(axis=0)
        order = WinOrder.from_counts(counts)
        outside = np.unique(order.strong[order.strong != order.core])
        if component_labels(counts).max() > 0 or order.core < 0 or not outside.size:
            continue
        counted += 1
        with single_threaded_blas():
            limits = np.array(
                [
                    _descend(counts, order, "mean0", outside, 1e-9, True, start).limit
                    for start in _starts(arcsine_scores(counts), None, None, True)
                ]
            )
        best = limits <= limits.min() + 1e-9 * max(1.0, abs(limits.min()))
        if best.sum() == 1:
            only_best[np.argmax(best)] += 1
    print(f"\n== starts: {counted} random sparse designs with conditions outside the core")
    for name, count in zip(("cold (convex, placed)", "arcsine", "zeros"), only_best, strict=True):
        print(f"{name:>22}: the only one to reach the lowest objective on {count}")


def _converged(counts: np.ndarray, q0: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A bootstrap re-solve run to the default tolerance (1e-9 JOD), confirmed."""
    result = pw_scale(counts, q0=q0)
    return result.jod, result.bound


def tolerance(scenes: int, samples: int) -> None:
    """Fast bootstrap re-solves against converged ones, same resamples."""
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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
        choices=["recovery", "coverage", "optimum", "bootstrap", "starts", "tolerance"],
    )
    parser.add_argument("--prior", default="gaussian", choices=["gaussian", "none"])
    parser.add_argument("--conditions", type=int, default=100, help="recovery study")
    parser.add_argument("--repetitions", type=int, default=5, help="recovery study")
    parser.add_argument("--samples", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--designs", type=int, default=200, help="starts study")
    parser.add_argument("--tolerance-scenes", type=int, default=2)
    parser.add_argument("--tolerance-samples", type=int, default=500)
    args = parser.parse_args()
    studies = {
        "recovery": lambda: recovery(args.conditions, args.repetitions, args.prior),
        "coverage": lambda: coverage(args.samples),
        "optimum": optimum,
        "bootstrap": lambda: bootstrap_agreement(max(args.samples, 500)),
        "starts": lambda: starts(args.designs),
        "tolerance": lambda: tolerance(args.tolerance_scenes, args.tolerance_samples),
    }
    for study in args.studies:
        start = time.perf_counter()
        studies[study]()
        print(f"({study}: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
