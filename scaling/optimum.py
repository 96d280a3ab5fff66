"""The estimator of one connected comparison graph: pwcmp's optimum wherever it is finite,
an order-respecting placement where it is not.

pwcmp's objective (:mod:`scaling.likelihood`) is shift-invariant but for its anchor, and it
can keep falling only along the directions in which no comparison is lost: moving up a set
of conditions that beat every condition outside it that it met (an up-set of the win
graph's order, :class:`scaling.graph.WinOrder`), or moving down a down-set. Along such a
ray the objective tends to a limit, which every term reaches exactly in floating point
beyond about ``FAR`` JOD. So, after Newton (:func:`scaling.solvers.solve_exact`):

* without a prior, the likelihood only rises towards that limit: the optimum is finite
  exactly on the determined core (the largest strongly connected component; Ford, 1957),
  which is solved alone, and every other condition has its optimum at infinity;
* with pwcmp's Gaussian prior, conditions outside the core usually have a finite optimum
  (the prior penalises distances the data never showed), and Newton finds it. But the
  prior is flat where pairs were compared once (the (0, 1) and (1, 1) groups of pwcmp's
  unanimity shift add the same constant to every prior value whatever the scores), so it
  can also fail to hold a condition. Each such ray is tested: when the objective at its
  limit is not above the objective at Newton's point (by more than ``GAP_TOL``), the
  optimum lies at infinity along it; those conditions are sent there (``FAR`` JOD per
  ray) and the rest is solved again, until no ray falls.

Conditions whose optimum is at infinity are placed by :func:`scaling.placement.place`
(continuity-corrected likelihood, never below a condition they beat) with the finite
optima held, and their ``bound`` says which way their score is unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scaling.graph import WinOrder
from scaling.likelihood import PRIOR_FLOOR, ThurstoneObjective, arcsine_scores
from scaling.placement import place
from scaling.solvers import (
    STEP_TOL,
    ChordStart,
    FixedScore,
    Ordering,
    restrict_constraints,
    solve_cvxpy,
    solve_exact,
)

TWO_SIDED, LOWER, UPPER, UNBOUNDED = 0, 1, -1, 2
"""Bound codes: a finite optimum; an optimum at +inf (the placed score is a lower bound);
at -inf (an upper bound); unbounded either way (no core to refer to)."""

BOUND_NAMES = {TWO_SIDED: "two-sided", LOWER: "lower", UPPER: "upper", UNBOUNDED: "none"}
"""The scale table's ``bound`` column for each code."""

FAR = 200.0
"""JOD by which a ray is moved to reach its limit: every term there is exactly its limit
(Phi(-135) underflows to 0)."""

GAP_TOL = 1e-9
"""A ray whose limit is not above the objective at Newton's point by this much (relative,
at least 1e-9 absolute) has its optimum at infinity."""


@dataclass
class ComponentEstimate:
    """Scores of one connected comparison graph.

    ``bound`` holds the codes above per condition; ``core`` the determined core (the
    largest strongly connected component of the win graph); ``objective`` is pwcmp's
    objective at its optimum, or its infimum where some optima lie at infinity (NaN when
    the last Newton step was not confirmed).
    """

    q: np.ndarray
    bound: np.ndarray
    core: np.ndarray
    objective: float
    converged: bool


def estimate_component(
    counts: np.ndarray,
    prior: str = "gaussian",
    anchor: str = "mean0",
    *,
    solver: str = "exact",
    constraints: Sequence[Ordering | FixedScore] = (),
    q0: np.ndarray | None = None,
    step_tol: float = STEP_TOL,
    chord: ChordStart | None = None,
    confirm_final: bool = True,
    names: Sequence[str] | None = None,
) -> ComponentEstimate:
    """pwcmp's optimum where it is finite, placement elsewhere, anchored as asked.

    Parameters
    ----------
    counts : (N, N) array
        One connected comparison graph (every condition compared).
    prior, anchor : str
        pwcmp's options. With ``mean0`` the scores have mean 0 (pwcmp's optimum has, since
        the rest of its objective is shift-invariant); with ``fix0`` the first is 0.
    solver, constraints
        ``cvxpy`` with linear constraints (prior ``none``): the core is solved by cvxpy;
        orderings that reach outside it constrain the placement too.
    q0, step_tol, chord, confirm_final
        Warm start and Newton's options (:func:`scaling.solvers.solve_exact`).
    names : sequence of str, optional
        Condition names for messages.
    """
    order = WinOrder.from_counts(counts)
    core = order.strong == order.core
    args = (q0, step_tol, chord, confirm_final)
    if prior == "none" or solver == "cvxpy":
        q, bound, value, converged = _without_prior(
            counts, order, anchor, solver, constraints, *args, names
        )
    else:
        q, bound, value, converged = _with_prior(counts, order, anchor, *args)
        if order.core < 0 and (bound.any() or _flat(counts, q)):
            # No cycle of wins anywhere: the prior holds a strict order only when every
            # score has a finite, numerically determined optimum; otherwise the whole
            # component is placed, as without a prior.
            q, bound, value, converged = _without_prior(
                counts, order, anchor, solver, constraints, *args, names
            )
    fixed = [c for c in constraints if isinstance(c, FixedScore)]
    if not fixed:
        q = q - (q[0] if anchor == "fix0" else q.mean())
    return ComponentEstimate(q, bound, core, value, converged)


def _without_prior(
    counts: np.ndarray,
    order: WinOrder,
    anchor: str,
    solver: str,
    constraints: Sequence[Ordering | FixedScore],
    q0: np.ndarray | None,
    step_tol: float,
    chord: ChordStart | None,
    confirm_final: bool,
    names: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """The likelihood alone: its optimum on the core, every other condition placed."""
    n = counts.shape[0]
    core = order.strong == order.core
    q = np.zeros(n)
    value, converged = 0.0, True
    if core.any():
        members = np.flatnonzero(core)
        whole = members.size == n
        sub = counts if whole else counts[np.ix_(members, members)]
        local = restrict_constraints(constraints, members)
        if solver == "cvxpy":
            solution = solve_cvxpy(sub, anchor="mean0" if not whole else anchor, constraints=local)
        else:
            solution = solve_exact(
                sub,
                prior="none",
                anchor=anchor if whole else "mean0",
                q0=None if q0 is None else q0[members],
                step_tol=step_tol,
                chord=chord if whole else None,
                confirm_final=confirm_final,
            )
        q[members] = solution.q
        value, converged = solution.objective, solution.converged
        if whole:
            return q, np.zeros(n, dtype=np.int8), value, converged
    # At the infimum every pair with a condition outside the core is infinitely decided:
    # its likelihood is 0 and its positions add the prior-free constant.
    cut_positions = int(np.count_nonzero((counts + counts.T)[~core] > 0)) * 2 - int(
        np.count_nonzero((counts + counts.T)[np.ix_(~core, ~core)] > 0)
    )
    value -= cut_positions * np.log1p(PRIOR_FLOOR)
    outside = np.flatnonzero(~core)
    _refuse_fixed_outside(constraints, outside, names)
    extra = _orderings_touching(constraints, ~core)
    q = place(counts, q, ~core, order.strong, extra=extra)
    bound = np.zeros(n, dtype=np.int8)
    for component in np.unique(order.strong[outside]):
        up, down = order.free_directions(component)
        bound[order.strong == component] = _code(up, down)
    return q, bound, value, converged


def _with_prior(
    counts: np.ndarray,
    order: WinOrder,
    anchor: str,
    q0: np.ndarray | None,
    step_tol: float,
    chord: ChordStart | None,
    confirm_final: bool,
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """pwcmp's Gaussian prior: Newton from each start of :func:`_starts`, every ray tested
    for a finite optimum, the lowest limit kept."""
    n = counts.shape[0]
    outside = np.unique(order.strong[order.strong != order.core])
    best = None
    for start in _starts(arcsine_scores(counts), q0, chord, bool(outside.size)):
        run = _descend(counts, order, anchor, outside, step_tol, confirm_final, start)
        if best is None or run.limit < best.limit - GAP_TOL * max(1.0, abs(best.limit)):
            best = run
    placed = best.up_far | best.down_far
    if not placed.any():
        return best.q, np.zeros(n, dtype=np.int8), best.value, best.converged
    value = best.limit if np.isfinite(best.value) else best.value
    q = place(counts, best.q, placed, order.strong)
    bound = np.zeros(n, dtype=np.int8)
    codes = zip(best.up_far[placed], best.down_far[placed], strict=True)
    bound[placed] = [_code(up, down) for up, down in codes]
    return q, bound, value, best.converged


def _starts(
    arcsine: np.ndarray, q0: np.ndarray | None, chord: ChordStart | None, several: bool
) -> list[dict]:
    """Newton's starts (keyword arguments of :func:`scaling.solvers.solve_exact`).

    A warm start (a bootstrap resample starts from the full data's scores) is the only
    one. A cold start is the convex problem on continuity-corrected counts, then every
    one-sided condition at the minimum of its own profile; where conditions lie outside
    the core, pwcmp's prior can hold them in several basins (or in none), so Newton also
    starts from pwcmp's crude arcsine estimate and from pwcmp's own start, all scores 0,
    and the lowest limit wins. On 108 random sparse designs with conditions outside the
    core (8-60 conditions, 3-30 comparisons each, 2-25 JOD), each of the three was the only
    one to reach the lowest objective on 2-3 of them (``python
    benchmarks/scaling_accuracy.py --studies starts``).
    """
    first = {"q0": q0, "chord": chord}
    if not several or q0 is not None:
        return [first]
    return [first, {"q0": arcsine - arcsine.mean()}, {"q0": np.zeros(arcsine.size), "place": False}]


@dataclass
class _Descent:
    """Where Newton and the ray tests ended from one start: scores (rays sent ``FAR``),
    the rays sent up / down, pwcmp's objective there and its shift-invariant limit."""

    q: np.ndarray
    up_far: np.ndarray
    down_far: np.ndarray
    value: float
    converged: bool
    limit: float


def _descend(
    counts: np.ndarray,
    order: WinOrder,
    anchor: str,
    outside: np.ndarray,
    step_tol: float,
    confirm_final: bool,
    start: dict,
) -> _Descent:
    """Newton from ``start``, then the rays: falling ones sent to infinity (their first
    condition held), a basin found behind a plateau entered, Newton again, until no ray
    falls."""
    n = counts.shape[0]
    solution = solve_exact(
        counts,
        prior="gaussian",
        anchor=anchor,
        step_tol=step_tol,
        confirm_final=confirm_final,
        **start,
    )
    q, value, converged = solution.q, solution.objective, solution.converged
    shift_invariant = ThurstoneObjective(counts, prior="gaussian", anchor="fix0")
    up_far = np.zeros(n, dtype=bool)
    down_far = np.zeros(n, dtype=bool)
    pins = np.zeros(n, dtype=bool)
    far: set[tuple[int, int]] = set()
    for _ in range(4 * order.n_components + 4):
        if not outside.size:
            break
        better, falling = _test_rays(shift_invariant, order, counts, q, outside, far)
        if better is None and not falling:
            better = _scan_coordinates(shift_invariant, order, q, pins | up_far | down_far)
            if better is None:
                break
        if better is None:
            for component, direction in falling:
                members = order.up_set(component) if direction > 0 else order.down_set(component)
                q = q + FAR * direction * members
                (up_far if direction > 0 else down_far)[members] = True
                pins[np.flatnonzero(order.strong == component)[0]] = True
                far.add((component, direction))
        solution = solve_exact(
            counts,
            prior="gaussian",
            anchor="fix0",
            q0=q if better is None else better,
            place=False,
            step_tol=step_tol,
            confirm_final=confirm_final,
            held=pins,
        )
        q, value, converged = solution.q, solution.objective, solution.converged
    limit = shift_invariant.value(q) if outside.size else value
    return _Descent(q, up_far, down_far, value, converged, limit)


PROFILE_STEP = 0.5
"""JOD between the first points at which a falling ray's profile is searched for a basin;
the steps grow by PROFILE_GROWTH beyond, since basins sit near the conditions a ray met."""

PROFILE_GROWTH = 1.25


def _profile_grid(gap: float) -> np.ndarray:
    """How far back (JOD) a ray's profile is evaluated: from PROFILE_STEP to 1 JOD past
    its nearest comparison ``gap`` away, in growing steps."""
    steps, t, step = [], PROFILE_STEP, PROFILE_STEP
    while t <= max(gap, 0.0) + 1.0:
        steps.append(t)
        step = max(PROFILE_STEP, step * PROFILE_GROWTH) if t > 4.0 else PROFILE_STEP
        t += step
    return np.array(steps)


def _test_rays(
    objective: ThurstoneObjective,
    order: WinOrder,
    counts: np.ndarray,
    q: np.ndarray,
    components: np.ndarray,
    far: set[tuple[int, int]],
) -> tuple[np.ndarray | None, list[tuple[int, int]]]:
    """Test every ray not yet sent to infinity from Newton's point ``q``.

    A ray whose limit is above the objective at ``q`` holds a finite optimum. One whose
    limit is not may still hold one nearer the rest: far from its neighbours the
    objective is flat to rounding, and Newton can stop on such a plateau beyond a basin
    (pwcmp's prior is not convex). Its profile back towards the conditions it met is
    searched on a ``PROFILE_STEP`` grid: a lower point is returned as ``better`` (Newton
    restarts there); otherwise the ray is ``falling``: its optimum is at infinity.
    """
    here = objective.value(q)
    tolerance = GAP_TOL * max(1.0, abs(here))
    falling = []
    for component in components:
        up, down = order.free_directions(component)
        for direction, free in ((1, up), (-1, down)):
            if not free or (int(component), direction) in far:
                continue
            members = order.up_set(component) if direction > 0 else order.down_set(component)
            ray = direction * members
            if objective.value(q + FAR * ray) > here + tolerance:
                continue
            met = (counts + counts.T)[np.ix_(members, ~members)] > 0
            gaps = direction * (q[members][:, None] - q[~members][None, :])[met]
            back = _profile_grid(float(gaps.min()))
            values = np.array([objective.value(q - t * ray) for t in back])
            if values.size and values.min() < here - tolerance:
                return q - back[np.argmin(values)] * ray, []
            falling.append((int(component), direction))
    return None, falling


FLAT_CURVATURE = 1e-8
"""Curvature (objective per JOD^2) below which a direction of the scores counts as flat:
moving 1 JOD along it changes pwcmp's objective by less than rounding can see."""


def _flat(counts: np.ndarray, q: np.ndarray) -> bool:
    """Whether pwcmp's objective is flat to rounding along some direction at ``q`` (the
    optimum is then not determined), the offset held by the first score."""
    hessian = ThurstoneObjective(counts, prior="gaussian", anchor="fix0").hessian(q)
    return bool(np.linalg.eigvalsh(hessian[1:, 1:])[0] < FLAT_CURVATURE)


SCAN_STEP = 0.25
"""JOD between the points of :func:`_scan_coordinates`' grid."""


def _scan_coordinates(
    objective: ThurstoneObjective, order: WinOrder, q: np.ndarray, held: np.ndarray
) -> np.ndarray | None:
    """A lower point, if moving one condition outside the core alone finds one.

    pwcmp's prior can hold a condition outside the core in several basins, and Newton
    keeps the one it started in: each such condition's profile (the objective along its
    own score, :meth:`~scaling.likelihood.ThurstoneObjective.coordinate_profile`) is
    searched on a ``SCAN_STEP`` grid spanning the scale and 3 JOD beyond, and the first
    grid minimum whose exact objective is lower than at ``q`` is returned.
    """
    if held.all():
        return None
    here = objective.value(q)
    tolerance = GAP_TOL * max(1.0, abs(here))
    finite = q[~held]
    grid = np.arange(finite.min() - 3.0, finite.max() + 3.0, SCAN_STEP)
    context = objective.profile_context(q)
    for c in np.flatnonzero((order.strong != order.core) & ~held):
        values = objective.coordinate_profile(q, c, context)(grid)
        trial = q.copy()
        trial[c] = grid[np.argmin(values)]
        if objective.value(trial) < here - tolerance:
            return trial
    return None


def _code(up: bool, down: bool) -> int:
    if up and down:
        return UNBOUNDED
    return LOWER if up else UPPER if down else TWO_SIDED


def _orderings_touching(
    constraints: Sequence[Ordering | FixedScore], placed: np.ndarray
) -> list[Ordering]:
    return [
        c for c in constraints if isinstance(c, Ordering) and (placed[c.better] or placed[c.worse])
    ]


def _refuse_fixed_outside(
    constraints: Sequence[Ordering | FixedScore],
    outside: np.ndarray,
    names: Sequence[str] | None,
) -> None:
    for c in constraints:
        if isinstance(c, FixedScore) and c.index in set(outside.tolist()):
            name = repr(names[c.index]) if names is not None else c.index
            raise ValueError(
                f"condition {name} is outside the determined core (it never lost, never "
                "won, or beat every condition it met): its score has no finite optimum and "
                "cannot be fixed"
            )
