"""Active sampling: how accurate, and how fast, against ASAP, random pairs and round robin.

Run from the repository root:

    python benchmarks/active_sampling.py --sections accuracy --conditions 20 50 200
    python benchmarks/active_sampling.py --sections speed

Sections:
  accuracy  Simulated experiments: true scores uniform over 3, 6 and 12 JOD; N conditions;
            repetitions; 15 observers answering by the Thurstone model (1 JOD = 75%), 3 of
            them with a 0.5 JOD bias towards the left image and all with a scale
            compression of up to 20%. Each method chooses batches of N - 1 pairs (active:
            ``scaling.select``; ASAP and ASAP-approx: ``benchmarks/asap_reference.py``;
            random; round robin) until 4 comparisons per pair-equivalent (one
            pair-equivalent = N (N - 1) / 2 comparisons, every pair once). At checkpoints
            the collected counts are scaled with ``scaling.pw_scale`` (the pwcmp-compatible
            solver, for every method) and compared with the truth: RMSE after centring,
            Spearman. Then: comparisons each method needs to reach ASAP's accuracy at 2 per
            pair-equivalent (interpolated between checkpoints on log-log axes). Runs are
            written to a CSV as they finish (``--out``), so a long run can be resumed.
  calibration  The selection posterior's standard deviations against the spread of its
            modes over repeated simulated experiments (ratio 1: honest).
  speed     One batch (N - 1 pairs) from a count matrix with 5 N random comparisons
            already answered: ``scaling.select.plan_batch`` at 20 ... 1000 conditions (best
            of 3, peak traced memory), ASAP and ASAP-approx beside it up to 100 conditions.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
import tracemalloc
import warnings
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from asap_reference import AsapReference
from scipy.stats import spearmanr
from tqdm import tqdm

from scaling.api import pw_scale
from scaling.select import INITIAL_PRIOR_SD, plan_batch, random_pairs, round_robin_pairs
from scaling.simulate import ObserverPanel, make_true_scores

CHECKPOINTS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
BASELINE_CHECKPOINTS = (*CHECKPOINTS, 6.0, 8.0)
"""Random and round robin cost nothing to plan: run them further, so that the comparisons
they need to reach ASAP's accuracy are measured rather than extrapolated."""
REPORTED = (0.5, 1.0, 2.0, 4.0)
METHODS = ("active", "asap", "random", "round_robin", "active_pwcmp_prior")


# --------------------------------------------------------------------------- one experiment
def _planner(method: str, n: int, asap_full_max: int, rng: np.random.Generator):
    """A function counts -> (k, 2) pairs for one method (batch of N - 1)."""
    first, second = np.triu_indices(n, k=1)
    if method.startswith("active"):
        state = {"q0": None, "start_sd": INITIAL_PRIOR_SD}
        prior = "gaussian" if method == "active_pwcmp_prior" else "none"

        def active(counts: np.ndarray) -> np.ndarray:
            batch = plan_batch(
                counts, rng=rng, q0=state["q0"], start_sd=state["start_sd"], prior=prior
            )
            state["q0"], state["start_sd"] = batch.scores, batch.prior_sd
            return batch.pairs

        return active
    if method == "asap":
        return AsapReference(approx=n > asap_full_max, rng=rng).next_batch
    if method == "random":
        return lambda counts: np.column_stack([first, second])[random_pairs(first.size, n - 1, rng)]
    return lambda counts: np.column_stack([first, second])[
        round_robin_pairs((counts + counts.T)[first, second], n - 1, rng)
    ]


def run_experiment(method: str, n: int, jod_range: float, rep: int, asap_full_max: int) -> list:
    """One simulated experiment; rows (checkpoint, comparisons, rmse, spearman, seconds)."""
    truth = make_true_scores(n, jod_range=jod_range, seed=rep)["jod"].to_numpy()
    rng = np.random.default_rng([rep, n, int(jod_range * 10)])
    panel = ObserverPanel.draw(15, left_bias=0.0, compression=0.2, rng=rng)
    biased = rng.choice(15, size=3, replace=False)
    panel.left_bias[biased] = 0.5
    answer_rng = np.random.default_rng([rep, n, int(jod_range * 10), 1])
    plan = _planner(method, n, asap_full_max, np.random.default_rng([rep, 7]))
    per_pair = n * (n - 1) // 2
    checkpoints = BASELINE_CHECKPOINTS if method in ("random", "round_robin") else CHECKPOINTS
    targets = [round(c * per_pair) for c in checkpoints]
    counts = np.zeros((n, n))
    done, rows, planning = 0, [], 0.0
    for checkpoint, target in zip(checkpoints, targets, strict=True):
        while done < target:
            start = time.perf_counter()
            pairs = plan(counts)[: target - done]
            planning += time.perf_counter() - start
            a, b = pairs[:, 0], pairs[:, 1]
            observer = answer_rng.integers(0, 15, size=a.size)
            a_left = answer_rng.random(a.size) < 0.5
            chose_a = panel.choose_a(truth[a], truth[b], observer, a_left, answer_rng)
            np.add.at(counts, (np.where(chose_a, a, b), np.where(chose_a, b, a)), 1.0)
            done += a.size
        scores = [_accuracy(counts, truth, prior) for prior in ("gaussian", "none")]
        rows.append((method, n, jod_range, rep, checkpoint, done, *scores[0], *scores[1], planning))
    return rows


SCALE_TIMEOUT_S = 120
"""A checkpoint whose scaling takes longer than this is recorded as NaN (and counted in the
report) instead of stalling the whole benchmark."""


class _ScalingTimeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise _ScalingTimeout


def _accuracy(counts: np.ndarray, truth: np.ndarray, prior: str) -> tuple[float, float]:
    """RMSE after centring and Spearman of the pwcmp-compatible scale against the truth."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SCALE_TIMEOUT_S)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # components, undetermined scores
            jod = pw_scale(counts, prior).jod
    except _ScalingTimeout:
        return np.nan, np.nan
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    jod = np.where(np.isfinite(jod), jod, np.nanmean(jod))  # never compared: the mean
    error = (jod - jod.mean()) - (truth - truth.mean())
    return float(np.sqrt(np.mean(error**2))), float(spearmanr(jod, truth).statistic)


def _run(task: tuple) -> list:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return run_experiment(*task)


# --------------------------------------------------------------------------- accuracy
def accuracy(args: argparse.Namespace) -> None:
    out = Path(args.out)
    columns = ["method", "n", "jod_range", "rep", "checkpoint", "comparisons", "rmse",
               "spearman", "rmse_flat", "spearman_flat", "planning_s"]  # fmt: skip
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=columns)
    finished = set(zip(done.method, done.n, done.jod_range, done.rep, strict=True))
    tasks = [  # repetition-major: a run stopped early has every range and method alike
        (method, n, float(r), rep, args.asap_full_max)
        for n in args.conditions
        for rep in range(args.repetitions)
        for r in args.ranges
        for method in args.methods
        if (method, n, float(r), rep) not in finished
    ]
    start = time.perf_counter()
    print(f"{len(tasks)} experiments to run ({len(finished)} already in {out})", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = pool.map(_run, tasks) if args.jobs > 1 else map(_run, tasks)
        for rows in tqdm(futures, total=len(tasks), desc="experiments", unit="run"):
            frame = pd.DataFrame(rows, columns=columns)
            frame.to_csv(out, mode="a", header=not out.exists(), index=False)
    print(f"accuracy section: {time.perf_counter() - start:.0f} s for {len(tasks)} runs")
    report(pd.read_csv(out), args)


def _needed(curve: pd.Series, target: float) -> float:
    """Comparisons at which a mean RMSE curve (indexed by comparisons) first reaches
    ``target``, interpolated on log-log axes; NaN if it never does."""
    x, y = np.log(curve.index.to_numpy(float)), np.log(curve.to_numpy(float))
    below = np.flatnonzero(y <= np.log(target))
    if below.size == 0:
        return np.nan
    k = below[0]
    if k == 0:
        return float(np.exp(x[0]))
    t = (np.log(target) - y[k - 1]) / (y[k] - y[k - 1])
    return float(np.exp(x[k - 1] + t * (x[k] - x[k - 1])))


SCALES = {
    "": "the default scale (pwcmp's distance prior)",
    "_flat": "the scale without a prior (prior none)",
}
"""Each checkpoint is scaled twice: pwcmp's prior biases scores when many pairs are
unanimous, by an amount that depends on the design; without it the error is the design's."""


def report(results: pd.DataFrame, args: argparse.Namespace) -> None:
    """Per final scale: RMSE and Spearman per budget, the paired difference active - ASAP,
    and the comparisons each method needs to reach ASAP's accuracy at 2 per pair."""
    results = results[results.n.isin(args.conditions) & results.jod_range.isin(args.ranges)]
    methods = [m for m in METHODS if m in results.method.unique()]
    stalled = results[results.rmse.isna() | results.rmse_flat.isna()]
    if len(stalled):
        print(f"\n{len(stalled)} checkpoint(s) whose scaling took over {SCALE_TIMEOUT_S} s, "
              "left out of the means:")  # fmt: skip
        print(stalled[["method", "n", "jod_range", "rep", "checkpoint"]].to_string(index=False))
    for suffix, label in SCALES.items():
        rmse, rho = f"rmse{suffix}", f"spearman{suffix}"
        mean = results.groupby(["n", "jod_range", "method", "checkpoint"]).agg(
            rmse=(rmse, "mean"),
            spearman=(rho, "mean"),
            comparisons=("comparisons", "mean"),
            planning=("planning_s", "mean"),
            reps=("rep", "nunique"),
        )
        paired = results.pivot_table(
            index=["n", "jod_range", "checkpoint", "rep"], columns="method", values=rmse
        )
        print(f"\nRMSE after centring (JOD) of {label}, mean over repetitions; Spearman in "
              "brackets; last column: active - ASAP at each budget, mean +- standard error "
              "over the paired repetitions")  # fmt: skip
        head = " ".join(f"{b:>16g}" for b in REPORTED)
        print(f"{'N':>4} {'range':>5} {'method':<18} {'reps':>4} {head}  s/run")
        for (n, r), _ in mean.groupby(level=[0, 1]):
            for method in methods:
                if (n, r, method) not in mean.index.droplevel(3):
                    continue
                rows = mean.loc[(n, r, method)]
                cells = " ".join(
                    f"{rows.loc[b, 'rmse']:>7.3f} ({rows.loc[b, 'spearman']:.3f})"
                    if b in rows.index
                    else f"{'':>16}"
                    for b in REPORTED
                )
                print(f"{n:>4} {r:>5g} {method:<18} {int(rows['reps'].max()):>4} {cells}"
                      f"  {rows.loc[4.0, 'planning']:.1f}")  # fmt: skip
            if {"active", "asap"} <= set(paired.columns) and (n, r) in paired.index.droplevel(
                [2, 3]
            ):
                diff = (paired["active"] - paired["asap"]).loc[(n, r)].groupby(level=0)
                cells = " ".join(
                    f"{diff.mean().get(b, np.nan):>+7.3f} +-{diff.sem().get(b, np.nan):.3f}"
                    for b in REPORTED
                )
                print(f"{n:>4} {r:>5g} {'active - ASAP':<18} {'':>4} {cells}")
        print(f"\nComparisons needed to reach ASAP's RMSE at 2 per pair-equivalent ({label})")
        print(f"{'N':>4} {'range':>5} {'ASAP RMSE':>9} " + " ".join(f"{m:>12}" for m in methods)
              + "  active / random")  # fmt: skip
        for (n, r), _ in mean.groupby(level=[0, 1]):
            if (n, r, "asap") not in mean.index.droplevel(3):
                continue
            target = mean.loc[(n, r, "asap", 2.0), "rmse"]
            needed = {
                method: _needed(mean.loc[(n, r, method)].set_index("comparisons")["rmse"], target)
                for method in methods
                if (n, r, method) in mean.index.droplevel(3)
            }
            ratio = needed.get("active", np.nan) / needed.get("random", np.nan)
            cells = " ".join(f"{needed.get(m, np.nan):>12.0f}" for m in methods)
            print(f"{n:>4} {r:>5g} {target:>9.3f} {cells}  {ratio:>6.2f}")
    if args.plot:
        plot(results, methods, Path(args.plot))


def plot(results: pd.DataFrame, methods: list[str], path: Path) -> None:
    """RMSE against comparisons per pair-equivalent, one panel per N and range, both
    final scales (solid: default scale, dashed: without a prior)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted(set(zip(results.n, results.jod_range, strict=True)))
    fig, axes = plt.subplots(
        1, len(cases), figsize=(3.2 * len(cases), 3.2), squeeze=False, sharey=False
    )
    for ax, (n, r) in zip(axes[0], cases, strict=True):
        case = results[(results.n == n) & (results.jod_range == r)]
        for k, method in enumerate(methods):
            rows = case[case.method == method].groupby("checkpoint")
            for suffix, style in (("", "-"), ("_flat", "--")):
                curve = rows[f"rmse{suffix}"].mean()
                ax.plot(curve.index, curve.values, style, color=f"C{k}",
                        label=method if suffix == "" else None)  # fmt: skip
        ax.set(title=f"N = {n}, {r:g} JOD", xlabel="comparisons / pair-equivalent", xscale="log")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("RMSE after centring (JOD)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


# --------------------------------------------------------------------------- speed
def _answered(n: int, per_condition: int, seed: int = 0) -> np.ndarray:
    """Counts of ``per_condition * n`` random comparisons drawn from scores over 6 JOD."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-3, 3, n)
    first, second = np.triu_indices(n, k=1)
    pick = rng.integers(0, first.size, per_condition * n)
    a, b = first[pick], second[pick]
    from scipy.special import ndtr

    chose_a = rng.random(a.size) < ndtr((truth[a] - truth[b]) / 1.4826)
    counts = np.zeros((n, n))
    np.add.at(counts, (np.where(chose_a, a, b), np.where(chose_a, b, a)), 1.0)
    return counts


def _best_time(function, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def speed(args: argparse.Namespace) -> None:
    """Seconds for one batch: cold (from the counts alone, as ``jod pairs``) and warm (from
    the previous batch's mode and prior scale, as the app and the accuracy runs plan)."""
    print("\nOne batch of N - 1 pairs, 5 N random comparisons answered (seconds, best of 3)")
    print(f"{'N':>5} {'cold':>8} {'warm':>8} {'peak MiB':>9} {'ASAP':>9} {'ASAP-approx':>12} "
          f"{'ASAP/cold':>10}")  # fmt: skip
    for n in args.speed_conditions:
        counts = _answered(n, 5)
        warnings.simplefilter("ignore", UserWarning)  # ASAP's and the scale's notes
        previous = plan_batch(counts)
        cold = _best_time(partial(plan_batch, counts), 3)
        warm = _best_time(
            partial(plan_batch, counts, q0=previous.scores, start_sd=previous.prior_sd), 3
        )
        tracemalloc.start()
        plan_batch(counts)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        full = approx = np.nan
        if n <= args.asap_max:
            full = _best_time(partial(AsapReference().next_batch, counts), 1)
            approx = _best_time(partial(AsapReference(approx=True).next_batch, counts), 3)
        print(f"{n:>5} {cold:>8.3f} {warm:>8.3f} {peak:>9.1f} {full:>9.2f} {approx:>12.3f} "
              f"{full / cold:>10.0f}", flush=True)  # fmt: skip


def calibration(args: argparse.Namespace) -> None:
    """Is the selection's posterior honest? Its standard deviation of each centred score
    against the spread of the posterior modes over repeated experiments (same truth, same
    random design, new answers)."""
    from scaling.select import laplace_posterior

    n, experiments = 15, args.calibration_experiments
    truth = make_true_scores(n, jod_range=6.0, seed=1)["jod"].to_numpy()
    first, second = np.triu_indices(n, k=1)
    pick = np.random.default_rng(0).integers(0, first.size, 40 * n)
    modes, sds = [], []
    for k in tqdm(range(experiments), desc="calibration", unit="experiment"):
        rng = np.random.default_rng([k, 99])
        a, b = first[pick], second[pick]
        chose_a = ObserverPanel.draw(1, rng=rng).choose_a(
            truth[a], truth[b], np.zeros(a.size, dtype=int), np.ones(a.size, bool), rng
        )
        counts = np.zeros((n, n))
        np.add.at(counts, (np.where(chose_a, a, b), np.where(chose_a, b, a)), 1.0)
        posterior = laplace_posterior(counts)
        modes.append(posterior.mean - posterior.mean.mean())
        sds.append(np.sqrt(np.diag(posterior.centred_cov())))
    ratio = np.mean(sds, axis=0) / np.std(modes, axis=0)
    print(f"\nLaplace sd / spread of the modes over {experiments} experiments ({n} conditions "
          f"over 6 JOD, {40 * n} random comparisons each): median {np.median(ratio):.2f}, "
          f"range {ratio.min():.2f}-{ratio.max():.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+", default=["accuracy", "speed"])
    parser.add_argument("--conditions", nargs="+", type=int, default=[20, 50, 200])
    parser.add_argument("--ranges", nargs="+", type=float, default=[3.0, 6.0, 12.0])
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--asap-full-max",
        type=int,
        default=20,
        help="largest N for full ASAP in the accuracy runs (ASAP-approx above it)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--out", default="active_sampling_runs.csv")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--plot", help="also draw the RMSE curves to this .png")
    parser.add_argument(
        "--speed-conditions", nargs="+", type=int, default=[20, 50, 100, 200, 500, 1000]
    )
    parser.add_argument("--asap-max", type=int, default=100)
    parser.add_argument("--calibration-experiments", type=int, default=100)
    args = parser.parse_args()
    if "accuracy" in args.sections:
        if args.report_only:
            report(pd.read_csv(args.out), args)
        else:
            accuracy(args)
    if "speed" in args.sections:
        speed(args)
    if "calibration" in args.sections:
        calibration(args)


if __name__ == "__main__":
    main()
