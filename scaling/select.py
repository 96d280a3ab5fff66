"""Which pairs to compare next: active sampling on jodkit's own Thurstone model.

ASAP (Mikhailiuk et al., ICPR 2020) picks the pairs whose outcome is expected to change the
posterior of the scores most, and batches them as a maximum spanning tree; it re-solves a
full approximate inference for every candidate pair and outcome. Here the posterior is the
Laplace approximation of the scale users get (pwcmp's objective, 1 JOD = 75%): the
log-posterior is half the objective (pwcmp counts every compared pair twice) plus a weak
prior ``q_i ~ N(0, tau^2)`` that keeps never-compared conditions and separate components
finite, with ``tau`` fitted to the data by EM; the Gaussian has the mode as mean and the
exact Hessian there as precision. One more comparison of (i, j) depends on q only through
``u = (q_i - q_j) / SIGMA``, so the posterior after its outcome (the Gaussian times the
probit likelihood, matched by the Gaussian of the same mean and covariance, as TrueSkill
and EP update) differs from the current one along one direction: a rank-one update whose
KL divergence from the current posterior is a closed form in the mean ``m`` and variance
``v`` of u. All N(N-1)/2 candidates therefore cost one inverse and O(N^2) arithmetic
instead of ASAP's re-solve per candidate and outcome. The expected gain weights the two
outcomes by their predictive probabilities ``Phi(+-m / sqrt(1 + v))``; it stays bounded
however uncertain a pair is (a Newton step of the Laplace fit would grow like log v and keep
choosing the least determined conditions at the ends of the scale). For a target
``phi = W q`` (the cross-content alignment) the same update gives the KL of phi's marginal.

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
from scipy import linalg
from scipy.linalg import lapack

from scaling.api import _default_by, pw_scale
from scaling.config import ScaleConfig
from scaling.errors import InputError
from scaling.formats import image_keys, scene_name_problem
from scaling.io import METADATA_KEY, counts_from_trials, read_any_table, validate_trials
from scaling.likelihood import ThurstoneObjective
from scaling.options import SELECTION_METHODS
from scaling.threads import single_threaded_blas
from scaling.thurstone import SIGMA, normal_terms
from scaling.version import __version__

METHODS = SELECTION_METHODS

INITIAL_PRIOR_SD = 1.5
"""Where the estimate of the weak prior's scale starts (JOD). The prior ``q_i ~ N(0, tau^2)``
bounds the uncertainty of never-compared conditions and of offsets between components;
``tau`` is then fitted to the data by EM (:data:`EM_STEPS`), so that a scene spanning 3 JOD
and one spanning 12 JOD each get a prior of their own size."""

EM_STEPS = 5
"""At most this many EM updates of the prior's scale per posterior; they stop when it moves
by less than :data:`EM_TOLERANCE` (relative). From the previous batch's estimate one
update is usually enough."""

EM_TOLERANCE = 0.02

SELECTION_PRIOR = "none"
"""pwcmp's distance prior is left out of the selection's posterior by default: it is built
from the counts themselves (one more comparison changes it for every pair), it makes the
Hessian several times costlier, and the designs it led to were no more accurate
(docs/scaling.md, active sampling). The likelihood is the same Thurstone model, 1 JOD = 75%."""

Z95 = 1.959963984540054
"""Normal quantile of a two-sided 95% interval."""

PAIR_COLUMNS = ("condition_A", "condition_B", "expected_gain")
CROSS_PAIR_COLUMNS = ("scene_A", "condition_A", "scene_B", "condition_B", "expected_gain")


# --------------------------------------------------------------------------- posterior
@dataclass
class ScorePosterior:
    """Gaussian (Laplace) posterior of one group's scores, in JOD.

    ``mean``: the posterior mode; ``cov``: the covariance; ``n_comparisons``: decided
    comparisons behind it; ``prior_sd``: the scale of the weak prior it was computed with.
    """

    mean: np.ndarray
    cov: np.ndarray
    n_comparisons: float
    prior_sd: float

    def fitted_prior_sd(self) -> float:
        """One EM step for the weak prior's scale: the root mean square of the centred
        scores under this posterior (E[q_i^2] = mean^2 + variance, averaged)."""
        centred = self.mean - self.mean.mean()
        n = max(self.mean.size - 1, 1)
        return float(np.sqrt((centred @ centred + np.trace(self.centred_cov())) / n))

    def centred_cov(self) -> np.ndarray:
        """Covariance of q - mean(q): scores are only defined up to a common offset."""
        row = self.cov.mean(axis=0)
        return self.cov - row[:, None] - row[None, :] + row.mean()

    def interval_widths(self, target: AlignmentTarget | None = None) -> np.ndarray:
        """Width of each score's 95% interval (centred scores), JOD; with a ``target``, of
        each image's fitted value on its scene's alignment line."""
        cov = self.centred_cov()
        if target is not None:
            variance = np.einsum("ij,jk,ik->i", target.hat, cov, target.hat)
        else:
            variance = np.diag(cov)
        return 2.0 * Z95 * np.sqrt(np.maximum(variance, 0.0))

    def pair_moments(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of u = (q_i - q_j) / SIGMA for pairs (i, j)."""
        diag = np.diag(self.cov)
        m = (self.mean[i] - self.mean[j]) / SIGMA
        v = (diag[i] + diag[j] - 2.0 * self.cov[i, j]) / SIGMA**2
        return m, np.maximum(v, 0.0)

    def with_comparisons(self, i: np.ndarray, j: np.ndarray) -> ScorePosterior:
        """The posterior after one comparison of each pair, by its expected information.

        Each comparison adds c a a^T to the precision, with c chosen so that u's variance
        shrinks by its expected amount under :func:`expected_gain`'s update; Woodbury's
        identity folds all of them in at once. The mean stays (the outcomes are not known).
        """
        m, v = self.pair_moments(i, j)
        p_first, (_, shrink_first), (_, shrink_second) = _outcome_updates(m, v)
        shrink = np.minimum(p_first * shrink_first + (1.0 - p_first) * shrink_second, 0.999)
        fisher = shrink / (np.maximum(v, 1e-300) * (1.0 - shrink))  # v' = v / (1 + c v)
        n = self.mean.size
        k = np.arange(i.size)
        a = np.zeros((i.size, n))
        a[k, i], a[k, j] = 1.0 / SIGMA, -1.0 / SIGMA
        cov_a = self.cov @ a.T
        inner = a @ cov_a + np.diag(1.0 / fisher)
        cov = self.cov - cov_a @ linalg.solve(inner, cov_a.T, assume_a="pos")
        cov = 0.5 * (cov + cov.T)
        return ScorePosterior(self.mean, cov, self.n_comparisons + i.size, self.prior_sd)


def laplace_posterior(
    counts: np.ndarray,
    *,
    prior: str = SELECTION_PRIOR,
    prior_sd: float | None = None,
    q0: np.ndarray | None = None,
    start_sd: float = INITIAL_PRIOR_SD,
) -> ScorePosterior:
    """Laplace posterior of the scores of one count matrix.

    The log-posterior is half of pwcmp's objective (every compared pair enters that twice)
    plus the weak prior ``q_i ~ N(0, prior_sd^2)``. Its mode is found by trust-region Newton
    with the objective's exact Hessian, from ``q0`` (e.g. the previous batch's mode) or from
    :func:`scaling.pw_scale`'s scores; the precision is the Hessian there. Where pwcmp's
    prior makes it indefinite, eigenvalues are raised to ``1 / prior_sd^2``.
    ``prior_sd=None`` fits the prior's scale by EM from ``start_sd`` (e.g. the previous
    batch's :meth:`ScorePosterior.fitted_prior_sd`).
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.shape[0]
    total = float(counts.sum())
    tau = start_sd if prior_sd is None else prior_sd
    if total == 0:
        return ScorePosterior(np.zeros(n), np.eye(n) * tau**2, 0.0, tau)
    with single_threaded_blas():
        objective = ThurstoneObjective(counts, prior=prior)
        mode = _start(counts, prior, q0)
        for _ in range(1 if prior_sd is not None else EM_STEPS):
            posterior = _laplace_at_mode(objective, mode, tau, total)
            fitted, mode = posterior.fitted_prior_sd(), posterior.mean
            if abs(fitted - tau) <= EM_TOLERANCE * tau:
                break
            tau = fitted
    return posterior


def _laplace_at_mode(
    objective: ThurstoneObjective, start: np.ndarray, prior_sd: float, total: float
) -> ScorePosterior:
    """Mode of half the objective plus the weak prior (damped Newton with the exact
    Hessian, clipped where pwcmp's prior makes it indefinite), and the covariance there."""
    ridge = 1.0 / prior_sd**2
    diagonal = np.diag_indices(start.size)

    def value_and_grad(q: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective.value_and_grad(q)
        return 0.5 * value + 0.5 * ridge * (q @ q), 0.5 * grad + ridge * q

    def hessian(q: np.ndarray) -> np.ndarray:
        h = objective.hessian(q)
        h = 0.25 * (h + h.T)
        h[diagonal] += ridge
        return h

    mode = start.copy()
    value, grad = value_and_grad(mode)
    for _ in range(MODE_ITERATIONS):
        step = _spd_solve(hessian(mode), grad, floor=ridge)
        slope, size = float(grad @ step), 1.0
        while True:  # backtracking: the step is a descent direction (positive definite)
            trial_value, trial_grad = value_and_grad(mode - size * step)
            if trial_value <= value - 1e-4 * size * slope or size < 1e-6:
                break
            size *= 0.5
        mode -= size * step
        value, grad = trial_value, trial_grad
        if size * np.abs(step).max() < MODE_TOL:
            break
    return ScorePosterior(mode, _spd_inverse(hessian(mode), floor=ridge), total, prior_sd)


MODE_ITERATIONS = 100
MODE_TOL = 1e-8
"""Newton stops when no score moves by more than this (JOD)."""


def _start(counts: np.ndarray, prior: str, q0: np.ndarray | None) -> np.ndarray:
    """Where the mode search starts: ``q0``; without it 0 for the likelihood alone (with
    the weak prior the problem is strictly convex: Newton needs no better start), and
    pwcmp's scores (0 where undefined) for its non-convex distance prior."""
    if q0 is not None:
        return np.nan_to_num(np.asarray(q0, dtype=float))
    if prior == "none":
        return np.zeros(counts.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # components, undetermined scores
        return np.nan_to_num(pw_scale(counts, prior).jod)


def _spd_inverse(precision: np.ndarray, floor: float) -> np.ndarray:
    """Inverse of a symmetric matrix that should be positive definite, from its Cholesky
    factor (LAPACK potri); if it is not (non-convex prior), eigenvalues below ``floor`` are
    raised to it first."""
    factor, info = lapack.dpotrf(precision, lower=1, clean=1)
    if info == 0:
        inverse, info = lapack.dpotri(factor, lower=1)
    if info != 0:
        values, vectors = linalg.eigh(precision)
        return (vectors / np.maximum(values, floor)) @ vectors.T
    return np.tril(inverse) + np.tril(inverse, -1).T


def _spd_solve(precision: np.ndarray, rhs: np.ndarray, floor: float) -> np.ndarray:
    """``precision``^-1 ``rhs`` by Cholesky, eigenvalues raised to ``floor`` if needed."""
    try:
        return linalg.cho_solve(linalg.cho_factor(precision, lower=True), rhs)
    except linalg.LinAlgError:
        values, vectors = linalg.eigh(precision)
        return vectors @ ((vectors.T @ rhs) / np.maximum(values, floor))


# --------------------------------------------------------------------------- gains
def _outcome_updates(
    m: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """For u ~ N(m, v) and one more comparison (first wins with probability Phi(u)): the
    predictive probability that the first wins, and for each outcome the exact shift of
    u's mean and the fraction (v - v') / v by which its variance shrinks (the tilted
    distribution's first two moments, closed form for the probit)."""
    scale = np.sqrt(1.0 + v)
    z = m / scale
    terms = normal_terms(z)
    ratio_first, ratio_second = terms.mills_p, terms.mills_not  # phi(z) / Phi(+-z)
    first = (v * ratio_first / scale, v * ratio_first * (z + ratio_first) / (1.0 + v))
    second = (-v * ratio_second / scale, v * ratio_second * (ratio_second - z) / (1.0 + v))
    return np.exp(terms.log_p), first, second


def expected_gain(
    mean_diff: np.ndarray, var_diff: np.ndarray, target_var: np.ndarray | None = None
) -> np.ndarray:
    """Expected KL divergence (nats) from the current posterior to the one after one more
    comparison, for pairs whose difference u = (q_i - q_j) / SIGMA has posterior mean
    ``mean_diff`` and variance ``var_diff``.

    The posterior after an outcome is the current Gaussian times the outcome's likelihood,
    matched by the Gaussian of the same mean and covariance (as TrueSkill's and EP's
    updates): only u's distribution changes, so the KL is a function of u's shift and
    shrinkage. ``target_var`` (R, at most ``var_diff``): measure the change of a target
    phi = W q only, R = b^T Cov(phi)^+ b with b = Cov(phi, u). Default: all scores (R = v).
    """
    m = np.asarray(mean_diff, dtype=float)
    v = np.maximum(np.asarray(var_diff, dtype=float), 1e-300)
    share = 1.0 if target_var is None else np.minimum(np.asarray(target_var, float) / v, 1.0)
    p_first, *outcomes = _outcome_updates(m, v)
    gains = []
    for shift, shrink in outcomes:
        explained = np.minimum(shrink * share, 1.0 - 1e-15)
        gains.append(0.5 * (shift**2 / v * share - explained - np.log1p(-explained)))
    return p_first * gains[0] + (1.0 - p_first) * gains[1]


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
    """Indices into the candidates of a maximum spanning tree (a forest when the candidates
    do not connect every condition) of the gains, best first.

    Prim's algorithm on the dense N x N gain matrix: N steps of O(N) vector work, O(N^2)
    memory. Ties are broken at random (a jitter of 1e-12 of the largest gain), so equal gains
    (no data yet) give a random tree; the tree starts from a random condition.
    """
    if gains.size == 0:
        return np.zeros(0, dtype=np.intp)
    weight = np.full((n, n), -np.inf)
    jitter = 1e-12 * (np.abs(gains).max() + 1e-300) * rng.random(gains.size)
    weight[first, second] = weight[second, first] = gains + jitter
    index = np.full((n, n), -1, dtype=np.intp)
    index[first, second] = index[second, first] = np.arange(gains.size)
    inside = np.zeros(n, dtype=bool)
    best = np.full(n, -np.inf)
    link = np.full(n, -1, dtype=np.intp)
    chosen = []
    node = int(rng.integers(n))
    for _ in range(n):
        inside[node] = True
        if link[node] >= 0:
            chosen.append(index[link[node], node])
        closer = ~inside & (weight[node] > best)
        best[closer], link[closer] = weight[node][closer], node
        best[node] = -np.inf
        if inside.all():
            break
        node = int(np.argmax(np.where(inside, -np.inf, best)))
        if not np.isfinite(best[node]):  # nothing links the rest: start the next tree
            node = int(np.flatnonzero(~inside)[0])
            link[node] = -1
    tree = np.array(chosen, dtype=np.intp)
    return tree[np.argsort(-gains[tree], kind="stable")]


def eig_pairs(
    posterior: ScorePosterior,
    n_pairs: int,
    rng: np.random.Generator,
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
    target: AlignmentTarget | None = None,
    gains: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The batch: maximum spanning trees of the expected gains until ``n_pairs`` pairs.

    After each tree, its pairs' expected information is folded into the posterior and the
    gains are recomputed, so a further tree favours what the first leaves uncertain. No
    pair appears twice. ``gains``: the candidates' gains under ``posterior`` when known.
    Returns (candidate indices, their gains when chosen).
    """
    n = posterior.mean.size
    first, second = candidates if candidates is not None else np.triu_indices(n, k=1)
    free = np.ones(first.size, dtype=bool)
    picked: list[np.ndarray] = []
    gains_picked: list[np.ndarray] = []
    while sum(p.size for p in picked) < n_pairs and free.any():
        pool = np.flatnonzero(free)
        if gains is None or gains.size != pool.size:
            gains = candidate_gains(posterior, first[pool], second[pool], target)
        tree = spanning_tree_pairs(first[pool], second[pool], gains, n, rng)
        tree = tree[: n_pairs - sum(p.size for p in picked)]
        picked.append(pool[tree])
        gains_picked.append(gains[tree])
        free[pool[tree]] = False
        if sum(p.size for p in picked) < n_pairs:
            posterior = posterior.with_comparisons(first[pool[tree]], second[pool[tree]])
            gains = None
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
    is reached or the best expected gain (``max_gain``, nats) is below ``min_gain``;
    ``prior_sd``: the weak prior's scale the posterior used (JOD).
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
    prior_sd: float


@dataclass
class Batch:
    """One planned batch: candidate pairs (rows of ``pairs``: index of A, index of B), their
    expected gains, the group's status, and what the next batch can start from: the
    posterior mode and the prior scale's EM estimate."""

    pairs: np.ndarray
    gains: np.ndarray
    status: GroupStatus
    scores: np.ndarray
    prior_sd: float


def group_status(
    widths: np.ndarray,
    n_comparisons: float,
    max_gain: float,
    target_width: float | None = None,
    min_gain: float | None = None,
    prior_sd: float = INITIAL_PRIOR_SD,
) -> GroupStatus:
    """The stopping rule of one group (see :class:`GroupStatus`) from its interval widths."""
    width = float(np.median(widths))
    further = np.nan
    reasons = []
    if target_width is not None:
        if width <= target_width:
            further = 0.0
            reasons.append(f"median 95% interval width {width:.3g} <= {target_width:g} JOD")
        elif n_comparisons > 0:
            further = float(np.ceil(n_comparisons * ((width / target_width) ** 2 - 1.0)))
    if min_gain is not None and max_gain < min_gain:
        reasons.append(f"best expected gain {max_gain:.3g} < {min_gain:g} nats")
    return GroupStatus(
        n_conditions=widths.size,
        n_comparisons=n_comparisons,
        interval_width=width,
        max_gain=float(max_gain),
        target_width=target_width,
        min_gain=min_gain,
        further_judgments=further,
        done=bool(reasons),
        reason="; ".join(reasons),
        prior_sd=prior_sd,
    )


def plan_batch(
    counts: np.ndarray,
    n_pairs: int | None = None,
    *,
    method: str = "eig",
    rng: np.random.Generator | None = None,
    prior: str = SELECTION_PRIOR,
    prior_sd: float | None = None,
    target_width: float | None = None,
    min_gain: float | None = None,
    q0: np.ndarray | None = None,
    start_sd: float = INITIAL_PRIOR_SD,
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
    target: AlignmentTarget | None = None,
    pending: np.ndarray | None = None,
) -> Batch:
    """The next batch of one group from its count matrix (no names, no validation).

    ``n_pairs`` defaults to N - 1 (one spanning tree). A group that meets its stopping rule
    gets no pairs. ``q0``, ``start_sd``: warm starts (the previous batch's ``scores`` and
    ``prior_sd``); ``prior_sd``: fix the weak prior's scale instead of fitting it.
    ``pending``: (k, 2) pairs handed out but not answered yet; their expected information
    is counted before choosing, so that a batch planned while answers are on their way does
    not chase the same uncertainty twice.
    ``candidates``: the pairs (i < j) allowed (default: all); ``target``: what the gains and
    interval widths measure (default: all scores).
    """
    n = counts.shape[0]
    rng = rng if rng is not None else np.random.default_rng(0)
    first, second = candidates if candidates is not None else np.triu_indices(n, k=1)
    n_pairs = _check_batch_size(n, n_pairs, n_candidates=first.size)
    answered = laplace_posterior(counts, prior=prior, prior_sd=prior_sd, q0=q0, start_sd=start_sd)
    posterior = answered
    if pending is not None and len(pending):
        pending = np.asarray(pending, dtype=np.intp)
        posterior = answered.with_comparisons(pending[:, 0], pending[:, 1])
    all_gains = candidate_gains(posterior, first, second, target)
    status = group_status(
        answered.interval_widths(target),
        answered.n_comparisons,
        float(all_gains.max()),
        target_width,
        min_gain,
        answered.prior_sd,
    )
    next_start = (answered.mean, answered.fitted_prior_sd())
    if status.done:
        return Batch(np.zeros((0, 2), dtype=np.intp), np.zeros(0), status, *next_start)
    if method == "eig":
        index, gains = eig_pairs(posterior, n_pairs, rng, (first, second), target, all_gains)
    elif method == "random":
        index = random_pairs(first.size, n_pairs, rng)
        gains = all_gains[index]
    else:
        compared = (counts + counts.T)[first, second]
        index = round_robin_pairs(compared, n_pairs, rng)
        gains = all_gains[index]
    return Batch(_random_sides(first[index], second[index], rng), gains, status, *next_start)


def _check_batch_size(
    n: int, n_pairs: int | None, label: str = "", n_candidates: int | None = None
) -> int:
    """``n_pairs``, or N - 1 for None, checked against the distinct candidate pairs
    (default: all N (N - 1) / 2)."""
    if n < 2:
        raise ValueError("at least two conditions are needed to form a pair")
    n_candidates = n * (n - 1) // 2 if n_candidates is None else n_candidates
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
    prior: str = SELECTION_PRIOR,
    ties: str = "drop",
    prior_sd: float | None = None,
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
    prior : {"none", "gaussian"}
        The likelihood alone (default, see :data:`SELECTION_PRIOR`) or with pwcmp's
        distance prior, as :func:`scaling.scale` uses it.
    ties : {"drop", "split"}
        Tie policy, as in :func:`scaling.scale`.
    prior_sd : float, optional
        Scale (JOD) of the weak prior on every score that the selection's posterior adds;
        default: fitted to each group by EM (see :data:`INITIAL_PRIOR_SD`).

    Returns
    -------
    DataFrame
        Group keys, then ``condition_A, condition_B, expected_gain`` (nats, best first
        within each spanning tree). ``attrs["jodkit"]["status"]`` lists per group:
        ``n_conditions, n_comparisons, interval_width, max_gain, further_judgments, done,
        reason`` (see :class:`GroupStatus`).
    """
    _check_options(method, prior, ties, target_width, min_gain, prior_sd)
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


def _check_options(
    method: str,
    prior: str,
    ties: str,
    target_width: float | None,
    min_gain: float | None,
    prior_sd: float | None,
) -> None:
    """Refuse bad options before any work, naming the option."""
    ScaleConfig(prior=prior, ties=ties)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    for name, value in (("target_width", target_width), ("min_gain", min_gain),
                        ("prior_sd", prior_sd)):  # fmt: skip
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
    prior_sd: float | None,
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
        "selection_prior_sd": "fitted by EM" if prior_sd is None else prior_sd,
        "status": status,
    }


# --------------------------------------------------------------------------- cross-content
def alignment_target(scene_codes: np.ndarray, scene_scores: np.ndarray) -> AlignmentTarget:
    """What cross-content comparisons should pin down: per scene j, the least-squares line
    y = a_j x + b_j through its images' cross-content scores y (x: their per-scene scores,
    as in the paper's alignment). ``weights`` maps y to all (a_j, b_j); ``hat`` maps y to
    the fitted values a_j x + b_j."""
    n = scene_codes.size
    weights = np.zeros((2 * (scene_codes.max() + 1), n))
    hat = np.zeros((n, n))
    for scene in range(scene_codes.max() + 1):
        members = np.flatnonzero(scene_codes == scene)
        design = np.column_stack([scene_scores[members], np.ones(members.size)])
        coefficients = np.linalg.pinv(design)
        weights[2 * scene : 2 * scene + 2, members] = coefficients
        hat[np.ix_(members, members)] = design @ coefficients
    return AlignmentTarget(weights, hat)


def select_cross_pairs(
    cross_trials: pd.DataFrame | str | Path | None,
    images: pd.DataFrame,
    n_pairs: int | None = None,
    *,
    method: str = "eig",
    target_width: float | None = None,
    min_gain: float | None = None,
    seed: int = 0,
    prior: str = SELECTION_PRIOR,
    ties: str = "drop",
    prior_sd: float | None = None,
) -> pd.DataFrame:
    """The next cross-content pairs: those that pin each scene's alignment line best.

    The unified scale maps each scene onto the cross-content scale by a line
    y = a_j x + b_j fitted through the scene's cross-content images (METHODS.md section 3).
    The gain of comparing image i of one scene with image k of another is the expected
    information about all (a_j, b_j), under the Laplace posterior of the cross-content
    scores y (:func:`expected_gain` with a target): images at the ends of a scene's range,
    and pairs whose outcome is still uncertain, pin the lines most.

    Parameters
    ----------
    cross_trials : DataFrame, path or None
        Cross-content trials so far (``scene_A``, ``scene_B``, ``condition_A``,
        ``condition_B`` ...; ``scaling.formats``); None or empty for the first batch.
    images : DataFrame
        The images that may enter the cross-content task, with their per-scene scores:
        ``scene, condition, jod`` (e.g. rows of a per-scene scale table chosen by
        :func:`alignment.selection.select_cross_images`), and ``attribute`` to plan each
        attribute on its own. At least two scenes, two images each.
    n_pairs : int, optional
        Pairs per attribute; default: one spanning tree of the images using cross-scene
        pairs only.
    method, target_width, min_gain, seed, prior, ties, prior_sd
        As in :func:`select_pairs`; widths are those of the images' fitted line values.

    Returns
    -------
    DataFrame
        [``attribute``], ``scene_A, condition_A, scene_B, condition_B, expected_gain``;
        the status per attribute in ``attrs["jodkit"]["status"]``.
    """
    _check_options(method, prior, ties, target_width, min_gain, prior_sd)
    table = _checked_images(images)
    keys = ["attribute"] if "attribute" in table.columns else []
    trials = _cross_trials(cross_trials, keys)
    groups = table.groupby(keys, sort=True) if keys else [((), table)]
    seeds = np.random.SeedSequence(seed).spawn(len(groups) if keys else 1)
    tables, status = [], []
    for (key, rows), seq in zip(groups, seeds, strict=True):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key, strict=True)) or "images"
        rows = rows.reset_index(drop=True)
        scene_codes = pd.factorize(rows["scene"], sort=True)[0]
        if scene_codes.max() < 1:
            raise InputError(f"{label}: cross-content pairs need images of at least two scenes")
        names = image_keys(rows["scene"], rows["condition"]).tolist()
        mine = trials
        for k, value in zip(keys, key, strict=True):
            mine = mine[mine[k] == value]
        _check_known(mine, names, "cross-content trials")
        first, second = np.triu_indices(len(names), k=1)
        across = scene_codes[first] != scene_codes[second]
        batch = plan_batch(
            counts_from_trials(mine, names, ties),
            _check_batch_size(len(names), n_pairs, label, int(across.sum())),
            method=method,
            rng=np.random.default_rng(seq),
            prior=prior,
            prior_sd=prior_sd,
            target_width=target_width,
            min_gain=min_gain,
            candidates=(first[across], second[across]),
            target=alignment_target(scene_codes, rows["jod"].to_numpy(float)),
        )
        a, b = batch.pairs[:, 0], batch.pairs[:, 1]
        out = pd.DataFrame(
            {
                "scene_A": rows["scene"].to_numpy()[a],
                "condition_A": rows["condition"].to_numpy()[a],
                "scene_B": rows["scene"].to_numpy()[b],
                "condition_B": rows["condition"].to_numpy()[b],
                "expected_gain": batch.gains,
            }
        )
        for k, value in zip(keys, key, strict=True):
            out.insert(0, k, value)
        tables.append(out)
        status.append({**dict(zip(keys, key, strict=True)), **asdict(batch.status)})
    result = pd.concat(tables, ignore_index=True)[[*keys, *CROSS_PAIR_COLUMNS]]
    result.attrs[METADATA_KEY] = _metadata(method, keys, seed, prior, ties, prior_sd, status)
    result.attrs[METADATA_KEY]["target"] = "per-scene alignment lines (a_j, b_j)"
    return result


IMAGES = "images"


def _checked_images(images: pd.DataFrame) -> pd.DataFrame:
    """The candidate images: columns present, scores finite, no image twice, scene names
    usable in image keys, at least two images per scene."""
    for column in ("scene", "condition", "jod"):
        if column not in images.columns:
            raise InputError(f"missing column {column!r}", source=IMAGES, field=column)
    table = images.reset_index(drop=True).copy()
    for column in ("scene", "condition", *(["attribute"] if "attribute" in table else [])):
        table[column] = table[column].astype(str)
    jod = pd.to_numeric(table["jod"], errors="coerce").to_numpy(float)
    if not np.all(np.isfinite(jod)):
        row = int(np.flatnonzero(~np.isfinite(jod))[0]) + 1
        raise InputError("score is not a finite number", source=IMAGES, row=row, field="jod")
    table["jod"] = jod
    for row, scene in enumerate(table["scene"], start=1):
        problem = scene_name_problem(scene)
        if problem:
            raise InputError(problem, source=IMAGES, row=row, field="scene")
    keys = [c for c in ("attribute", "scene", "condition") if c in table.columns]
    twice = table.duplicated(keys).to_numpy()
    if twice.any():
        row = int(np.flatnonzero(twice)[0]) + 1
        raise InputError("image listed twice", source=IMAGES, row=row, field="condition")
    sizes = table.groupby(keys[:-1]).size()
    if (sizes < 2).any():
        raise InputError(
            f"scene {sizes.index[sizes < 2][0]!r} has one image: a line needs two",
            source=IMAGES,
            field="scene",
        )
    return table


def _cross_trials(cross_trials: pd.DataFrame | str | Path | None, keys: list[str]) -> pd.DataFrame:
    """Validated cross-content trials (conditions as image keys), training trials left out;
    an empty table when there are none yet."""
    empty = pd.DataFrame(columns=["condition_A", "condition_B", "is_A_selected", *keys])
    if cross_trials is None:
        return empty
    source = "cross-content trials" if isinstance(cross_trials, pd.DataFrame) else str(cross_trials)
    raw = cross_trials if isinstance(cross_trials, pd.DataFrame) else read_any_table(cross_trials)
    if raw.empty:
        return empty
    frame = validate_trials(raw, by=keys, source=source)
    if not {"scene_A", "scene_B"} <= set(frame.columns):
        raise InputError(
            "cross-content trials need 'scene_A' and 'scene_B'", source=source, field="scene_A"
        )
    if "is_training" in frame.columns:
        frame = frame[frame["is_training"] == 0]
    return frame
