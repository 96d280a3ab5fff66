"""The scaling stage's public entry points: count matrix to scores, trial table to scale table.

Input: a trial table or a count matrix (formats in :mod:`scaling.formats`).
Output: the scale table, one row per group and condition, with run metadata in
``attrs["jodkit"]``.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from tqdm.auto import tqdm

from scaling.bootstrap import BootstrapJob, BootstrapResult, bootstrap_many, worker_count
from scaling.config import FixedSpec, OrderingSpec, ScaleConfig
from scaling.errors import InputError
from scaling.formats import SCALE_COLUMNS
from scaling.graph import component_labels, link_like_pwcmp
from scaling.io import (
    METADATA_KEY,
    count_matrix,
    counts_from_trials,
    group_columns,
    read_any_table,
    trial_cells,
    validate_counts,
    validate_trials,
)
from scaling.optimum import BOUND_NAMES, TWO_SIDED, estimate_component
from scaling.solvers import (
    BOOTSTRAP_STEP_TOL,
    STEP_TOL,
    ChordStart,
    FixedScore,
    Ordering,
    chord_start,
    restrict_constraints,
)
from scaling.threads import single_threaded_blas
from scaling.thurstone import expanded_alpha
from scaling.version import __version__


class DisconnectedGraphWarning(UserWarning):
    """The comparison graph of a group falls apart into components."""


class UndeterminedScoresWarning(UserWarning):
    """Some scores rest on pwcmp's prior alone, or have no finite optimum and are placed."""


@dataclass
class PwScaleResult:
    """Scores of one count matrix with what a reader needs to trust them.

    ``jod`` is NaN for conditions never compared. ``component`` numbers the connected
    components (0 = largest). ``determined`` is True for the main component's determined core
    (:func:`scaling.graph.determined_core`), the scores the data pin by themselves.
    ``bound`` (codes of :mod:`scaling.optimum`) is 0 where ``jod`` is the exact optimum of
    pwcmp's objective (in or out of the core: outside it the prior holds the score), and
    says which way the optimum is unbounded where it is at infinity and ``jod`` is a
    placement (:mod:`scaling.placement`). ``objective`` is pwcmp's objective at its
    optimum, or its infimum where some optima lie at infinity.
    """

    jod: np.ndarray
    bound: np.ndarray
    component: np.ndarray
    determined: np.ndarray
    n_wins: np.ndarray
    n_losses: np.ndarray
    n_comparisons: np.ndarray
    objective: float
    converged: bool
    notes: list[str] = field(default_factory=list)


def pw_scale(
    counts: np.ndarray, prior: str = "gaussian", anchor: str = "mean0", **options: Any
) -> PwScaleResult:
    """Scale one count matrix to JOD (pwcmp's ``pw_scale``, made safe).

    Parameters
    ----------
    counts : (N, N) array
        D[i, j] = times condition i was chosen over j. Checked as ``jod scale`` checks a
        count matrix (square, finite, non-negative, whole or half counts, zero diagonal):
        :class:`~scaling.errors.InputError` names the first bad cell.
    prior : {"gaussian", "none"}
        pwcmp's distance prior (default) or pure maximum likelihood.
    anchor : {"mean0", "fix0"}
        Mean pulled to 0 (default), or the first condition of each component fixed at 0.
    solver : {"exact", "cvxpy"}
        ``cvxpy`` needs ``prior="none"`` and is the one that accepts ``constraints``.
    constraints : sequence of Ordering or FixedScore
        Linear constraints on condition indices (cvxpy only).
    disconnected : {"separate", "pwcmp"}
        ``separate`` scales each component on its own (offsets between components are
        undetermined and marked so); ``pwcmp`` links the components' best conditions as
        pwcmp does, for compatibility.
    q0 : (N,) array, optional
        Warm start (bootstrap).
    conditions : sequence of str, optional
        Names used in warnings.
    step_tol, chord, confirm_final
        Passed to :func:`scaling.solvers.solve_exact` (``chord``, made at ``q0``, only when
        the graph is connected: it covers all N scores); bootstrap re-solves loosen them.

    The keyword options (all but ``counts``, ``prior`` and ``anchor``) are those of
    :func:`_pw_scale`, which this calls once the matrix is checked.
    """
    matrix = count_matrix(counts, options.get("conditions"), source="pw_scale counts")
    return _pw_scale(matrix, prior, anchor, **options)


def _pw_scale(
    counts: np.ndarray,
    prior: str = "gaussian",
    anchor: str = "mean0",
    *,
    solver: str = "exact",
    constraints: Sequence[Ordering | FixedScore] = (),
    disconnected: str = "separate",
    q0: np.ndarray | None = None,
    conditions: Sequence[str] | None = None,
    step_tol: float = STEP_TOL,
    chord: ChordStart | None = None,
    confirm_final: bool = True,
) -> PwScaleResult:
    """:func:`pw_scale` on a matrix already checked (each group of a trial table, each
    bootstrap resample): the data are checked once at the boundary, not at each of the
    thousands of re-solves."""
    ScaleConfig(prior=prior, anchor=anchor, solver=solver, disconnected=disconnected)
    if constraints and solver != "cvxpy":
        raise ValueError("constraints need solver='cvxpy'")
    counts = np.asarray(counts, dtype=float)
    n = counts.shape[0]
    labels = component_labels(counts)
    n_wins, n_losses = counts.sum(axis=1), counts.sum(axis=0)
    compared = (n_wins + n_losses) > 0
    notes: list[str] = []
    if labels.max() > 0:
        names = list(conditions) if conditions is not None else [f"c{k + 1}" for k in range(n)]
        groups = [[names[k] for k in np.flatnonzero(labels == c)] for c in range(labels.max() + 1)]
        listing = "; ".join(f"{c}: {', '.join(g)}" for c, g in enumerate(groups))
        notes.append(
            f"the comparison graph has {len(groups)} components; scores in different "
            f"components are not comparable. Components: {listing}"
        )
        warnings.warn(notes[-1], DisconnectedGraphWarning, stacklevel=2)

    jod = np.full(n, np.nan)
    bound = np.zeros(n, dtype=np.int8)
    core = np.zeros(n, dtype=bool)
    objective, converged = 0.0, True
    settings = {"prior": prior, "anchor": anchor, "solver": solver, "step_tol": step_tol}
    with single_threaded_blas():
        if disconnected == "pwcmp" and labels.max() > 0:
            estimate = estimate_component(
                link_like_pwcmp(counts, labels),
                constraints=constraints,
                q0=q0,
                confirm_final=confirm_final,
                **settings,
            )
            jod, bound, core = estimate.q, estimate.bound, estimate.core
            objective, converged = estimate.objective, estimate.converged
        else:
            for component in range(labels.max() + 1):
                members = np.flatnonzero(labels == component)
                if not compared[members].any():
                    continue
                whole = members.size == n
                estimate = estimate_component(
                    counts if whole else counts[np.ix_(members, members)],
                    constraints=restrict_constraints(constraints, members),
                    q0=None if q0 is None else q0[members],
                    chord=chord if whole else None,
                    confirm_final=confirm_final,
                    names=None if conditions is None else [conditions[m] for m in members],
                    **settings,
                )
                jod[members], bound[members] = estimate.q, estimate.bound
                core[members] = estimate.core
                objective += estimate.objective
                converged &= estimate.converged
    determined = (labels == 0) & core
    message = _undetermined_message(compared & ~core, bound)
    if message:
        notes.append(message)
        warnings.warn(message, UndeterminedScoresWarning, stacklevel=2)
    if not converged:
        notes.append("the solver stopped before reaching its tolerance")
    return PwScaleResult(
        jod=jod,
        bound=bound,
        component=labels,
        determined=determined,
        n_wins=n_wins,
        n_losses=n_losses,
        n_comparisons=n_wins + n_losses,
        objective=objective,
        converged=converged,
        notes=notes,
    )


def _undetermined_message(outside_core: np.ndarray, bound: np.ndarray) -> str:
    """What the warning says about scores outside the cores: how many rest on the prior
    alone, how many have no finite optimum (placed)."""
    prior_only = int(np.sum(outside_core & (bound == TWO_SIDED)))
    placed = int(np.sum(bound != TWO_SIDED))
    parts = []
    if prior_only:
        parts.append(
            f"{prior_only} score(s) outside the determined core rest on the prior alone "
            "(pwcmp's optimum, held only by its Gaussian prior; determined = False)"
        )
    if placed:
        parts.append(
            f"{placed} score(s) have no finite optimum and are placed in the data's order "
            "(the 'bound' column says which side is unbounded)"
        )
    return "; ".join(parts)


def _solve_for_bootstrap(
    counts: np.ndarray,
    q0: np.ndarray | None,
    prior: str,
    anchor: str,
    chord: ChordStart | None = None,
    solver: str = "exact",
    constraints: Sequence[Ordering | FixedScore] = (),
    disconnected: str = "separate",
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap callback: a resample's scores and bound codes, scaled by the same rule as
    the full data (same estimator, prior, solver, constraints and disconnected-graph
    policy: pwcmp's optimum where finite, placement where not).

    The exact solver starts from a chord step with the full data's Hessian factor and
    normal terms (``chord``, made at ``q0``), stops at BOOTSTRAP_STEP_TOL (scores move by far
    less than any interval width) and does not evaluate the objective after its last step.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DisconnectedGraphWarning)
        warnings.simplefilter("ignore", UndeterminedScoresWarning)
        result = _pw_scale(
            counts,
            prior,
            anchor,
            solver=solver,
            constraints=constraints,
            disconnected=disconnected,
            q0=q0,
            step_tol=BOOTSTRAP_STEP_TOL,
            chord=chord,
            confirm_final=False,
        )
    return result.jod, result.bound


def _check_constraint_names(
    orderings: Sequence[OrderingSpec], fixed: Sequence[FixedSpec], known: set[str]
) -> None:
    """Refuse an ordering or fixed score that names a condition of no group (a typo would
    otherwise drop the constraint without a word)."""
    named = [("order", ">".join(o.chain), c) for o in orderings for c in o.chain]
    named += [("fix", f"{f.condition}={f.value:g}", f.condition) for f in fixed]
    for option, text, condition in named:
        if condition not in known:
            close = difflib.get_close_matches(condition, sorted(known), n=1)
            listed = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
            hint = f"did you mean {close[0]!r}?" if close else f"the conditions: {listed}"
            raise InputError(
                f"{text!r} names {condition!r}, which is no condition of the data ({hint})",
                field=option,
            )


def _resolve_constraints(
    orderings: Sequence[OrderingSpec], fixed: Sequence[FixedSpec], conditions: list[str]
) -> list[Ordering | FixedScore]:
    index = {c: k for k, c in enumerate(conditions)}
    resolved: list[Ordering | FixedScore] = []
    for spec in orderings:
        present = [c for c in spec.chain if c in index]
        resolved += [
            Ordering(index[a], index[b], spec.margin) for a, b in itertools.pairwise(present)
        ]
    resolved += [FixedScore(index[f.condition], f.value) for f in fixed if f.condition in index]
    return resolved


def _default_by(trials: pd.DataFrame) -> list[str]:
    return [c for c in ("scene", "attribute") if c in trials.columns]


def scale(
    trials: pd.DataFrame | str,
    by: Sequence[str] | None = None,
    *,
    prior: str = "gaussian",
    anchor: str = "mean0",
    ties: str = "drop",
    bootstrap: int = 0,
    resample: str = "observer",
    seed: int = 0,
    interval: str = "percentile",
    solver: str = "exact",
    orderings: Sequence[OrderingSpec] = (),
    fixed: Sequence[FixedSpec] = (),
    disconnected: str = "separate",
    config: ScaleConfig | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Scale a trial table to JOD, each group on its own.

    Parameters
    ----------
    trials : DataFrame or path
        Trial table (``scaling.formats``); CSV or Parquet paths are read and validated.
        Training trials (``is_training`` = 1) are left out.
    by : sequence of str, optional
        Group columns; default: those of ``scene`` and ``attribute`` that exist.
    prior, anchor : str
        pwcmp's options (see :func:`pw_scale`).
    ties : {"drop", "split"}
        Tie policy, recorded in the metadata.
    bootstrap : int
        Bootstrap samples for ``jod_std``/``ci_low``/``ci_high`` (0: none; 500-1000
        recommended).
    resample : {"observer", "trial"}
        Bootstrap unit; ``observer`` (pwcmp's choice) needs an ``observer`` column.
    seed : int
        Bootstrap seed; the same seed gives the same intervals.
    interval : {"percentile", "expanded"}
        pwcmp's 2.5 and 97.5 percentiles, or the expanded percentile interval that
        corrects for few resampling units (:func:`scaling.thurstone.expanded_alpha`;
        docs/scaling.md gives the coverage of both).
    solver : {"exact", "cvxpy"}
        ``cvxpy`` for constrained scaling (``orderings``, ``fixed``; prior "none").
    orderings, fixed : sequences of OrderingSpec, FixedSpec
        Constraints by condition name, applied in every group that has those conditions.
    disconnected : {"separate", "pwcmp"}
        See :func:`pw_scale`.
    config : ScaleConfig, optional
        All the options above in one validated object (e.g. read back from a table's
        metadata with :meth:`ScaleConfig.from_metadata`), instead of the keywords.
    n_jobs : int, optional
        Worker processes for the bootstrap and, when the groups are many and large
        (:data:`POOL_WORK`), for their point estimates (default: all cores).
    progress : bool
        Show progress bars.

    Returns
    -------
    DataFrame
        The scale table: group keys, then ``scaling.formats.SCALE_COLUMNS``.
    """
    keywords = ScaleConfig(
        prior=prior,
        anchor=anchor,
        ties=ties,
        solver=solver,
        disconnected=disconnected,
        orderings=tuple(orderings),
        fixed=tuple(fixed),
        bootstrap=bootstrap,
        resample=resample,
        seed=seed,
        interval=interval,
    )
    if config is not None and keywords != ScaleConfig():
        raise ValueError("give the scaling options either as config or as keywords, not both")
    config = config or keywords
    worker_count(n_jobs)  # refuse a bad n_jobs before any group is solved
    source = "DataFrame" if isinstance(trials, pd.DataFrame) else str(trials)
    raw = trials if isinstance(trials, pd.DataFrame) else read_any_table(trials)
    keys = group_columns(by, source) if by is not None else _default_by(raw)
    frame = validate_trials(raw, by=keys, source=source)
    n_training = 0
    if "is_training" in frame.columns:
        n_training = int(frame["is_training"].sum())
        frame = frame[frame["is_training"] == 0]
    if frame.empty:
        raise InputError("has no trials left to scale (all are training trials)", source=source)

    groups = list(frame.groupby(keys, sort=True)) if keys else [((), frame)]
    prepared = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        conditions = sorted(set(group["condition_A"]) | set(group["condition_B"]))
        counts = counts_from_trials(group, conditions, config.ties)
        prepared.append((key, conditions, counts, group))
    known = {c for _, names, _, _ in prepared for c in names}
    _check_constraint_names(config.orderings, config.fixed, known)
    tasks = [
        (counts, conditions, f"group {dict(zip(keys, key, strict=True))}")
        for key, conditions, counts, _ in prepared
    ]
    with_chord = bool(config.bootstrap) and config.solver == "exact"
    solved = _solve_groups(tasks, config, with_chord, n_jobs, progress)
    results, jobs, notes = [], [], []
    for (key, conditions, _, group), (result, chord, messages) in zip(
        prepared, solved, strict=True
    ):
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key, strict=True)) or "all trials"
        for category, message in messages:
            warnings.warn(f"{label}: {message}", category, stacklevel=2)
        notes += [f"{label}: {note}" for note in result.notes]
        results.append((key, conditions, result))
        if config.bootstrap:
            solve = partial(
                _solve_for_bootstrap,
                prior=config.prior,
                anchor=config.anchor,
                chord=chord,
                solver=config.solver,
                constraints=_resolve_constraints(config.orderings, config.fixed, conditions),
                disconnected=config.disconnected,
            )
            units = _unit_counts(group, conditions, config.ties, config.resample)
            alpha = (
                ALPHA if config.interval == "percentile" else expanded_alpha(ALPHA, units.shape[0])
            )
            jobs.append(BootstrapJob(units, solve, q0=result.jod, alpha=alpha))
    boots = (
        bootstrap_many(
            jobs, n_samples=config.bootstrap, seed=config.seed, n_jobs=n_jobs, progress=progress
        )
        if config.bootstrap
        else [None] * len(results)
    )
    tables = []
    for (key, conditions, result), boot in zip(results, boots, strict=True):
        table = _table(conditions, result, boot)
        for k, v in zip(reversed(keys), reversed(key), strict=True):
            table.insert(0, k, v)
        tables.append(table)

    out = pd.concat(tables, ignore_index=True)[[*keys, *SCALE_COLUMNS]]
    out.attrs[METADATA_KEY] = _metadata(config, keys, n_training, notes)
    return out


def _unit_counts(
    group: pd.DataFrame, conditions: list[str], ties: str, resample: str
) -> csr_matrix:
    """Sparse (units x N^2) counts, one row per bootstrap unit (observer, or trial)."""
    trial, cell, weight = trial_cells(group, conditions, ties)
    if resample == "trial":
        unit, n_units = trial, len(group)
    else:
        codes, observers = pd.factorize(group["observer"], sort=True)
        unit, n_units = codes[trial], len(observers)
    n = len(conditions)
    return csr_matrix((weight, (unit, cell)), shape=(n_units, n * n))


def _metadata(
    config: ScaleConfig, keys: list[str], n_training: int, notes: list[str]
) -> dict[str, Any]:
    """The run metadata written beside a scale table: the configuration's
    (:meth:`ScaleConfig.metadata`) and what the run found."""
    return {
        "stage": "scaling",
        "jodkit_version": __version__,
        "model": "Thurstone Case V, 1 JOD = 75% preference (sigma = 1.4826)",
        **config.metadata(),
        "group_by": keys,
        "training_trials_excluded": n_training,
        "notes": notes,
    }


ALPHA = 0.05
"""The intervals are 95% intervals."""

POOL_WORK = 200_000
"""Sum of N^2 over the groups above which their point estimates are solved in a process
pool: about five groups of 200 conditions, 0.3 s of solving, well above the pool's start."""


def _solve_group(
    task: tuple[np.ndarray, list[str], str], config: ScaleConfig, with_chord: bool
) -> tuple[PwScaleResult, ChordStart | None, list[tuple[type[Warning], str]]]:
    """One group's point estimate and, for the exact solver's bootstrap, its chord start,
    with the warnings it raised as text (they cross process boundaries so)."""
    counts, conditions, source = task
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DisconnectedGraphWarning)
        warnings.simplefilter("always", UndeterminedScoresWarning)
        result = _scale_matrix(counts, conditions, config, source)
    chord = (
        chord_start(counts, result.jod, config.prior, config.anchor)
        if with_chord and result.component.max() == 0
        else None
    )
    return result, chord, [(w.category, str(w.message)) for w in caught]


def _solve_groups(
    tasks: list[tuple[np.ndarray, list[str], str]],
    config: ScaleConfig,
    with_chord: bool,
    n_jobs: int | None,
    progress: bool,
) -> list[tuple[PwScaleResult, ChordStart | None, list[tuple[type[Warning], str]]]]:
    """:func:`_solve_group` for every group, on all cores when the work is worth a pool."""
    solve = partial(_solve_group, config=config, with_chord=with_chord)
    workers = min(worker_count(n_jobs), len(tasks))
    pooled = workers > 1 and sum(task[0].shape[0] ** 2 for task in tasks) >= POOL_WORK
    pool = ProcessPoolExecutor(max_workers=workers) if pooled else contextlib.nullcontext()
    bar = tqdm(
        total=len(tasks), desc="scaling", unit="group", disable=not progress or len(tasks) < 2
    )
    solved = []
    with bar, pool:
        for outcome in pool.map(solve, tasks) if pooled else map(solve, tasks):
            solved.append(outcome)
            bar.update()
    return solved


def _scale_matrix(
    counts: np.ndarray, conditions: list[str], config: ScaleConfig, source: str
) -> PwScaleResult:
    """Validate one count matrix, resolve constraints by name, and scale it."""
    validate_counts(counts, conditions, source)
    return _pw_scale(
        counts,
        config.prior,
        config.anchor,
        solver=config.solver,
        constraints=_resolve_constraints(config.orderings, config.fixed, conditions),
        disconnected=config.disconnected,
        conditions=conditions,
    )


def _whole(counts: np.ndarray) -> np.ndarray:
    """Counts as integers when they are whole (always, with ties dropped); split ties keep
    their halves."""
    return counts.astype(np.int64) if np.array_equal(counts, np.round(counts)) else counts


def _table(
    conditions: list[str], result: PwScaleResult, boot: BootstrapResult | None
) -> pd.DataFrame:
    """The scale-table rows of one group (without its group keys)."""
    nan = np.full(len(conditions), np.nan)
    return pd.DataFrame(
        {
            "condition": conditions,
            "jod": result.jod,
            "jod_std": nan if boot is None else boot.std,
            "ci_low": nan if boot is None else boot.ci_low,
            "ci_high": nan if boot is None else boot.ci_high,
            "n_comparisons": _whole(result.n_comparisons),
            "n_wins": _whole(result.n_wins),
            "n_losses": _whole(result.n_losses),
            "component": result.component,
            "determined": result.determined,
            "bound": [BOUND_NAMES[int(code)] for code in result.bound],
        }
    )


def scale_counts(
    counts: np.ndarray,
    conditions: Sequence[str],
    *,
    prior: str = "gaussian",
    anchor: str = "mean0",
    solver: str = "exact",
    orderings: Sequence[OrderingSpec] = (),
    fixed: Sequence[FixedSpec] = (),
    disconnected: str = "separate",
    source: str = "count matrix",
) -> pd.DataFrame:
    """Scale a single count matrix (CSV or .mat input) to a scale table without groups.

    There is no per-observer data in a matrix, so no bootstrap.
    """
    conditions = list(conditions)
    config = ScaleConfig(
        prior=prior,
        anchor=anchor,
        solver=solver,
        disconnected=disconnected,
        orderings=tuple(orderings),
        fixed=tuple(fixed),
    )
    _check_constraint_names(config.orderings, config.fixed, set(conditions))
    result = _scale_matrix(np.asarray(counts, dtype=float), conditions, config, source)
    table = _table(conditions, result, None)
    table.attrs[METADATA_KEY] = _metadata(config, [], 0, result.notes)
    return table
