"""ASAP, re-implemented from its published algorithm: the accuracy and speed reference.

Mikhailiuk, Wilmot, Perez-Ortiz, Yue and Mantiuk, "Active Sampling for Pairwise Comparisons
via Approximate Message Passing and Information Gain Maximization", ICPR 2020 (code:
gfxdisp/asap, ``python/asap_cpu.py``). What it does, step for step as the published CPU
code, so that its choices (not only its idea) are what jodkit is measured against:

* posterior: TrueSkill by expectation propagation. Skills s_i ~ N(0, 0.5); a comparison
  "w beat l" observes s_w - s_l + e > 0, e ~ N(0, 1). Six EP sweeps from the prior give the
  current marginals (mean, variance). Each EP sweep updates all game messages at once, then
  every skill's precision and mean from the prior and its messages.
* expected information gain of a pair (i, j), for each outcome: full ASAP re-runs EP on all
  comparisons plus the hypothetical one (4 sweeps, starting from the current marginals and
  from the game messages the previous candidate left, exactly as the published code's
  solver state does); ASAP-approx updates only the two skills by one online TrueSkill step.
  The gain is the KL divergence between the updated and the current marginals (the
  published approximation: sum log v2 - sum log v1 + sum v1 / v2 + sum (m1 - m2)^2 / v2),
  weighted by P(outcome) = Phi(+-(m_i - m_j) / sqrt(1 + v_i + v_j)).
* optional "selective EIG": a pair is evaluated with probability proportional to
  min(P, 1 - P), normalised by the row's maximum; skipped pairs get gain -1.
* batch: minimum spanning tree of 1 / gain over the complete graph (pairs with gain <= 0
  excluded), i.e. the maximum spanning tree of the gains; N - 1 pairs. While fewer than
  N - 1 comparisons exist the batch is a random spanning tree (random weights).

Differences from the published code that change no result: numpy and scipy instead of
networkx (scipy's minimum spanning tree), per-skill sums by ``np.bincount`` instead of a
Python loop over conditions, the approximate update vectorised over candidates (each
candidate is independent there), a numpy Generator for the random choices, and phi / Phi
computed in log space (the published ``pdf / cdf`` gives NaN where the cdf underflows).
The full version stays a Python loop over candidates: its solver state carries from one
candidate to the next, as published. It is slow by design (O(N^2) EP runs per batch).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.special import log_ndtr, ndtr

PRIOR_VARIANCE = 0.5
"""TrueSkill prior variance of every skill (``pv`` in the published code)."""

SOLVE_SWEEPS = 6
CANDIDATE_SWEEPS = 4
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _psi(x: np.ndarray) -> np.ndarray:
    """pdf(x) / cdf(x) of the standard normal."""
    return np.exp(-0.5 * x * x - _LOG_SQRT_2PI - log_ndtr(x))


def _lamb(x: np.ndarray) -> np.ndarray:
    ps = _psi(x)
    return ps * (ps + x)


def unroll(counts: np.ndarray) -> np.ndarray:
    """(comparisons, 2) rows [winner, loser], in the published order (row by row)."""
    counts = np.asarray(counts).astype(int)
    winners, losers = np.nonzero(counts)
    repeat = counts[winners, losers]
    return np.column_stack([np.repeat(winners, repeat), np.repeat(losers, repeat)])


class TrueSkillEP:
    """The published TrueSkill solver with its state: marginals and game messages."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.means = np.zeros(n)
        self.variances = np.full(n, PRIOR_VARIANCE)
        self.msg_precision = np.zeros((0, 2))
        self.msg_mean = np.zeros((0, 2))

    def reset_messages(self, n_games: int) -> None:
        """``add_cmps``: resize the message arrays and zero every message."""
        self.msg_precision = np.zeros((n_games, 2))
        self.msg_mean = np.zeros((n_games, 2))

    def solve(
        self, games: np.ndarray, sweeps: int = SOLVE_SWEEPS, save: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """EP sweeps over ``games`` (rows [winner, loser]); returns (means, variances)."""
        if self.msg_precision.shape[0] != games.shape[0]:
            self.reset_messages(games.shape[0])
        precision = 1.0 / self.variances
        means = self.means.copy()
        flat = games.ravel()
        for _ in range(sweeps):
            cavity_p = precision[games] - self.msg_precision
            cavity_m = (precision[games] * means[games] - self.msg_precision * self.msg_mean) / (
                cavity_p
            )
            var_game = 1.0 + np.sum(1.0 / cavity_p, axis=1)
            mean_game = cavity_m[:, 0] - cavity_m[:, 1]
            t = mean_game / np.sqrt(var_game)
            trunc_mean = mean_game + np.sqrt(var_game) * _psi(t)
            trunc_precision = 1.0 / (var_game * (1.0 - _lamb(t)))
            to_game_p = trunc_precision - 1.0 / var_game
            to_game_m = (trunc_mean * trunc_precision - mean_game / var_game) / to_game_p
            self.msg_precision = 1.0 / (
                1.0 + np.tile(1.0 / to_game_p, (2, 1)).T + 1.0 / cavity_p[:, [1, 0]]
            )
            self.msg_mean = np.stack((to_game_m, -to_game_m), axis=-1) + cavity_m[:, [1, 0]]
            precision = 1.0 / PRIOR_VARIANCE + np.bincount(
                flat, self.msg_precision.ravel(), minlength=self.n
            )
            means = (
                np.bincount(flat, (self.msg_precision * self.msg_mean).ravel(), minlength=self.n)
                / precision
            )
        if save:
            self.variances = 1.0 / precision
            self.means = means.copy()
        return means, 1.0 / precision


def kl_approx(m1: np.ndarray, v1: np.ndarray, m2: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """The published KL approximation (last axis summed)."""
    return (
        np.sum(np.log(v2), axis=-1)
        - np.sum(np.log(v1), axis=-1)
        + np.sum(v1 / v2, axis=-1)
        + np.sum((m1 - m2) ** 2 / v2, axis=-1)
    )


def _online_update(
    m_w: np.ndarray, v_w: np.ndarray, m_l: np.ndarray, v_l: np.ndarray
) -> tuple[np.ndarray, ...]:
    """``solve_approx`` for one game won by w: the online TrueSkill step on two skills."""
    c = np.sqrt(2.0 + v_w + v_l)
    t = (m_w - m_l) / c
    f1, f2 = _psi(t), _lamb(t)
    return (
        m_w + v_w / c * f1,
        v_w * (1.0 - v_w * f2 / c**2),
        m_l - v_l / c * f1,
        v_l * (1.0 - v_l * f2 / c**2),
    )


class AsapReference:
    """ASAP (``approx=False``) or ASAP-approx (``approx=True``), batch mode.

    A fresh solver per batch, as in the published examples (``ASAP(N)`` then
    ``run_asap(M)``).
    """

    def __init__(
        self,
        approx: bool = False,
        selective_eig: bool = False,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.approx = approx
        self.selective_eig = selective_eig
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def next_batch(self, counts: np.ndarray) -> np.ndarray:
        """N - 1 pairs (rows [i, j]) to compare next, best first."""
        n = counts.shape[0]
        if counts.sum() < n - 1:
            gains = np.tril(self.rng.random((n, n)), k=-1)
        else:
            gains = self.gain_matrix(counts)
        return spanning_tree(gains)

    def gain_matrix(self, counts: np.ndarray) -> np.ndarray:
        """Lower-triangular matrix of expected information gains (``kl_divs``)."""
        n = counts.shape[0]
        games = unroll(counts)
        solver = TrueSkillEP(n)
        mean, var = solver.solve(games)
        solver.reset_messages(games.shape[0] + 1)  # add_cmps(): one more row, all zeros
        diff = mean[None, :] - mean[:, None]
        prob = ndtr(diff / np.sqrt(1.0 + var[:, None] + var[None, :]))
        np.fill_diagonal(prob, 0.0)
        ii, jj = np.tril_indices(n, k=-1)
        evaluate = self._evaluated(prob, ii, jj)
        gains = np.zeros((n, n))
        gains[ii[~evaluate], jj[~evaluate]] = -1.0
        ii, jj = ii[evaluate], jj[evaluate]
        if self.approx:
            kl_i, kl_j = self._approx_kl(mean, var, ii, jj)
        else:
            kl_i, kl_j = self._full_kl(solver, games, mean, var, ii, jj)
        gains[ii, jj] = prob[jj, ii] * kl_i + prob[ii, jj] * kl_j
        return gains

    def _evaluated(self, prob: np.ndarray, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
        """Which pairs get an EIG evaluation (all, unless selective EIG)."""
        if not self.selective_eig:
            return np.ones(ii.size, dtype=bool)
        close = np.tril(np.minimum(prob, 1.0 - prob))
        top = close.max(axis=1)
        close = np.divide(close.T, top, out=np.zeros_like(close.T), where=top != 0).T
        draws = self.rng.random(ii.size)
        return close[ii, jj] >= draws

    @staticmethod
    def _approx_kl(
        mean: np.ndarray, var: np.ndarray, ii: np.ndarray, jj: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        current_m = np.column_stack([mean[ii], mean[jj]])
        current_v = np.column_stack([var[ii], var[jj]])
        mi, vi, mj, vj = _online_update(mean[ii], var[ii], mean[jj], var[jj])  # i wins
        kl_i = kl_approx(np.column_stack([mi, mj]), np.column_stack([vi, vj]), current_m, current_v)
        mj, vj, mi, vi = _online_update(mean[jj], var[jj], mean[ii], var[ii])  # j wins
        kl_j = kl_approx(np.column_stack([mi, mj]), np.column_stack([vi, vj]), current_m, current_v)
        return kl_i, kl_j

    @staticmethod
    def _full_kl(
        solver: TrueSkillEP,
        games: np.ndarray,
        mean: np.ndarray,
        var: np.ndarray,
        ii: np.ndarray,
        jj: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        extended = np.vstack([games, np.zeros((1, 2), dtype=games.dtype)])
        kl_i, kl_j = np.empty(ii.size), np.empty(ii.size)
        for k, (i, j) in enumerate(zip(ii, jj, strict=True)):
            extended[-1] = (i, j)
            kl_i[k] = kl_approx(*solver.solve(extended, CANDIDATE_SWEEPS, save=False), mean, var)
            extended[-1] = (j, i)
            kl_j[k] = kl_approx(*solver.solve(extended, CANDIDATE_SWEEPS, save=False), mean, var)
        return kl_i, kl_j


def spanning_tree(gains: np.ndarray) -> np.ndarray:
    """``compute_minimum_spanning_tree``: the MST of 1 / gain (gain <= 0: no edge), its
    edges sorted by weight (largest gain first)."""
    both = gains + gains.T
    weight = np.zeros_like(both)
    positive = both > 0
    weight[positive] = 1.0 / both[positive]
    tree = minimum_spanning_tree(sparse.csr_matrix(np.triu(weight))).tocoo()
    order = np.argsort(tree.data, kind="stable")
    return np.column_stack([tree.row[order], tree.col[order]])
