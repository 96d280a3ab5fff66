"""pwcmp's Thurstone Case V objective, its prior and its gradient, computed in log space.

The model: P(i chosen over j) = Phi((q_i - q_j) / SIGMA), with SIGMA chosen so that a
difference of 1 JOD gives 75% preference. The objective is pwcmp's ``pw_scale``
(Perez-Ortiz and Mantiuk, 2017) term for term, with two numerical repairs that change no
optimum pwcmp can reach:

* the likelihood is summed as ``k log Phi(u) + (n - k) log Phi(-u)`` with ``log_ndtr``, so a
  pair compared thousands of times gives a finite objective (pwcmp multiplies
  probabilities and takes ``log(max(p, 1e-400))``, which is ``log 0`` in double precision);
* the Gaussian prior is grouped by the distinct ``(k, n)`` count pairs, which makes it
  O(positions x distinct counts) instead of O(positions^2) with identical values.

Every compared *ordered* position (i, j) enters the objective, so each unordered pair counts
twice, exactly as in pwcmp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_ndtr, logsumexp

SIGMA = 1.4826
"""Standard deviation of the Thurstone difference: Phi(1 / SIGMA) = 0.75."""

MEAN0_WEIGHT = 0.01
"""pwcmp's ``mean0`` regularisation weight on mean(q)^2."""

PRIOR_FLOOR = 0.1
"""pwcmp adds this to each prior value before taking its log."""

RIDGE = 1e-6
"""Tiny penalty on squared compared differences, jodkit's one addition to pwcmp's objective.

A condition that never lost (or never won) has no finite optimum: without a prior the
likelihood keeps rising as it drifts away, and pwcmp's Gaussian prior does not stop it
either when many pairs were compared once. pwcmp returns wherever its optimiser stopped.
The ridge keeps such scores finite (a few JOD beyond their neighbours, flagged as
undetermined) and moves determined scores by less than 1e-4 JOD.
"""


@dataclass
class ComparedPositions:
    """The compared ordered positions (i, j) of a count matrix and their counts.

    The first ``n_pairs`` positions are the pairs with i < j; the second half mirrors them.

    ``wins[a]`` = D[i, j], ``losses[a]`` = D[j, i], ``prior_k``/``total`` are the prior's
    k and n (unanimous pairs shifted as pwcmp does).
    """

    rows: np.ndarray
    cols: np.ndarray
    wins: np.ndarray
    losses: np.ndarray
    total: np.ndarray
    prior_k: np.ndarray
    n_conditions: int
    n_pairs: int = field(init=False)
    group_k: np.ndarray = field(init=False)
    group_n: np.ndarray = field(init=False)
    group_count: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.n_pairs = self.rows.size // 2
        pairs = np.stack([self.prior_k, self.total], axis=1)
        distinct, counts = np.unique(pairs, axis=0, return_counts=True)
        self.group_k = distinct[:, 0]
        self.group_n = distinct[:, 1]
        self.group_count = counts.astype(float)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> ComparedPositions:
        """Collect every position with S[i, j] = D[i, j] + D[j, i] > 0."""
        totals = counts + counts.T
        upper_rows, upper_cols = np.nonzero(np.triu(totals > 0, k=1))
        rows = np.concatenate([upper_rows, upper_cols])
        cols = np.concatenate([upper_cols, upper_rows])
        wins = counts[rows, cols].astype(float)
        losses = counts[cols, rows].astype(float)
        total = wins + losses
        prior_k = wins.copy()
        unanimous = (wins == 0) | (losses == 0)
        prior_k[unanimous & (wins == 0)] = 1.0
        prior_k[unanimous & (wins != 0)] -= 1.0
        return cls(rows, cols, wins, losses, total, prior_k, counts.shape[0])


class ThurstoneObjective:
    """pwcmp's negative log-posterior of the scores q, with its gradient.

    Parameters
    ----------
    counts : (N, N) array
        D[i, j] = times i was chosen over j (non-negative; halves allowed for split ties).
    prior : {"gaussian", "none"}
        pwcmp's distance prior, or none (pure maximum likelihood). Both add RIDGE.
    anchor : {"mean0", "fix0"}
        ``mean0`` adds MEAN0_WEIGHT * mean(q)^2; ``fix0`` is handled by the solver, which
        holds q[0] at 0 and optimises the rest.
    """

    def __init__(self, counts: np.ndarray, prior: str = "gaussian", anchor: str = "mean0") -> None:
        self.counts = np.asarray(counts, dtype=float)
        self.prior = prior
        self.anchor = anchor
        self.positions = ComparedPositions.from_counts(self.counts)
        self.n = self.counts.shape[0]

    def value_and_grad(self, q: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and gradient with respect to all N scores."""
        pos = self.positions
        u, log_p, log_not_p, mills_p, mills_not_p = self._position_terms(q)
        value = -float(np.dot(pos.wins, log_p) + np.dot(pos.losses, log_not_p))
        d_u = -pos.wins * mills_p + pos.losses * mills_not_p

        if self.prior == "gaussian":
            prior_value, prior_d_u = self._prior_value_and_grad(
                log_p, log_not_p, mills_p, mills_not_p
            )
            value += prior_value
            d_u += prior_d_u
        else:
            value -= pos.rows.size * np.log1p(PRIOR_FLOOR)  # pwcmp's constant log(1 + 0.1)
        diff = u * SIGMA
        value += RIDGE * float(np.dot(diff, diff)) / 2.0
        d_u += RIDGE * diff * SIGMA  # d/du of ridge * (sigma u)^2 / 2

        grad = np.bincount(pos.rows, d_u, self.n) - np.bincount(pos.cols, d_u, self.n)
        grad /= SIGMA
        if self.anchor == "mean0":
            mean = q.mean()
            value += MEAN0_WEIGHT * mean * mean
            grad += 2.0 * MEAN0_WEIGHT * mean / self.n
        return value, grad

    def _position_terms(self, q: np.ndarray) -> tuple[np.ndarray, ...]:
        """u, log Phi(u), log Phi(-u) and both inverse Mills ratios at every position.

        Positions come in mirrored pairs ((i, j) then (j, i), u negated), so the special
        functions are evaluated on the first half only.
        """
        pos = self.positions
        half = pos.n_pairs
        u_half = (q[pos.rows[:half]] - q[pos.cols[:half]]) / SIGMA
        log_p_half = log_ndtr(u_half)
        log_not_half = log_ndtr(-u_half)
        log_phi = -0.5 * u_half * u_half - 0.5 * np.log(2.0 * np.pi)
        mills_half = np.exp(log_phi - log_p_half)
        mills_not_half = np.exp(log_phi - log_not_half)
        u = np.concatenate([u_half, -u_half])
        log_p = np.concatenate([log_p_half, log_not_half])
        log_not_p = np.concatenate([log_not_half, log_p_half])
        mills_p = np.concatenate([mills_half, mills_not_half])
        mills_not_p = np.concatenate([mills_not_half, mills_half])
        return u, log_p, log_not_p, mills_p, mills_not_p

    def __call__(self, q: np.ndarray) -> float:
        return self.value_and_grad(q)[0]

    def _prior_value_and_grad(
        self,
        log_p: np.ndarray,
        log_not_p: np.ndarray,
        mills_p: np.ndarray,
        mills_not_p: np.ndarray,
    ) -> tuple[float, np.ndarray]:
        """pwcmp's Gaussian prior, grouped by distinct (k, n).

        prior_a = sum_g c_g L_g(P_a) / sum_a' L_g(P_a') with L_g(x) = x^k (1 - x)^(n - k).
        """
        pos = self.positions
        k = pos.group_k[:, None]
        n_minus_k = (pos.group_n - pos.group_k)[:, None]
        log_like = k * log_p[None, :] + n_minus_k * log_not_p[None, :]
        weights = np.exp(log_like - logsumexp(log_like, axis=1, keepdims=True))
        prior = pos.group_count @ weights
        value = -float(np.sum(np.log(prior + PRIOR_FLOOR)))

        r = 1.0 / (prior + PRIOR_FLOOR)
        s = weights @ r
        m = pos.group_count[:, None] * weights * (r[None, :] - s[:, None])
        a = pos.group_k @ m
        b = (pos.group_n - pos.group_k) @ m
        d_u = -mills_p * a + mills_not_p * b
        return value, d_u

    def likelihood_hessian(self, q: np.ndarray) -> np.ndarray:
        """Hessian of the likelihood, ridge and mean0 terms (exact without a prior).

        The Newton solver uses it for ``prior="none"``; with the prior it whitens L-BFGS.
        """
        pos = self.positions
        u, _, _, lam_p, lam_n = self._position_terms(q)
        curvature = pos.wins * lam_p * (u + lam_p) + pos.losses * lam_n * (lam_n - u)
        weight = curvature / SIGMA**2 + RIDGE
        hess = np.zeros((self.n, self.n))
        np.add.at(hess, (pos.rows, pos.cols), -weight)
        np.add.at(hess, (pos.cols, pos.rows), -weight)
        hess[np.diag_indices(self.n)] -= hess.sum(axis=1)
        if self.anchor == "mean0":
            hess += 2.0 * MEAN0_WEIGHT / self.n**2
        return hess
