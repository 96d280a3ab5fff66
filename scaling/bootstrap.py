"""Bootstrap confidence intervals for JOD scores (pwcmp's ``pw_scale_bootstrp``).

The resampling units (observers, or single trials) are drawn with replacement, their count
matrices summed and the sum scaled again; the spread of the re-scaled scores gives the
standard deviation and the percentile confidence interval of every score.

Samples are computed in fixed-size chunks, each with its own seed spawned from one
``SeedSequence``, so the result depends on ``seed`` only, not on how many processes share
the work. Chunks run on a process pool (both cores of a small machine) when the job is
large enough to repay starting one.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, issparse, sparray, spmatrix
from tqdm.auto import tqdm

from scaling.optimum import LOWER, UNBOUNDED, UPPER
from scaling.threads import single_threaded_blas
from scaling.thurstone import percentile_interval

SolveFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray | tuple[np.ndarray, np.ndarray]]
"""``solve(D, q0) -> q`` or ``(q, bound)``: scale one count matrix, optionally warm-started
from ``q0``; ``bound`` holds :mod:`scaling.optimum`'s codes (where a score's optimum is at
infinity and ``q`` is a placement)."""

CHUNK_SIZE = 16
"""Samples per chunk: the unit of work and of seeding (fixed, so results never depend on the
number of workers)."""

MIN_SAMPLES_FOR_POOL = 2 * CHUNK_SIZE


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap distribution of the scores and its summaries.

    Attributes
    ----------
    samples : numpy.ndarray
        Shape (n_samples, N): the scores of every bootstrap sample.
    bounds : numpy.ndarray
        Shape (n_samples, N): each sample's bound code (0: the score is an optimum;
        otherwise it is a placement and unbounded on the side the code names).
    std : numpy.ndarray
        Standard deviation over samples (``ddof=1``, as MATLAB's ``std``); infinite where
        the interval is one-sided.
    ci_low, ci_high : numpy.ndarray
        Lower and upper percentile of the central ``1 - alpha`` interval
        (:func:`scaling.thurstone.percentile_interval`); -inf or +inf where ``alpha / 2``
        of the samples or more are unbounded on that side.
    """

    samples: np.ndarray
    bounds: np.ndarray
    std: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def round_split_ties(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round non-integer counts (ties split in halves) as pwcmp does.

    For every pair ``i < j`` a coin decides which direction is rounded to nearest (halves
    up) and which is rounded down, so a pair of halves ``(k + 0.5, m + 0.5)`` becomes
    ``(k + 1, m)`` or ``(k, m + 1)`` and keeps its number of comparisons.

    Parameters
    ----------
    counts : numpy.ndarray
        Square count matrix.
    rng : numpy.random.Generator
        Source of the coins.

    Returns
    -------
    numpy.ndarray
        The rounded matrix (the input itself when it holds integers only).
    """
    if np.all(counts == np.floor(counts)):
        return counts
    n = counts.shape[0]
    upper = np.triu(rng.random((n, n)) < 0.5, k=1)
    round_near = upper | np.tril(~upper.T, k=-1)
    return np.where(round_near, np.floor(counts + 0.5), np.floor(counts))


def worker_count(n_jobs: int | None) -> int:
    """Worker processes for ``n_jobs`` (None: all cores); fewer than one is refused."""
    workers = n_jobs if n_jobs is not None else os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"n_jobs must be at least 1, not {n_jobs}")
    return workers


@dataclass(frozen=True)
class BootstrapJob:
    """One count matrix to bootstrap (see :func:`bootstrap_scores` for the fields)."""

    unit_counts: np.ndarray | sparray | spmatrix
    solve: SolveFn
    q0: np.ndarray | None = None
    alpha: float | None = None
    """This job's interval level, when not the call's (e.g. an expanded interval, whose
    level depends on the job's number of units)."""


def bootstrap_scores(
    unit_counts: np.ndarray | sparray | spmatrix,
    solve: SolveFn,
    *,
    n_samples: int = 500,
    seed: int = 0,
    q0: np.ndarray | None = None,
    alpha: float = 0.05,
    n_jobs: int | None = None,
    progress: bool = True,
) -> BootstrapResult:
    """Bootstrap the scores of one count matrix from its resampling units.

    Parameters
    ----------
    unit_counts : numpy.ndarray or scipy.sparse matrix
        One count matrix per resampling unit (observer or trial), their sum being the data
        set's count matrix: dense, shape (U, N, N), or sparse, shape (U, N^2) with each
        row a flattened matrix (far smaller when units are single trials).
    solve : callable
        ``solve(D, q0) -> q`` returning the N scores of count matrix ``D``. Must be
        picklable (a module-level function or a ``functools.partial`` of one) for the work
        to be spread over processes; otherwise it runs in this process.
    n_samples : int
        Bootstrap samples (pwcmp advises 500 to 1000).
    seed : int
        Seed; the same seed gives the same samples for any ``n_jobs``.
    q0 : numpy.ndarray, optional
        Warm start for every solve, typically the full-data solution.
    alpha : float
        The interval covers ``1 - alpha`` (0.05: the 2.5 and 97.5 percentiles).
    n_jobs : int, optional
        Worker processes; default: all CPU cores. 1 runs in this process.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    BootstrapResult
    """
    job = BootstrapJob(unit_counts, solve, q0)
    return bootstrap_many(
        [job], n_samples=n_samples, seed=seed, alpha=alpha, n_jobs=n_jobs, progress=progress
    )[0]


def bootstrap_many(
    jobs: Sequence[BootstrapJob],
    *,
    n_samples: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
    n_jobs: int | None = None,
    progress: bool = True,
) -> list[BootstrapResult]:
    """:func:`bootstrap_scores` for several count matrices (the groups of a study) at once.

    All chunks of all jobs share one process pool and one progress bar: no pool is started
    per group and no core idles while another finishes a group's last chunk. Each job is
    seeded as if bootstrapped alone, so its result does not depend on the others. Every
    worker receives every job's data once (25 groups of 200 conditions with their Hessian
    factors: about 10 MB).
    """
    data = []
    for index, job in enumerate(jobs):
        try:
            units = _validate(job.unit_counts, n_samples, alpha)
        except ValueError as err:
            raise ValueError(f"bootstrap job {index}: {err}") from err
        data.append(BootstrapJob(units, job.solve, job.q0, job.alpha))
    chunk_seeds = np.random.SeedSequence(seed).spawn(-(-n_samples // CHUNK_SIZE))
    sizes = [min(CHUNK_SIZE, n_samples - k * CHUNK_SIZE) for k in range(len(chunk_seeds))]
    tasks = [(j, i) for j in range(len(data)) for i in range(len(sizes))]
    workers = worker_count(n_jobs)
    parallel = (
        workers > 1
        and n_samples * len(data) >= MIN_SAMPLES_FOR_POOL
        and all(_picklable(job.solve) for job in data)
    )

    chunks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    with tqdm(
        total=n_samples * len(data),
        desc="bootstrap",
        unit="sample",
        disable=not progress,
        leave=False,
    ) as bar:
        if parallel:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(tasks)),
                initializer=_init_worker,
                initargs=(data,),
            ) as pool:
                futures = {
                    pool.submit(_worker_chunk, j, chunk_seeds[i], sizes[i]): (j, i)
                    for j, i in tasks
                }
                for future in as_completed(futures):
                    chunks[futures[future]] = future.result()
                    bar.update(sizes[futures[future][1]])
        else:
            with single_threaded_blas():
                for j, i in tasks:
                    chunks[j, i] = _run_chunk(data[j], chunk_seeds[i], sizes[i])
                    bar.update(sizes[i])
    return [
        summarise(
            np.concatenate([chunks[j, i][0] for i in range(len(sizes))]),
            alpha if data[j].alpha is None else data[j].alpha,
            np.concatenate([chunks[j, i][1] for i in range(len(sizes))]),
        )
        for j in range(len(data))
    ]


def summarise(
    samples: np.ndarray, alpha: float = 0.05, bounds: np.ndarray | None = None
) -> BootstrapResult:
    """Standard deviation and percentile interval of a bootstrap distribution.

    The interval is :func:`scaling.thurstone.percentile_interval` (MATLAB's ``prctile``
    percentiles, as pwcmp). A sample whose bound code says its optimum is at +inf counts
    as unbounded above for the upper percentile and as its placed score for the lower one
    (and symmetrically), so a score the resamples leave unbounded on one side gets a
    one-sided interval rather than the spread of its placements. A score the solver left
    undefined (NaN) in some samples, e.g. a condition not compared in a resample, is
    summarised over the samples that define it; one never defined gets NaN.
    """
    bounds = np.zeros(samples.shape, dtype=np.int8) if bounds is None else bounds
    above = (bounds == LOWER) | (bounds == UNBOUNDED)
    below = (bounds == UPPER) | (bounds == UNBOUNDED)
    low, high = percentile_interval(
        np.where(below, -np.inf, samples), np.where(above, np.inf, samples), alpha
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        std = np.nanstd(samples, axis=0, ddof=1)
    std = np.where(np.isinf(low) | np.isinf(high), np.inf, std)
    return BootstrapResult(samples=samples, bounds=bounds, std=std, ci_low=low, ci_high=high)


def _run_chunk(
    job: BootstrapJob, seed: np.random.SeedSequence, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``size`` bootstrap samples of one job and scale each: scores and bound codes."""
    rng = np.random.default_rng(seed)
    n_units = job.unit_counts.shape[0]
    n = math.isqrt(job.unit_counts.shape[1])
    entries = job.unit_counts.tocoo()  # (unit, cell, count) triples: one pass per resample
    whole = bool(np.all(entries.data == np.floor(entries.data)))  # no split ties to round
    out = np.empty((size, n))
    bounds = np.zeros((size, n), dtype=np.int8)
    for k in range(size):
        weights = np.bincount(rng.integers(n_units, size=n_units), minlength=n_units)
        counts = np.bincount(entries.col, entries.data * weights[entries.row], minlength=n * n)
        counts = counts.reshape(n, n)
        if not whole:
            counts = round_split_ties(counts, rng)
        solved = job.solve(counts, job.q0)
        if isinstance(solved, tuple):
            out[k], bounds[k] = solved
        else:
            out[k] = solved
    return out, bounds


_WORKER: dict[str, object] = {}


def _init_worker(jobs: list[BootstrapJob]) -> None:
    """Keep the data in each worker once, instead of shipping it with every chunk."""
    blas = single_threaded_blas()
    blas.__enter__()  # for the worker's lifetime
    _WORKER.update(jobs=jobs, blas=blas)


def _worker_chunk(
    job: int, seed: np.random.SeedSequence, size: int
) -> tuple[np.ndarray, np.ndarray]:
    return _run_chunk(_WORKER["jobs"][job], seed, size)


def _picklable(solve: SolveFn) -> bool:
    try:
        pickle.dumps(solve)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def _validate(
    unit_counts: np.ndarray | sparray | spmatrix, n_samples: int, alpha: float
) -> csr_matrix:
    """Check the arguments once at the boundary; units become a sparse (U, N^2) matrix."""
    if issparse(unit_counts):
        units = csr_matrix(unit_counts, dtype=float)
        n = math.isqrt(units.shape[1])
        if n * n != units.shape[1]:
            raise ValueError(f"sparse unit_counts must have N^2 columns, not {units.shape[1]}")
        values = units.data
    else:
        dense = np.asarray(unit_counts, dtype=float)
        if dense.ndim != 3 or dense.shape[1] != dense.shape[2]:
            raise ValueError(
                f"unit_counts must have shape (units, N, N), not {np.shape(unit_counts)}"
            )
        n = dense.shape[1]
        units = csr_matrix(dense.reshape(dense.shape[0], n * n))
        values = dense
    if units.shape[0] < 1 or n < 2:
        raise ValueError(f"unit_counts needs at least 1 unit and 2 conditions, not {n}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("unit_counts must hold finite, non-negative counts")
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2, not {n_samples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    return units
