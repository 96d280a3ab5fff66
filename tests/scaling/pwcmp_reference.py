"""An independent implementation of pwcmp's objective, an exact optimiser for it, and
pwcmp's bootstrap, written from pwcmp's ``pw_scale`` / ``pw_scale_bootstrp`` and METHODS.md
section 2 with numpy and scipy only: nothing here comes from the ``scaling`` package, so
agreement with it is evidence, not a tautology.

* :func:`objective` is pwcmp's ``exp_prob`` (likelihood over every compared ordered
  position, the Gaussian prior with the unanimity shift, ``mean0``), summed in log space;
  its gradient is derived below, by hand.
* :func:`exact_optimum` minimises it from several starts (BFGS, then Newton steps on a
  Hessian of central differences of the analytic gradient) and keeps the lowest.
* :func:`pwcmp_bootstrap` is ``pw_scale_bootstrp``: resample observers with replacement,
  sum, scale each resample with BFGS from q = 0 at pwcmp's default tolerance (``fminunc``'s
  1e-6), 2.5 and 97.5 percentiles with MATLAB's ``prctile``.

Loaded by ``tests/scaling/conftest.py`` (fixture ``pwcmp_reference``) and by
``benchmarks/scaling_accuracy.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_ndtr, ndtr

PWCMP_SIGMA = 1.4826  # pwcmp's sigma_cdf, restated: a difference of 1 gives 75%


def _positions(counts: np.ndarray):
    """Compared ordered positions (i, j), their D, D' and the prior's shifted (k, n)."""
    d = np.asarray(counts, dtype=float)
    n_sum = d + d.T
    rows, cols = np.nonzero(n_sum > 0)
    wins, losses = d[rows, cols], d[cols, rows]
    unanimous = (wins == 0) | (losses == 0)
    # pwcmp: D_wUA(UA & D == 0) = 1; D_wUA(UA & D ~= 0) = D - 1.
    k = np.where(unanimous & (wins == 0), 1.0, np.where(unanimous, wins - 1.0, wins))
    return rows, cols, wins, losses, k, n_sum[rows, cols]


def objective(
    counts: np.ndarray, prior: str = "gaussian", anchor: str = "mean0"
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """pwcmp's objective of the full score vector q (``fix0``: q[0] is held by the caller),
    with its analytic gradient: ``f(q) -> (value, gradient)``."""
    rows, cols, wins, losses, k, n = _positions(counts)
    size = np.asarray(counts).shape[0]
    groups, group_of, multiplicity = np.unique(
        np.stack([k, n], axis=1), axis=0, return_inverse=True, return_counts=True
    )
    del group_of
    gk, gn = groups[:, 0][:, None], groups[:, 1][:, None]

    def value_and_grad(q: np.ndarray) -> tuple[float, np.ndarray]:
        u = (q[rows] - q[cols]) / PWCMP_SIGMA
        log_p, log_q = log_ndtr(u), log_ndtr(-u)
        # d log P / d d and d log(1 - P) / d d, with d = q_i - q_j
        dlog_p = np.exp(-0.5 * u * u - 0.5 * np.log(2 * np.pi) - log_p) / PWCMP_SIGMA
        dlog_q = -np.exp(-0.5 * u * u - 0.5 * np.log(2 * np.pi) - log_q) / PWCMP_SIGMA
        value = -float(np.sum(wins * log_p + losses * log_q))
        d_pos = -(wins * dlog_p + losses * dlog_q)
        if prior == "gaussian":
            lam = gk * log_p + (gn - gk) * log_q  # (G, P)
            lam_max = lam.max(axis=1, keepdims=True)
            e = np.exp(lam - lam_max)
            w = e / e.sum(axis=1, keepdims=True)  # w_ba = L_b(P_a) / Z_b
            prior_a = multiplicity @ w
            r = 1.0 / (prior_a + 0.1)
            value -= float(np.sum(np.log(prior_a + 0.1)))
            s = w @ r  # s_b = sum_a r_a w_ba
            g = gk * dlog_p + (gn - gk) * dlog_q  # d Lambda_ba / d d_a
            d_pos -= np.sum(multiplicity[:, None] * w * g * (r[None, :] - s[:, None]), axis=0)
        else:
            value -= rows.size * np.log(1.1)
        grad = np.bincount(rows, d_pos, size) - np.bincount(cols, d_pos, size)
        if anchor == "mean0":
            mean = q.mean()
            value += 0.01 * mean * mean
            grad += 0.02 * mean / size
        return value, grad

    return value_and_grad


def _newton_polish(fun, x: np.ndarray, steps: int = 30) -> np.ndarray:
    """Newton on a central-difference Hessian of the analytic gradient, with backtracking."""
    h = 1e-5
    for _ in range(steps):
        value, grad = fun(x)
        eye = np.eye(x.size)
        hess = np.array([(fun(x + h * e)[1] - fun(x - h * e)[1]) / (2 * h) for e in eye])
        hess = 0.5 * (hess + hess.T)
        eigenvalues, vectors = np.linalg.eigh(hess)
        # Newton in the positive-curvature subspace: flat tails (curvature at rounding
        # level) are left where BFGS put them.
        keep = eigenvalues > 1e-9 * max(1.0, eigenvalues.max())
        step = -vectors[:, keep] @ ((vectors[:, keep].T @ grad) / eigenvalues[keep])
        t = 1.0
        while fun(x + t * step)[0] > value + 1e-13 * abs(value) and t > 1e-6:
            t *= 0.5
        x = x + t * step
        if np.abs(t * step).max() < 1e-10:
            break
    return x


def exact_optimum(
    counts: np.ndarray,
    prior: str = "gaussian",
    starts: int = 4,
    seed: int = 0,
    jumps: int = 10,
) -> tuple[np.ndarray, float]:
    """The lowest minimum of pwcmp's objective (``mean0``) found from ``starts`` starts: 0,
    the arcsine estimate pwcmp computes first, and random ones; from each, up to ``jumps``
    times, one score moved across the scale where that lowers the objective, and descent
    again. Returns (q, value)."""
    fun = objective(counts, prior)
    n = np.asarray(counts).shape[0]
    d = np.asarray(counts, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(d + d.T > 0, d / (d + d.T), 0.5)
    arcsine = np.sum(-(12.0 / np.pi * np.arcsin(np.sqrt(ratio)) - 3.0) / 2.0, axis=0)
    rng = np.random.default_rng(seed)
    candidates = [np.zeros(n), arcsine - arcsine.mean()]
    candidates += [rng.normal(0.0, 3.0, n) for _ in range(max(0, starts - 2))]
    best, best_value = None, np.inf
    for start in candidates[:starts]:
        x = _descend(fun, start)
        for _ in range(jumps):  # leave local minima one coordinate at a time
            jump = _coordinate_jump(fun, x)
            if jump is None:
                break
            x = _descend(fun, jump)
        value = fun(x)[0]
        if value < best_value:
            best, best_value = x, value
    return best, best_value


def _descend(fun, start: np.ndarray) -> np.ndarray:
    result = minimize(fun, start, jac=True, method="BFGS", options={"gtol": 1e-9})
    return _newton_polish(fun, result.x)


def _coordinate_jump(fun, x: np.ndarray) -> np.ndarray | None:
    """A point with one score moved along a grid over the whole scale (and 3 beyond)
    where the objective is lower than at ``x``; None if there is none."""
    here = fun(x)[0]
    grid = np.arange(x.min() - 3.0, x.max() + 3.0, 0.25)
    for c in range(x.size):
        trials = np.repeat(x[None, :], grid.size, axis=0)
        trials[:, c] = grid
        values = np.array([fun(t)[0] for t in trials])
        if values.min() < here - 1e-9 * max(1.0, abs(here)):
            return trials[np.argmin(values)]
    return None


def pwcmp_scale(counts: np.ndarray, prior: str = "gaussian") -> np.ndarray:
    """``pw_scale`` as pwcmp runs it: BFGS from q = 0 at fminunc's default tolerance."""
    fun = objective(counts, prior)
    start = np.zeros(np.asarray(counts).shape[0])
    return minimize(fun, start, jac=True, method="BFGS", options={"gtol": 1e-6}).x


def prctile(samples: np.ndarray, percent: float) -> np.ndarray:
    """MATLAB's ``prctile`` along axis 0: the sorted sample k sits at 100 (k - 0.5) / n."""
    x = np.sort(samples, axis=0)
    size = x.shape[0]
    position = np.clip(size * percent / 100.0 + 0.5, 1.0, size) - 1.0
    below = int(np.floor(position))
    above = min(below + 1, size - 1)
    return x[below] + (position - below) * (x[above] - x[below])


def observer_resamples(n_observers: int, n_samples: int, seed: int) -> np.ndarray:
    """Indices of the observers drawn for each resample (with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_observers, size=(n_samples, n_observers))


def pwcmp_bootstrap(
    observer_counts: np.ndarray, draws: np.ndarray, prior: str = "gaussian"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pw_scale_bootstrp`` on per-observer counts (U, N, N) with given observer draws:
    returns the samples and the 2.5 / 97.5 percentiles."""
    samples = np.array([pwcmp_scale(observer_counts[pick].sum(axis=0), prior) for pick in draws])
    return samples, prctile(samples, 2.5), prctile(samples, 97.5)


def random_design(
    n: int, trials: int, observers: int, seed: int, spread: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-observer counts (observers, n, n) of a random design: each trial a random pair
    (drawn with replacement) judged by a random observer with pwcmp's model; true scores
    uniform over ``spread`` JOD. Returns the counts and the true scores."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-spread / 2, spread / 2, n)
    i = rng.integers(0, n, trials)
    j = rng.integers(0, n - 1, trials)
    j = np.where(j >= i, j + 1, j)
    won = rng.random(trials) < ndtr((truth[i] - truth[j]) / PWCMP_SIGMA)
    observer = rng.integers(0, observers, trials)
    per_observer = np.zeros((observers, n, n))
    np.add.at(per_observer, (observer, np.where(won, i, j), np.where(won, j, i)), 1.0)
    return per_observer, truth
