"""Which pairs to compare next: active sampling on jodkit's own Thurstone model.

ASAP (Mikhailiuk et al., ICPR 2020) picks the pairs whose outcome is expected to change the
posterior of the scores most, and batches them as a maximum spanning tree; it re-solves a
full approximate inference for every candidate pair and outcome. Here the posterior is the
Laplace approximation of the scale users get (pwcmp's objective, 1 JOD = 75%): a Gaussian
with the MAP scores as mean and, as precision, half the exact Hessian of the objective
(pwcmp counts every compared pair twice) plus a weak prior ``q_i ~ N(0, PRIOR_SD^2)`` that
keeps never-compared conditions and separate components finite. One more comparison of
(i, j) changes that Gaussian only along ``a = (e_i - e_j) / SIGMA``: one Newton step from
the current mode adds ``c a a^T`` to the precision and moves the mean by ``Sigma' a s``
(``s``, ``c``: slope and curvature of the outcome's log-likelihood at the mode). The KL
divergence from the current posterior then has a closed form in two numbers per pair, the
mean ``m`` and variance ``v`` of ``u = a^T q`` (Sherman-Morrison and the matrix determinant
lemma), so all N(N-1)/2 candidates cost one inverse and O(N^2) arithmetic:

    KL = 1/2 [ln(1 + c v) - c v / (1 + c v) + s^2 v / (1 + c v)^2]

and the expected gain weights the two outcomes by their predictive probabilities
``Phi(+-m / sqrt(1 + v))``. For a target ``phi = W q`` (the cross-content alignment) the
same update gives the KL of phi's marginal with ``rho = b^T Cov(phi)^+ b``, ``b = W Sigma a``.

Batches: a maximum spanning tree of the gains (connects every condition, no pair twice);
larger batches add further trees after folding the expected information of the pairs
already chosen into the posterior. Stopping rule per group: the median 95% interval width
of the scores under the posterior reaches a target, or the best expected gain falls below a
threshold.

Inputs: a trial table (``scaling.formats``) or a count matrix. Output: the pair table
``[group keys], condition_A, condition_B, expected_gain`` (cross-content:
``scene_A, condition_A, scene_B, condition_B, expected_gain``) with the per-group status in
``attrs["jodkit"]["status"]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import linalg, optimize, sparse
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.special import log_ndtr, ndtr

from jodkit import __version__
from scaling.api import DisconnectedGraphWarning, _default_by, pw_scale
from scaling.errors import InputError
from scaling.formats import ScaleOptions
from scaling.io import METADATA_KEY, counts_from_trials, read_any_table, validate_trials
from scaling.likelihood import SIGMA, ThurstoneObjective
from scaling.threads import single_threaded_blas

METHODS = ("eig", "random", "round_robin")

PRIOR_SD = 3.0
"""Standard deviation (JOD) of the weak prior on each score used for selection only: about
the spread of a scene's scores (PIQ23 scenes span 6-10.6 JOD). It bounds the uncertainty of
never-compared conditions and of offsets between components; the data dominate elsewhere."""

Z95 = 1.959963984540054
"""Normal quantile of a two-sided 95% interval."""

PAIR_COLUMNS = ("condition_A", "condition_B", "expected_gain")
CROSS_PAIR_COLUMNS = ("scene_A", "condition_A", "scene_B", "condition_B", "expected_gain")

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


# --------------------------------------------------------------------------- posterior
@dataclass
class ScorePosterior:
    """Gaussian (Laplace) posterior of one group's scores, in JOD.

    ``mean``: the MAP scores (0 for conditions never compared); ``cov``: the covariance;
    ``n_comparisons``: decided comparisons behind it.
    """

    mean: np.ndarray
    cov: np.ndarray
    n_comparisons: float

    def centred_cov(self) -> np.ndarray:
        """Covariance of q - mean(q): scores are only defined up to a common offset."""
        row = self.cov.mean(axis=0)
        return self.cov - row[:, None] - row[None, :] + row.mean()

    def interval_widths(self) -> np.ndarray:
        """Width of each score's 95% interval (centred scores), JOD."""
        return 2.0 * Z95 * np.sqrt(np.maximum(np.diag(self.centred_cov()), 0.0))

    def pair_moments(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of u = (q_i - q_j) / SIGMA for pairs (i, j)."""
        diag = np.diag(self.cov)
        m = (self.mean[i] - self.mean[j]) / SIGMA
        v = (diag[i] + diag[j] - 2.0 * self.cov[i, j]) / SIGMA**2
        return m, np.maximum(v, 0.0)

    def with_comparisons(self, i: np.ndarray, j: np.ndarray) -> ScorePosterior:
        """The posterior after one comparison of each pair, by its expected information.

        Each comparison adds F(m) a a^T to the precision (F: the probit's Fisher information
        at the current mean); Woodbury's identity folds all of them in at once. The mean
        stays (the outcomes are not known yet).
        """
        m, _ = self.pair_moments(i, j)
        fisher = np.exp(2.0 * (-0.5 * m * m - _LOG_SQRT_2PI) - log_ndtr(m) - log_ndtr(-m))
        n = self.mean.size
        k = np.arange(i.size)
        a = np.zeros((i.size, n))
        a[k, i], a[k, j] = 1.0 / SIGMA, -1.0 / SIGMA
        cov_a = self.cov @ a.T
        inner = a @ cov_a + np.diag(1.0 / fisher)
        cov = self.cov - cov_a @ linalg.solve(inner, cov_a.T, assume_a="pos")
        return ScorePosterior(self.mean, 0.5 * (cov + cov.T), self.n_comparisons + i.size)


def laplace_posterior(
    counts: np.ndarray,
    *,
    prior: str = "gaussian",
    prior_sd: float = PRIOR_SD,
    q0: np.ndarray | None = None,
) -> ScorePosterior:
    """Laplace posterior of the scores of one count matrix.

    The log-posterior is half of pwcmp's objective (every compared pair enters that twice)
    plus the weak prior ``q_i ~ N(0, prior_sd^2)``. Its mode is found by trust-region Newton
    with the objective's exact Hessian, from ``q0`` (e.g. the previous batch's mode) or from
    :func:`scaling.pw_scale`'s scores; the precision is the Hessian there. Where pwcmp's
    prior makes it indefinite, eigenvalues are raised to ``1 / prior_sd^2``.
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.shape[0]
    ridge = 1.0 / prior_sd**2
    total = float(counts.sum())
    with single_threaded_blas():
        if total == 0:
            return ScorePosterior(np.zeros(n), np.eye(n) * prior_sd**2, 0.0)
        objective = ThurstoneObjective(counts, prior=prior)
        start = _start(counts, prior, q0)

        def fun(q: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = objective.value_and_grad(q)
            return 0.5 * value + 0.5 * ridge * q @ q, 0.5 * grad + ridge * q

        def hess(q: np.ndarray) -> np.ndarray:
            return 0.5 * objective.hessian(q) + ridge * np.eye(n)

        mode = optimize.minimize(
            fun, start, jac=True, hess=hess, method="trust-exact", options={"gtol": 1e-6}
        ).x
        precision = hess(mode)
        cov = _spd_inverse(0.5 * (precision + precision.T), floor=ridge)
    return ScorePosterior(mode, cov, total)


def _start(counts: np.ndarray, prior: str, q0: np.ndarray | None) -> np.ndarray:
    """Where the mode search starts: ``q0``, else pwcmp's scores (0 where undefined)."""
    if q0 is not None:
        return np.nan_to_num(np.asarray(q0, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DisconnectedGraphWarning)
        return np.nan_to_num(pw_scale(counts, prior).jod)


def _spd_inverse(precision: np.ndarray, floor: float) -> np.ndarray:
    """Inverse of a symmetric matrix that should be positive definite; if it is not
    (non-convex prior), eigenvalues below ``floor`` are raised to it first."""
    try:
        factor = linalg.cho_factor(precision, lower=True, check_finite=False)
        cov = linalg.cho_solve(factor, np.eye(precision.shape[0]), check_finite=False)
    except linalg.LinAlgError:
        values, vectors = linalg.eigh(precision)
        cov = (vectors / np.maximum(values, floor)) @ vectors.T
    return 0.5 * (cov + cov.T)


# --------------------------------------------------------------------------- gains
def expected_gain(
    mean_diff: np.ndarray, var_diff: np.ndarray, target_var: np.ndarray | None = None
) -> np.ndarray:
    """Expected KL divergence (nats) from the current posterior to the one after one more
    comparison, for pairs whose difference u = (q_i - q_j) / SIGMA has posterior mean
    ``mean_diff`` and variance ``var_diff``.

    ``target_var`` (rho, at most ``var_diff``): measure the change of a target phi = W q
    only, rho = b^T Cov(phi)^+ b with b = W Cov(q) a. Default: all scores (rho = v).
    """
    m = np.asarray(mean_diff, dtype=float)
    v = np.asarray(var_diff, dtype=float)
    rho = v if target_var is None else np.minimum(np.asarray(target_var, dtype=float), v)
    p_first = ndtr(m / np.sqrt(1.0 + v))
    log_pdf = -0.5 * m * m - _LOG_SQRT_2PI
    slope_first = np.exp(log_pdf - log_ndtr(m))  # d/du log Phi(u) at u = m
    slope_second = np.exp(log_pdf - log_ndtr(-m))  # -d/du log Phi(-u)
    curv_first = slope_first * (m + slope_first)
    curv_second = slope_second * (slope_second - m)

    def kl(slope: np.ndarray, curv: np.ndarray) -> np.ndarray:
        shrink = 1.0 + curv * v
        value = np.log(shrink) - curv * rho / shrink + slope**2 * rho / shrink**2
        if target_var is not None:
            value -= np.log1p(curv * (v - rho))
        return 0.5 * value

    return p_first * kl(slope_first, curv_first) + (1.0 - p_first) * kl(slope_second, curv_second)


@dataclass
class AlignmentTarget:
    """phi = W q: what the cross-content comparisons should pin down (see
    :func:`select_cross_pairs`); ``hat`` maps q to the fitted line values."""

    weights: np.ndarray
    hat: np.ndarray


def candidate_gains(
    posterior: ScorePosterior,
    first: np.ndarray,
    second: np.ndarray,
    target: AlignmentTarget | None = None,
) -> np.ndarray:
    """:func:`expected_gain` of every candidate pair (first[k], second[k])."""
    m, v = posterior.pair_moments(first, second)
    if target is None:
        return expected_gain(m, v)
    return expected_gain(m, v, _target_variance(posterior, target, first, second))


def _target_variance(
    posterior: ScorePosterior, target: AlignmentTarget, first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """rho of every candidate: b^T Cov(phi)^+ b, from one whitened (rank x N) matrix."""
    spread = target.weights @ posterior.centred_cov()
    values, vectors = linalg.eigh(spread @ target.weights.T)
    keep = values > 1e-10 * max(values.max(initial=0.0), 1e-300)
    white = (vectors[:, keep] / np.sqrt(values[keep])).T @ spread / SIGMA
    gram = white.T @ white
    diag = np.diag(gram)
    return diag[first] + diag[second] - 2.0 * gram[first, second]


# --------------------------------------------------------------------------- batches
def spanning_tree_pairs(
    first: np.ndarray, second: np.ndarray, gains: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices into the candidates of a maximum spanning tree (forest) of the gains, best
    first. Ties are broken at random, so equal gains (no data yet) give a random tree."""
    if gains.size == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.lexsort((rng.random(gains.size), -gains))
    rank = np.empty(gains.size)
    rank[order] = np.arange(1, gains.size + 1)  # minimum spanning tree of the ranks
    graph = sparse.coo_matrix((rank, (first, second)), shape=(n, n)).tocsr()
    chosen = np.sort(minimum_spanning_tree(graph).tocoo().data)
    return order[(chosen - 1).astype(np.intp)]


def eig_pairs(
    posterior: ScorePosterior,
    n_pairs: int,
    rng: np.random.Generator,
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
    target: AlignmentTarget | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The batch: maximum spanning trees of the expected gains until ``n_pairs`` pairs.

    After each tree, its pairs' expected information is folded into the posterior and the
    gains are recomputed, so a further tree favours what the first leaves uncertain. No
    pair appears twice. Returns (candidate indices, their gains when chosen).
    """
    n = posterior.mean.size
    first, second = candidates if candidates is not None else np.triu_indices(n, k=1)
    free = np.ones(first.size, dtype=bool)
    picked: list[np.ndarray] = []
    gains_picked: list[np.ndarray] = []
    while sum(p.size for p in picked) < n_pairs and free.any():
        pool = np.flatnonzero(free)
        gains = candidate_gains(posterior, first[pool], second[pool], target)
        tree = spanning_tree_pairs(first[pool], second[pool], gains, n, rng)
        tree = tree[: n_pairs - sum(p.size for p in picked)]
        picked.append(pool[tree])
        gains_picked.append(gains[tree])
        free[pool[tree]] = False
        if sum(p.size for p in picked) < n_pairs:
            posterior = posterior.with_comparisons(first[pool[tree]], second[pool[tree]])
    index = np.concatenate(picked) if picked else np.zeros(0, dtype=np.intp)
    gain = np.concatenate(gains_picked) if gains_picked else np.zeros(0)
    return index, gain


def random_pairs(n_candidates: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_pairs`` distinct candidates drawn uniformly (ASAP's "random" baseline)."""
    return rng.choice(n_candidates, size=min(n_pairs, n_candidates), replace=False)


def round_robin_pairs(compared: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """The ``n_pairs`` candidates compared least often so far, ties in random order: every
    pair once before any pair twice."""
    order = np.lexsort((rng.random(compared.size), compared))
    return order[: min(n_pairs, compared.size)]


# --------------------------------------------------------------------------- one group
@dataclass
class GroupStatus:
    """Where one group stands: the stopping rule's inputs and verdict.

    ``interval_width``: median 95% interval width of the scores now (JOD);
    ``further_judgments``: predicted comparisons still needed to bring it to
    ``target_width`` (widths shrink as 1 / sqrt(comparisons)); ``done``: the target width
    is reached or the best expected gain (``max_gain``, nats) is below ``min_gain``.
    """

    n_conditions: int
    n_comparisons: float
    interval_width: float
    max_gain: float
    target_width: float | None
    min_gain: float | None
    further_judgments: float
    done: bool
    reason: str


@dataclass
class Batch:
    """One planned batch: candidate pairs (rows of ``pairs``: index of A, index of B), their
    expected gains, the group's status and the posterior mean (a warm start next time)."""

    pairs: np.ndarray
    gains: np.ndarray
    status: GroupStatus
    scores: np.ndarray


def group_status(
    posterior: ScorePosterior,
    max_gain: float,
    target_width: float | None = None,
    min_gain: float | None = None,
) -> GroupStatus:
    """The stopping rule of one group (see :class:`GroupStatus`)."""
    width = float(np.median(posterior.interval_widths()))
    n_done = posterior.n_comparisons
    further = np.nan
    reasons = []
    if target_width is not None:
        if width <= target_width:
            further = 0.0
            reasons.append(f"median 95% interval width {width:.3g} <= {target_width:g} JOD")
        elif n_done > 0:
            further = float(np.ceil(n_done * ((width / target_width) ** 2 - 1.0)))
    if min_gain is not None and max_gain < min_gain:
        reasons.append(f"best expected gain {max_gain:.3g} < {min_gain:g} nats")
    return GroupStatus(
        n_conditions=posterior.mean.size,
        n_comparisons=n_done,
        interval_width=width,
        max_gain=float(max_gain),
        target_width=target_width,
        min_gain=min_gain,
        further_judgments=further,
        done=bool(reasons),
        reason="; ".join(reasons),
    )


def plan_batch(
    counts: np.ndarray,
    n_pairs: int | None = None,
    *,
    method: str = "eig",
    rng: np.random.Generator | None = None,
    prior: str = "gaussian",
    prior_sd: float = PRIOR_SD,
    target_width: float | None = None,
    min_gain: float | None = None,
    q0: np.ndarray | None = None,
) -> Batch:
    """The next batch of one group from its count matrix (no names, no validation).

    ``n_pairs`` defaults to N - 1 (one spanning tree). A group that meets its stopping rule
    gets no pairs. ``q0``: warm start for the scale (the previous batch's ``scores``).
    """
    n = counts.shape[0]
    rng = rng if rng is not None else np.random.default_rng(0)
    n_pairs = _check_batch_size(n, n_pairs)
    posterior = laplace_posterior(counts, prior=prior, prior_sd=prior_sd, q0=q0)
    first, second = np.triu_indices(n, k=1)
    all_gains = candidate_gains(posterior, first, second)
    status = group_status(posterior, float(all_gains.max()), target_width, min_gain)
    if status.done:
        empty = np.zeros((0, 2), dtype=np.intp)
        return Batch(empty, np.zeros(0), status, posterior.mean)
    if method == "eig":
        index, gains = eig_pairs(posterior, n_pairs, rng, (first, second))
    elif method == "random":
        index = random_pairs(first.size, n_pairs, rng)
        gains = all_gains[index]
    else:
        compared = (counts + counts.T)[first, second]
        index = round_robin_pairs(compared, n_pairs, rng)
        gains = all_gains[index]
    pairs = _random_sides(first[index], second[index], rng)
    return Batch(pairs, gains, status, posterior.mean)


def _check_batch_size(n: int, n_pairs: int | None, label: str = "") -> int:
    """``n_pairs``, or N - 1 for None, checked against the N (N - 1) / 2 distinct pairs."""
    if n < 2:
        raise ValueError("at least two conditions are needed to form a pair")
    n_candidates = n * (n - 1) // 2
    if n_pairs is None:
        return n - 1
    if not 1 <= n_pairs <= n_candidates:
        where = f"{label}: " if label else ""
        raise ValueError(
            f"{where}n_pairs must be between 1 and the {n_candidates} distinct pairs of {n} "
            f"conditions (no pair twice in a batch), not {n_pairs}"
        )
    return int(n_pairs)


def _random_sides(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pairs as (A, B) rows with a fair coin for which condition is A."""
    swap = rng.random(first.size) < 0.5
    return np.column_stack([np.where(swap, second, first), np.where(swap, first, second)])


# --------------------------------------------------------------------------- public API
def select_pairs(
    trials_or_counts: pd.DataFrame | str | Path | np.ndarray,
    n_pairs: int | None = None,
    *,
    method: str = "eig",
    by: Sequence[str] | None = None,
    conditions: Sequence[str] | pd.DataFrame | None = None,
    target_width: float | None = None,
    min_gain: float | None = None,
    seed: int = 0,
    prior: str = "gaussian",
    ties: str = "drop",
    prior_sd: float = PRIOR_SD,
) -> pd.DataFrame:
    """The next pairs to compare, per group, for the most expected information.

    Parameters
    ----------
    trials_or_counts : DataFrame, path or (N, N) array
        A trial table (``scaling.formats``; CSV/Parquet paths are read; training trials are
        left out) or one count matrix (D[i, j] = times i was chosen over j).
    n_pairs : int, optional
        Pairs per group; default N - 1, one spanning tree that connects every condition.
        At most N (N - 1) / 2: no pair is repeated within a batch.
    method : {"eig", "random", "round_robin"}
        Expected information gain under the scale's own posterior (maximum spanning trees);
        distinct random pairs; or the least-compared pairs first.
    by : sequence of str, optional
        Group columns (default: ``scene`` and ``attribute`` where present).
    conditions : sequence of str or DataFrame, optional
        All conditions that may be paired, including ones not compared yet: names (every
        group, or the count matrix's rows), or a table with the group columns and
        ``condition``. A trial naming a condition outside this list is an error. Default:
        the conditions found in the trials (``c1`` ... ``cN`` for a matrix).
    target_width, min_gain : float, optional
        The stopping rule: a group whose median 95% interval width is at most
        ``target_width`` JOD, or whose best expected gain is below ``min_gain`` nats, is
        done and gets no pairs.
    seed : int
        Seed for tie-breaking, random methods and which side is A; same seed, same pairs.
    prior, ties
        Scaling options (see :func:`scaling.scale`).
    prior_sd : float
        The selection's weak prior on every score (JOD; see :data:`PRIOR_SD`).

    Returns
    -------
    DataFrame
        Group keys, then ``condition_A, condition_B, expected_gain`` (nats, best first
        within each spanning tree). ``attrs["jodkit"]["status"]`` lists per group:
        ``n_conditions, n_comparisons, interval_width, max_gain, further_judgments, done,
        reason`` (see :class:`GroupStatus`).
    """
    ScaleOptions(prior=prior, ties=ties)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    _check_positive(target_width=target_width, min_gain=min_gain, prior_sd=prior_sd)
    if isinstance(trials_or_counts, np.ndarray):
        keys: list[str] = []
        groups = [((), *_matrix_group(trials_or_counts, conditions))]
        source = "count matrix"
    else:
        groups, keys, source = _trial_groups(trials_or_counts, by, conditions, ties)
    seeds = np.random.SeedSequence(seed).spawn(len(groups))
    tables, status = [], []
    for (key, names, counts), seq in zip(groups, seeds, strict=True):
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key, strict=True)) or source
        if len(names) < 2:
            raise InputError(
                f"{label}: only one condition ({names[0]!r}); a pair needs two", source=source
            )
        batch = plan_batch(
            counts,
            _check_batch_size(len(names), n_pairs, label),
            method=method,
            rng=np.random.default_rng(seq),
            prior=prior,
            prior_sd=prior_sd,
            target_width=target_width,
            min_gain=min_gain,
        )
        table = pd.DataFrame(
            {
                "condition_A": np.asarray(names, dtype=object)[batch.pairs[:, 0]],
                "condition_B": np.asarray(names, dtype=object)[batch.pairs[:, 1]],
                "expected_gain": batch.gains,
            }
        )
        for k, value in zip(reversed(keys), reversed(key), strict=True):
            table.insert(0, k, value)
        tables.append(table)
        status.append({**dict(zip(keys, key, strict=True)), **asdict(batch.status)})
    out = pd.concat(tables, ignore_index=True)[[*keys, *PAIR_COLUMNS]]
    out.attrs[METADATA_KEY] = _metadata(method, keys, seed, prior, ties, prior_sd, status)
    return out


def _check_positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive, not {value}")


def _matrix_group(
    counts: np.ndarray, conditions: Sequence[str] | pd.DataFrame | None
) -> tuple[list[str], np.ndarray]:
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise InputError(f"must be square, not of shape {counts.shape}", source="count matrix")
    if not np.all(np.isfinite(counts)) or (counts < 0).any():
        raise InputError("counts must be finite and non-negative", source="count matrix")
    n = counts.shape[0]
    if isinstance(conditions, pd.DataFrame):
        raise ValueError("conditions for a count matrix must be a list of names")
    names = [f"c{k + 1}" for k in range(n)] if conditions is None else [str(c) for c in conditions]
    if len(names) != n:
        raise InputError(
            f"{len(names)} condition names for a {n} x {n} matrix", source="count matrix"
        )
    if n == 0:
        raise InputError("is empty", source="count matrix")
    return names, counts


def _trial_groups(
    trials: pd.DataFrame | str | Path,
    by: Sequence[str] | None,
    conditions: Sequence[str] | pd.DataFrame | None,
    ties: str,
) -> tuple[list[tuple[tuple, list[str], np.ndarray]], list[str], str]:
    """Validated groups (key, condition names, count matrix) of a trial table."""
    source = "DataFrame" if isinstance(trials, pd.DataFrame) else str(trials)
    raw = trials if isinstance(trials, pd.DataFrame) else read_any_table(trials)
    keys = list(by) if by is not None else _default_by(raw)
    if raw.empty and conditions is not None:
        frame = raw.assign(**{k: pd.Series(dtype=str) for k in keys if k not in raw.columns})
    elif raw.empty:
        raise InputError("has no trials and no condition list: nothing to pair", source=source)
    else:
        frame = validate_trials(raw, by=keys, source=source)
    if "is_training" in frame.columns:
        frame = frame[frame["is_training"] == 0]
    listed = _listed_conditions(conditions, keys)
    group_keys = [()]
    if keys:
        found = set(frame[keys].drop_duplicates().itertuples(index=False, name=None))
        group_keys = sorted(found | {k for k in listed if k != ()})
    groups = []
    for key in group_keys:
        rows = frame
        for k, value in zip(keys, key, strict=True):
            rows = rows[rows[k] == value]
        seen = sorted(set(rows["condition_A"]) | set(rows["condition_B"]))
        names = listed.get(key, listed.get(()))
        if names is None:
            names = seen
        else:
            _check_known(rows, names, source)
        if not names:
            raise InputError("no conditions to pair", source=source)
        groups.append((key, names, counts_from_trials(rows, names, ties)))
    return groups, keys, source


def _listed_conditions(
    conditions: Sequence[str] | pd.DataFrame | None, keys: list[str]
) -> dict[tuple, list[str]]:
    """Condition lists by group key (``()``: one list for every group)."""
    if conditions is None:
        return {}
    if not isinstance(conditions, pd.DataFrame):
        names = list(dict.fromkeys(str(c) for c in conditions))
        return {(): names}
    missing = [c for c in [*keys, "condition"] if c not in conditions.columns]
    if missing:
        raise InputError(f"missing column {missing[0]!r}", source="conditions", field=missing[0])
    listed: dict[tuple, list[str]] = {}
    table = conditions.astype({c: str for c in [*keys, "condition"]})
    for key, rows in table.groupby(keys, sort=True) if keys else [((), table)]:
        key = key if isinstance(key, tuple) else (key,)
        listed[key] = list(dict.fromkeys(rows["condition"]))
    return listed


def _check_known(rows: pd.DataFrame, names: list[str], source: str) -> None:
    known = set(names)
    for column in ("condition_A", "condition_B"):
        unknown = ~rows[column].isin(known)
        if unknown.any():
            row = int(rows.index[np.flatnonzero(unknown.to_numpy())[0]]) + 1
            raise InputError(
                f"unknown condition {rows[column][unknown].iloc[0]!r} (not in the condition list)",
                source=source,
                row=row,
                field=column,
            )


def _metadata(
    method: str,
    keys: list[str],
    seed: int,
    prior: str,
    ties: str,
    prior_sd: float,
    status: list[dict],
) -> dict:
    return {
        "stage": "pair selection",
        "jodkit_version": __version__,
        "model": "Thurstone Case V, 1 JOD = 75% preference; Laplace posterior of pwcmp's objective",
        "method": method,
        "group_by": keys,
        "seed": seed,
        "prior": prior,
        "ties": ties,
        "selection_prior_sd": prior_sd,
        "status": status,
    }
