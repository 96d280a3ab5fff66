"""Solvers for the Thurstone Case V objective of a single connected comparison graph.

``solve_exact`` is the default: it reaches the optimum of pwcmp's objective to solver
precision with a trust-region Newton method on the exact Hessian
(:meth:`scaling.likelihood.ThurstoneObjective.value_grad_hess`). Without a prior the
objective is convex and Newton converges in a handful of iterations. With pwcmp's Gaussian
prior (not convex) a cold start begins at the convex optimum of the unanimity-shifted
counts; the trust region keeps steps sensible where the prior has negative curvature.
Conditions that never lost (or never won) are first placed at the minimum along their own
score (:func:`place_one_sided`), and long accepted steps are extrapolated while the
objective keeps falling: both shorten Newton's walk along the Gaussian tails where such
conditions sit.

``solve_cvxpy`` covers the convex cases with cvxpy and adds what pwcmp cannot express:
linear constraints such as known orderings ("more noise is never better") or fixed anchor
scores. cvxpy's ``log_normcdf`` is an approximation; the solution is polished on the exact
objective with the constraints that cvxpy found active held as equalities, so both solvers
agree to solver precision where both apply (docs/scaling.md gives the measured error before
and after polishing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, null_space, solve_triangular
from scipy.optimize import minimize

from scaling.likelihood import MEAN0_WEIGHT, ThurstoneObjective, continuity_corrected
from scaling.thurstone import SIGMA

STEP_TOL = 1e-9
"""Newton stops when no score moves by more than this many JOD."""

BOOTSTRAP_STEP_TOL = 1e-3
"""Newton's stopping rule for bootstrap re-solves (``scaling.api._solve_for_bootstrap``).

A re-solve stops when its step, or the next step that quadratic convergence predicts, is
below 1e-3 JOD. ``python benchmarks/scaling_accuracy.py --studies tolerance`` compares
these re-solves (also started from a chord step) with converged ones from the full-data
scores on two scenes of 200 conditions x 500 observer resamples: standard deviations
within 1.1e-4 JOD, CI bounds within 7.1e-4 JOD on one scene and 1.5e-2 JOD on the other,
where one resample in 500 ends in a different local optimum of pwcmp's non-convex
objective (a condition that never lost settles 2 JOD apart). Both stay below the
Monte-Carlo error of a 500-sample percentile (several hundredths of a JOD). A score held by
the prior alone (outside the core) sits on a nearly flat profile, where the tolerance
bounds Newton's step rather than the distance to the optimum: there re-solves were
measured up to 0.03 JOD from converged ones (``tests/scaling/test_solvers.py``).
"""


@dataclass(frozen=True)
class Ordering:
    """Constraint: condition ``better`` scores at least ``margin`` JOD above ``worse``."""

    better: int
    worse: int
    margin: float = 0.0


@dataclass(frozen=True)
class FixedScore:
    """Constraint: condition ``index`` has exactly ``value`` JOD."""

    index: int
    value: float


Constraint = Ordering | FixedScore


def restrict_constraints(
    constraints: Sequence[Constraint], members: np.ndarray
) -> list[Constraint]:
    """The constraints among ``members`` (a component, a core), restated in their own
    indices; those reaching outside drop."""
    local_index = {int(m): k for k, m in enumerate(members)}
    local: list[Constraint] = []
    for c in constraints:
        if isinstance(c, Ordering):
            if c.better in local_index and c.worse in local_index:
                local.append(Ordering(local_index[c.better], local_index[c.worse], c.margin))
        elif c.index in local_index:
            local.append(FixedScore(local_index[c.index], c.value))
    return local


@dataclass(frozen=True)
class ChordStart:
    """What re-solves of problems near a solved one (bootstrap resamples) reuse from its
    solution q0 (:func:`chord_start`).

    ``factor`` is the Cholesky factor of its Hessian at q0 over the free scores; ``pairs``
    the flat indices of its compared pairs (:attr:`ThurstoneObjective.pair_index`) and
    ``normal`` its normal-distribution terms at q0 on them. A resample compares a subset of
    those pairs at the same score differences, so its gradient at q0 needs none of its own.
    """

    factor: tuple[np.ndarray, bool]
    pairs: np.ndarray
    normal: tuple[np.ndarray, ...]

    def normal_on(self, objective: ThurstoneObjective) -> tuple[np.ndarray, ...] | None:
        """The normal terms at q0 on ``objective``'s pairs; None if it has others."""
        where = np.searchsorted(self.pairs, objective.pair_index).clip(max=self.pairs.size - 1)
        if not np.array_equal(self.pairs[where], objective.pair_index):
            return None
        return tuple(term[where] for term in self.normal)


@dataclass
class Solution:
    """Scores of one connected comparison graph and how the solver got there."""

    q: np.ndarray
    objective: float
    gradient_norm: float
    iterations: int
    converged: bool
    solver: str


def _free_mask(n: int, anchor: str, held: np.ndarray | None = None) -> np.ndarray:
    """Scores the solver moves: all but those ``held`` and, with ``fix0``, the first."""
    mask = np.ones(n, dtype=bool) if held is None else ~np.asarray(held, dtype=bool)
    if anchor == "fix0":
        mask[0] = False
    return mask


def _newton(
    objective: ThurstoneObjective,
    start: np.ndarray,
    free: np.ndarray,
    max_iter: int = 200,
    step_tol: float = STEP_TOL,
    exact_hessian: bool = True,
    confirm_final: bool = True,
) -> tuple[np.ndarray, int, bool, tuple[float, np.ndarray | None]]:
    """Trust-region Newton method with the exact Hessian (Moré-Sorensen steps).

    Without a prior the objective is convex and, on a strongly connected win graph, the
    Hessian positive definite (with mean0, fix0 or held scores), and this is plain Newton.
    pwcmp's prior is not convex, and along a condition that never lost (or never won) the
    objective is nearly flat: a line search on
    the Newton (or Levenberg-shifted) direction there overshoots by tens of JOD. The trust
    region bounds each step instead and grows when the quadratic model proves reliable.
    Stops when no score moved, or by quadratic convergence would move at the next step,
    by more than ``step_tol`` JOD. Returns the scores, the
    iterations, whether the stopping rule was met and the objective's value and gradient
    at the returned scores. Only the ``free`` scores move.
    ``confirm_final=False`` takes a Newton step that quadratic convergence marks as the
    last without evaluating the objective after it (bootstrap re-solves: it saves one
    gradient evaluation); the value returned is then NaN and the gradient None.
    """
    q = start.copy()
    value, grad, hess = _derivatives(objective, q, exact_hessian)
    if not free.any():  # every score held: nothing to solve
        return q, 0, True, (value, grad)
    radius = _INITIAL_RADIUS * np.sqrt(free.sum())
    all_free = bool(free.all())
    previous = 0.0  # largest move of the last accepted Newton (interior) step; 0: none
    for iteration in range(1, max_iter + 1):
        g = grad if all_free else grad[free]
        h = hess if all_free else hess[np.ix_(free, free)]
        step, interior = _trust_region_step(h, g, radius)
        predicted = float(np.dot(g, step) + 0.5 * np.dot(step, h @ step))
        length = float(np.linalg.norm(step))
        moved = float(np.abs(step).max())
        candidate = q + step if all_free else q.copy()
        if not all_free:
            candidate[free] += step
        # The step is the last when it is below the tolerance, or when Newton's quadratic
        # convergence (next move ~ moved (moved / previous)^2) says the next one would be:
        # that saves the Hessian and factorisation only made to confirm convergence.
        last = moved < step_tol
        final = last or (interior and moved**3 < step_tol * previous**2)
        if final and interior and not confirm_final:
            return candidate, iteration, True, (np.nan, None)
        # A Newton (interior) step is nearly always accepted: evaluate the derivatives at
        # once and reuse them. Other steps need the value only; the final one its gradient
        # too, which the caller reports.
        if interior and not final:
            ahead = _derivatives(objective, candidate, exact_hessian)
            new_value = ahead[0]
        elif final:
            new_value, new_grad = objective.value_and_grad(candidate)
            ahead = None
        else:
            ahead, new_value = None, objective.value(candidate)
        # No decrease predicted: the gradient is at rounding level.
        ratio = (new_value - value) / predicted if predicted < 0.0 else 0.0
        # Near the optimum the predicted decrease drops below the rounding error of the
        # objective; an interior (pure Newton) step is then trusted without the check.
        negligible = interior and -predicted < 1e-12 * max(1.0, abs(value))
        if ratio > 1e-4 or negligible:
            # Only steps the trust region cut short are tried longer: measured on cold
            # solves (N = 25-500) every doubling that paid came after such a step, and on
            # warm bootstrap re-solves 1 in 49 after Newton steps.
            if ratio > 0.5 and not interior and moved > _EXTRAPOLATE_ABOVE:
                candidate, new_value, factor = _extrapolate(objective, q, candidate, new_value)
                if factor > 1.0:
                    radius = max(radius, factor * length)
                    ahead = None
            q = candidate
            if final:
                return q, iteration, True, (new_value, new_grad)
            value, grad, hess = ahead or _derivatives(objective, q, exact_hessian)
            previous = moved if interior else 0.0
        elif last:
            return q, iteration, True, (value, grad)
        if ratio < 0.25 and not negligible:
            radius = 0.25 * length
        elif ratio > 0.75 and not interior:
            radius *= 2.0
    return q, max_iter, False, (value, grad)


_EXTRAPOLATE_ABOVE = 0.05
"""Steps that move a score by more than this (JOD) are tried longer (see _extrapolate)."""


def _extrapolate(
    objective: ThurstoneObjective, q: np.ndarray, candidate: np.ndarray, value: float
) -> tuple[np.ndarray, float, float]:
    """Double an accepted step while the objective keeps falling.

    Along a condition that (nearly) never lost, the objective is a Gaussian tail on which
    each Newton step covers about the same distance however far the optimum is; doubling
    costs one objective value (no derivatives) per try and stops at the first rise.
    Returns the best point, its value and the factor applied to the step.
    """
    step = candidate - q
    factor = 1.0
    while factor < 64.0:
        trial = q + 2.0 * factor * step
        trial_value = objective.value(trial)
        if not trial_value < value:
            break
        candidate, value, factor = trial, trial_value, 2.0 * factor
    return candidate, value, factor


_INITIAL_RADIUS = 0.5
"""Initial trust radius, in JOD per free score (root mean square)."""


def _trust_region_step(
    hess: np.ndarray, grad: np.ndarray, radius: float
) -> tuple[np.ndarray, bool]:
    """Minimiser of the quadratic model within ``radius`` (2-norm); True when interior.

    The Newton step when the Hessian is positive definite and the step fits; otherwise
    -(H + lam I)^-1 g with lam >= 0 chosen (Moré and Sorensen's iteration, to 20%) so
    that the step has length ``radius``.
    """
    factor = _cholesky(hess)
    if factor is not None:
        step = -cho_solve(factor, grad, check_finite=False)
        if np.linalg.norm(step) <= radius:
            return step, True
    scale = max(1.0, float(np.abs(np.diag(hess)).max()))
    lam = 0.0 if factor is not None else 1e-8 * scale
    identity = np.eye(grad.size)
    lower_bound = 0.0  # largest lam known to leave H + lam I indefinite
    best = None
    for _ in range(50):
        factor = _cholesky(hess + lam * identity) if lam > 0 else factor
        if factor is None:
            lower_bound = lam
            lam = max(4.0 * lam, 1e-8 * scale)
            continue
        step = -cho_solve(factor, grad, check_finite=False)
        length = float(np.linalg.norm(step))
        best = step
        if 0.8 * radius <= length <= 1.2 * radius or (length < radius and lam == 0.0):
            break
        if length == 0.0:  # a zero gradient: no step to scale
            break
        w = solve_triangular(factor[0], step, trans="T", lower=factor[1], check_finite=False)
        new_lam = lam + (length / float(np.linalg.norm(w))) ** 2 * (length - radius) / radius
        lam = max(new_lam, 0.5 * (lower_bound + lam)) if new_lam <= lower_bound else new_lam
    if best is None:  # pragma: no cover - H + lam I never became definite
        best = -grad * (radius / max(float(np.linalg.norm(grad)), 1e-300))
    length = float(np.linalg.norm(best))
    if length > radius:
        best = best * (radius / length)
    return best, False


def _cholesky(matrix: np.ndarray) -> tuple[np.ndarray, bool] | None:
    try:
        return cho_factor(matrix, check_finite=False)
    except np.linalg.LinAlgError:
        return None


def _derivatives(
    objective: ThurstoneObjective, q: np.ndarray, exact_hessian: bool
) -> tuple[float, np.ndarray, np.ndarray]:
    if exact_hessian:
        return objective.value_grad_hess(q)
    value, grad = objective.value_and_grad(q)
    return value, grad, objective.likelihood_hessian(q)


PLACEMENT_AT_MOST = 0.0
"""Conditions that lost (or won) at most this often are placed before Newton starts."""

PLACEMENT_SWEEPS = 1
"""Gauss-Seidel sweeps over them. Measured at N = 200: placing conditions that lost once
too, or a second sweep, saves about one Newton iteration and costs more than it saves."""

PLACEMENT_REACH = 20.0
"""How far (JOD) beyond its neighbours a one-sided condition is searched for."""


def place_one_sided(
    objective: ThurstoneObjective,
    q: np.ndarray,
    conditions: np.ndarray | None = None,
    sweeps: int | None = None,
    held: np.ndarray | None = None,
) -> np.ndarray:
    """Move each one-sided condition to the minimum of the objective along its own score.

    A condition that never lost (or never won) sits where the weak prior balances a
    likelihood that is nearly flat: often 5-15 JOD beyond its neighbours, and a
    Newton step covers about 1 JOD of such a Gaussian tail. Searching the 1-D profile
    (:meth:`~scaling.likelihood.ThurstoneObjective.coordinate_profile`) on a 2 JOD grid,
    then on a 0.25 JOD grid around its best point, refined by a parabola, puts it within a
    few hundredths of a JOD of its optimum given the others, in one vectorised pass per
    grid, and Newton starts in its quadratic basin. (A third, 0.03 JOD grid instead of the
    parabola saved 0.03 Newton evaluations per bootstrap re-solve and cost a profile pass
    per condition.) Conditions are placed one after the other (Gauss-Seidel). ``held``
    conditions and, with ``fix0``, condition 0 stay put.
    """
    q = q.copy()
    todo = objective.one_sided(PLACEMENT_AT_MOST) if conditions is None else conditions
    todo = todo[_free_mask(objective.n, objective.anchor, held)[todo]]
    if todo.size == 0:
        return q
    counts = objective.counts
    for _ in range(PLACEMENT_SWEEPS if sweeps is None else sweeps):
        context = objective.profile_context(q) if objective.prior == "gaussian" else None
        for c in todo:
            won, lost = counts[c], counts[:, c]
            neighbours = q[np.flatnonzero(won + lost)]
            if lost.sum() <= won.sum():  # search upwards: it (nearly) never lost
                low = min(q[c], neighbours.min()) - 1.0
                high = max(q[c], neighbours.max()) + PLACEMENT_REACH
            else:
                low = min(q[c], neighbours.min()) - PLACEMENT_REACH
                high = max(q[c], neighbours.max()) + 1.0
            profile = objective.coordinate_profile(q, c, context)
            coarse = np.append(np.arange(low, high + 1.0, 2.0), q[c])
            best = float(coarse[np.argmin(profile(coarse))])
            fine = np.arange(best - 2.0, best + 2.125, 0.25)
            q[c] = _parabola_minimum(fine, profile(fine))
    return q


def _parabola_minimum(xs: np.ndarray, values: np.ndarray) -> float:
    """Minimum of an evenly spaced grid, refined by the parabola through it and its two
    neighbours (within half a step of the grid point; the grid point itself at an edge)."""
    i = int(np.argmin(values))
    if i == 0 or i == xs.size - 1:
        return float(xs[i])
    left, middle, right = values[i - 1 : i + 2]
    curvature = left - 2.0 * middle + right
    if not curvature > 0.0:
        return float(xs[i])
    return float(xs[i] - 0.5 * (xs[1] - xs[0]) * (right - left) / curvature)


def _whitened_lbfgs(
    objective: ThurstoneObjective, start: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, int]:
    """L-BFGS on the full (non-convex) objective in coordinates whitened by the likelihood Hessian.

    The likelihood dominates the curvature, so with z = L^T (q - start), H = L L^T, the
    problem is close to isotropic and L-BFGS needs a few iterations instead of hundreds.
    """
    hess = objective.likelihood_hessian(start)[np.ix_(free, free)]
    lower = np.linalg.cholesky(hess + 1e-8 * np.eye(hess.shape[0]))
    full = start.copy()

    def to_scores(z: np.ndarray) -> np.ndarray:
        full[free] = start[free] + solve_triangular(lower, z, trans="T", lower=True)
        return full

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective.value_and_grad(to_scores(z))
        return value, solve_triangular(lower, grad[free], lower=True)

    result = minimize(
        fun,
        np.zeros(int(free.sum())),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "maxcor": 20, "ftol": 1e-15, "gtol": 1e-10},
    )
    return to_scores(result.x).copy(), int(result.nit)


def solve_exact(
    counts: np.ndarray,
    prior: str = "gaussian",
    anchor: str = "mean0",
    q0: np.ndarray | None = None,
    place: bool = True,
    step_tol: float = STEP_TOL,
    chord: ChordStart | None = None,
    confirm_final: bool = True,
    held: np.ndarray | None = None,
) -> Solution:
    """A minimum of pwcmp's objective for one connected comparison graph, by Newton.

    This is the local solver: where the objective has no finite optimum for some
    conditions it follows them as far as the floating-point objective still falls (tens of
    JOD). :func:`scaling.optimum.estimate_component` decides which minima are finite and
    places the rest.

    Parameters
    ----------
    counts : (N, N) array
        D[i, j] = times i was chosen over j. The graph of D + D^T must be connected (see
        :mod:`scaling.graph`); every condition must have been compared at least once.
    prior, anchor
        pwcmp's options (see :class:`scaling.likelihood.ThurstoneObjective`).
    q0 : (N,) array, optional
        Warm start (e.g. the full-data solution when bootstrapping). Defaults to 0.
    place : bool
        Before Newton, move each condition that never lost (or never won) to the minimum
        of the objective along its own score (:func:`place_one_sided`). The optimum is the
        same; Newton needs fewer iterations, above all on warm bootstrap re-solves.
    step_tol : float
        Newton stops when no score moves, or would move at its next step, by more than
        this (JOD); see :data:`BOOTSTRAP_STEP_TOL` for what looser values cost in accuracy.
    chord : ChordStart, optional
        What a nearby problem solved at ``q0`` leaves (:func:`chord_start`), e.g. the full
        data's when ``counts`` is a bootstrap resample: Newton then starts from the chord
        step q0 - H^-1 g(q0) on this problem, which costs a gradient (without its normal
        terms, when the pairs are among the nearby problem's) instead of a Hessian and
        lands about where Newton's first step would.
    confirm_final : bool
        False skips evaluating the objective after Newton's last step (see ``_newton``;
        bootstrap re-solves): ``objective`` and ``gradient_norm`` are then NaN.
    held : (N,) bool array, optional
        Scores held where ``q0`` puts them (``scaling.optimum`` holds conditions it sent
        to infinity); needs ``q0``.

    Returns
    -------
    Solution
        ``q`` holds the N scores; with ``fix0``, q[0] = 0.
    """
    n = counts.shape[0]
    if n == 1:
        return Solution(np.zeros(1), 0.0, 0.0, 0, True, "exact")
    objective = ThurstoneObjective(counts, prior=prior, anchor=anchor)
    free = _free_mask(n, anchor, held)
    start = np.zeros(n) if q0 is None else np.asarray(q0, dtype=float).copy()
    if anchor == "fix0":
        start -= start[0]
    if q0 is not None and chord is not None and held is None:
        if chord.factor[0].shape != (free.sum(), free.sum()):
            raise ValueError(
                f"the chord start's factor is for {chord.factor[0].shape[0]} free scores; "
                f"this problem has {free.sum()} (chord_start of the same conditions and anchor)"
            )
        grad = objective.value_and_grad(start, chord.normal_on(objective))[1]
        start[free] -= cho_solve(chord.factor, grad[free], check_finite=False)

    iterations = 0
    if prior != "none" and q0 is None:
        # Cold start: the convex problem on continuity-corrected counts (half a vote each
        # way on unanimous pairs), whose optimum is finite everywhere and keeps every
        # pair's direction. It only needs to land in the right basin: a loose tolerance.
        convex = ThurstoneObjective(continuity_corrected(counts), prior="none", anchor=anchor)
        start, iterations, _, _ = _newton(convex, start, free, step_tol=1e-3, exact_hessian=False)
    if place:
        start = place_one_sided(objective, start, held=held)
    q, newton_iterations, done, (value, grad) = _newton(
        objective, start, free, step_tol=step_tol, confirm_final=confirm_final
    )
    iterations += newton_iterations
    if grad is None:
        return Solution(q, value, np.nan, iterations, done, "exact")
    if not done:
        # Safety net (not reached on any data set we know of): whitened L-BFGS from where
        # Newton stopped.
        q, lbfgs_iterations = _whitened_lbfgs(objective, q, free)
        iterations += lbfgs_iterations
        value, grad = objective.value_and_grad(q)
    gnorm = float(np.abs(grad[free]).max(initial=0.0))
    # Gradients scale with the number of comparisons; 1e-6 per comparison is far below any
    # score change worth reporting.
    tolerance = 1e-6 * max(1.0, float(objective.counts.sum()))
    return Solution(q, value, gnorm, iterations, gnorm < tolerance, "exact")


def chord_start(
    counts: np.ndarray, q: np.ndarray, prior: str = "gaussian", anchor: str = "mean0"
) -> ChordStart | None:
    """What re-solves of problems near ``counts`` (bootstrap resamples) reuse from its
    solution ``q`` (:class:`ChordStart`). None where the Hessian is not positive definite
    or ``q`` is not finite: the re-solves then start from ``q`` itself."""
    if not np.all(np.isfinite(q)):
        return None
    objective = ThurstoneObjective(counts, prior=prior, anchor=anchor)
    free = _free_mask(counts.shape[0], anchor)
    factor = _cholesky(objective.hessian(q)[np.ix_(free, free)])
    if factor is None:
        return None
    return ChordStart(factor, objective.pair_index, objective.normal_terms(q))


def solve_cvxpy(
    counts: np.ndarray,
    anchor: str = "mean0",
    constraints: Sequence[Constraint] = (),
    polish: bool = True,
    solver: str | None = None,
) -> Solution:
    """Maximum-likelihood scores (no prior) with linear constraints, through cvxpy.

    Parameters
    ----------
    counts : (N, N) array
        As for :func:`solve_exact`; the comparison graph must be connected.
    anchor : {"mean0", "fix0"}
        ``fix0`` becomes the constraint q[0] = 0. With a ``FixedScore`` constraint the
        anchor's regularisation still applies (it no longer moves the scores).
    constraints : sequence of Ordering or FixedScore
        Linear constraints pwcmp cannot express.
    polish : bool
        Re-solve the exact objective with the constraints cvxpy found active held as
        equalities, removing the error of cvxpy's ``log_normcdf`` approximation.
    solver : str, optional
        cvxpy solver name (default: cvxpy's choice, usually CLARABEL).
    """
    import cvxpy as cp

    n = counts.shape[0]
    objective = ThurstoneObjective(counts, prior="none", anchor=anchor)
    pos = objective.positions
    upper = pos.rows < pos.cols  # each unordered pair once; the objective counts it twice
    i, j = pos.rows[upper], pos.cols[upper]
    wins, losses = pos.wins[upper], pos.losses[upper]

    q = cp.Variable(n)
    diff = (q[i] - q[j]) / SIGMA
    nll = -2.0 * (wins @ cp.log_normcdf(diff) + losses @ cp.log_normcdf(-diff))
    cost = nll
    cons = []
    if anchor == "mean0":
        cost = cost + MEAN0_WEIGHT * cp.square(cp.sum(q) / n)
    else:
        cons.append(q[0] == 0)
    for c in constraints:
        if isinstance(c, Ordering):
            cons.append(q[c.better] - q[c.worse] >= c.margin)
        else:
            cons.append(q[c.index] == c.value)
    problem = cp.Problem(cp.Minimize(cost), cons)
    problem.solve(solver=solver)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise RuntimeError(f"cvxpy could not solve the scaling problem: {problem.status}")
    q_cvx = np.asarray(q.value, dtype=float)
    if anchor == "fix0":
        q_cvx[0] = 0.0
    if not polish:
        value, grad = objective.value_and_grad(q_cvx)
        return Solution(q_cvx, value, float(np.abs(grad).max()), 0, True, "cvxpy")
    return _polish(objective, q_cvx, constraints)


def _polish(
    objective: ThurstoneObjective, q_start: np.ndarray, constraints: Sequence[Constraint]
) -> Solution:
    """Newton on the exact objective restricted to the active constraints' affine set."""
    n = objective.n
    rows, rhs = [], []
    if objective.anchor == "fix0":
        rows.append(np.eye(n)[0])
        rhs.append(0.0)
    for c in constraints:
        row = np.zeros(n)
        if isinstance(c, FixedScore):
            row[c.index] = 1.0
            rows.append(row)
            rhs.append(c.value)
        elif q_start[c.better] - q_start[c.worse] - c.margin < 1e-4:
            row[c.better], row[c.worse] = 1.0, -1.0
            rows.append(row)
            rhs.append(c.margin)
    if rows:
        a = np.array(rows)
        basis = null_space(a)
        offset = np.linalg.lstsq(a, np.array(rhs), rcond=None)[0]
    else:
        basis, offset = np.eye(n), np.zeros(n)
    z0 = basis.T @ (q_start - offset)

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective.value_and_grad(offset + basis @ z)
        return value, basis.T @ grad

    def hess(z: np.ndarray) -> np.ndarray:
        return basis.T @ objective.likelihood_hessian(offset + basis @ z) @ basis

    result = minimize(fun, z0, jac=True, hess=hess, method="trust-exact", options={"gtol": 1e-10})
    q = offset + basis @ result.x
    value, grad = objective.value_and_grad(q)
    return Solution(
        q, value, float(np.abs(basis.T @ grad).max()), int(result.nit), True, "cvxpy+polish"
    )
