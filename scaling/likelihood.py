"""pwcmp's Thurstone Case V objective, its prior and its gradient, computed in log space.

The model: P(i chosen over j) = Phi((q_i - q_j) / SIGMA), with SIGMA chosen so that a
difference of 1 JOD gives 75% preference. The objective is pwcmp's ``pw_scale``
(Perez-Ortiz and Mantiuk, 2017) term for term, with two numerical repairs that change no
optimum pwcmp can reach:

* the likelihood is summed as ``k log Phi(u) + (n - k) log Phi(-u)`` in log space, so a
  pair compared thousands of times gives a finite objective (pwcmp multiplies
  probabilities and takes ``log(max(p, 1e-400))``, which is ``log 0`` in double precision);
* the Gaussian prior is grouped by the distinct ``(k, n)`` count pairs, which makes it
  O(positions x distinct counts) instead of O(positions^2) with identical values.

Every compared *ordered* position (i, j) enters the objective, so each unordered pair counts
twice, exactly as in pwcmp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import sparse

from scaling.thurstone import SIGMA, NormalTerms, normal_terms, pair_negative_log_likelihood

MEAN0_WEIGHT = 0.01
"""pwcmp's ``mean0`` regularisation weight on mean(q)^2."""

PRIOR_FLOOR = 0.1
"""pwcmp adds this to each prior value before taking its log."""


def pair_likelihood(
    u: np.ndarray,
    wins: np.ndarray,
    losses: np.ndarray,
    normal: NormalTerms,
    order: int,
) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """pwcmp's likelihood term of the compared pairs, with derivatives in u.

    ``u`` = (q_i - q_j) / SIGMA per unordered pair, ``wins``/``losses`` = D[i, j]/D[j, i],
    ``normal`` = :func:`scaling.thurstone.normal_terms` (u). Both ordered positions count,
    as in pwcmp: twice :func:`scaling.thurstone.pair_negative_log_likelihood`.
    """
    value, d_u, d2_u = pair_negative_log_likelihood(u, wins, losses, order, normal)
    return (
        2.0 * value,
        None if d_u is None else 2.0 * d_u,
        None if d2_u is None else 2.0 * d2_u,
    )


CONTINUITY = 0.5
"""Votes added each way to a unanimous pair by :func:`continuity_corrected`."""


def continuity_corrected(counts: np.ndarray) -> np.ndarray:
    """Counts with half a vote added in each direction of every unanimous compared pair
    (Haldane's correction): every pair's maximum-likelihood difference becomes finite and
    keeps the direction of the data."""
    totals = counts + counts.T
    unanimous = (totals > 0) & ((counts == 0) | (counts.T == 0))
    return np.where(unanimous, counts + CONTINUITY, counts)


def arcsine_scores(counts: np.ndarray) -> np.ndarray:
    """pwcmp's crude initial estimate: the ISO 20462 arcsine transform of the win ratios,
    summed per condition (a pair never compared counts as a draw)."""
    totals = counts + counts.T
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(totals > 0, counts / totals, 0.5)
    return np.sum(-(12.0 / np.pi * np.arcsin(np.sqrt(ratio)) - 3.0) / 2.0, axis=0)


@lru_cache(maxsize=8)
def _upper_mask(n: int) -> np.ndarray:
    """Boolean (N, N) mask of the strict upper triangle (cached: bootstrap re-solves)."""
    mask = np.triu(np.ones((n, n), dtype=bool), k=1)
    mask.flags.writeable = False
    return mask


_TABLE_LIMIT = 1 << 20
"""Largest (k, n) code table for the sort-free grouping of :func:`_grouped_by_table`."""


def _grouped_by_table(pos: ComparedPositions) -> bool:
    """Group positions by (k, n) with a code table instead of sorting, when k and n are
    whole or half counts in a small range (every count matrix jodkit builds). Sets the
    group fields and returns True; returns False to leave the general path to the caller.

    Such counts are closed under mirroring (k + k' = n exactly), so only the pair half is
    coded: the mirror of (k, n) is (n - k, n).
    """
    half = pos.n_pairs
    if half == 0:
        return False
    k2, n2 = 2.0 * pos.prior_k[:half], 2.0 * pos.total[:half]
    mirror_k2 = n2 - k2
    k_low, n_low = min(k2.min(), mirror_k2.min()), n2.min()
    k_span = max(k2.max(), mirror_k2.max()) - k_low + 1.0
    n_span = n2.max() - n_low + 1.0
    if not k_span * n_span <= _TABLE_LIMIT:
        return False
    k2 -= k_low
    mirror_k2 -= k_low
    n2 -= n_low
    k_code, mirror_code, n_code = (
        k2.astype(np.intp),
        mirror_k2.astype(np.intp),
        n2.astype(np.intp),
    )
    if not (np.array_equal(k_code, k2) and np.array_equal(n_code, n2)):
        return False
    code = np.concatenate([k_code, mirror_code])
    code *= int(n_span)
    code[:half] += n_code
    code[half:] += n_code
    counts = np.bincount(code, minlength=int(k_span * n_span))
    present = np.flatnonzero(counts)
    rank = np.zeros(counts.size, dtype=np.intp)
    rank[present] = np.arange(present.size)
    pos.group_of = rank[code]
    pos.group_k = (present // int(n_span) + k_low) / 2.0
    pos.group_n = (present % int(n_span) + n_low) / 2.0
    pos.group_count = counts[present].astype(float)
    return True


def _closed_under_mirror(group_of: np.ndarray, half: int) -> bool:
    """Whether the group of every position determines the group of its mirror."""
    mirror = np.full(group_of.max(initial=-1) + 1, -1)
    mirror[group_of[:half]] = group_of[half:]
    mirror[group_of[half:]] = group_of[:half]
    return bool(
        np.array_equal(mirror[group_of[:half]], group_of[half:])
        and np.array_equal(mirror[group_of[half:]], group_of[:half])
    )


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
    group_of: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.n_pairs = self.rows.size // 2
        # Distinct (k, n) in lexicographic order; integer codes, because np.unique with
        # axis=0 sorts a structured view and is 50x slower.
        half = self.n_pairs
        if _grouped_by_table(self):
            return
        k_values, k_code = np.unique(self.prior_k, return_inverse=True)
        n_values, n_code = np.unique(self.total, return_inverse=True)
        codes, self.group_of, counts = np.unique(
            k_code * n_values.size + n_code, return_inverse=True, return_counts=True
        )
        self.group_k = k_values[codes // n_values.size]
        self.group_n = n_values[codes % n_values.size]
        if not _closed_under_mirror(self.group_of, half):
            # Counts whose float sums round (never integers or halves) can give two pairs
            # the same (k, n) but different mirrors: split such groups by the mirror's k
            # (same prior, since a group's terms depend on (k, n) only).
            mirror_k = np.roll(k_code, half)
            triples = np.stack([k_code, n_code, mirror_k], axis=1)
            keys, self.group_of, counts = np.unique(
                triples, axis=0, return_inverse=True, return_counts=True
            )
            self.group_of = self.group_of.reshape(-1)
            self.group_k, self.group_n = k_values[keys[:, 0]], n_values[keys[:, 1]]
        self.group_count = counts.astype(float)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> ComparedPositions:
        """Collect every position with S[i, j] = D[i, j] + D[j, i] > 0."""
        counts = np.asarray(counts, dtype=float)
        n = counts.shape[0]
        upper = (counts + counts.T > 0) & _upper_mask(n)
        flat_ij = np.flatnonzero(upper)
        upper_rows = np.repeat(np.arange(n), np.count_nonzero(upper, axis=1))
        upper_cols = flat_ij - upper_rows * n
        flat = counts.reshape(-1)
        wins_half, losses_half = flat[flat_ij], flat[upper_cols * n + upper_rows]
        wins = np.concatenate([wins_half, losses_half])
        losses = np.concatenate([losses_half, wins_half])
        # pwcmp's unanimity shift for the prior: n:0 counts as (n - 1):1 (and 0:n as 1:(n - 1)).
        prior_k = wins + (wins == 0) - (losses == 0)
        return cls(
            np.concatenate([upper_rows, upper_cols]),
            np.concatenate([upper_cols, upper_rows]),
            wins,
            losses,
            wins + losses,
            prior_k,
            n,
        )


class ThurstoneObjective:
    """pwcmp's negative log-posterior of the scores q, with its gradient and exact Hessian.

    Parameters
    ----------
    counts : (N, N) array
        D[i, j] = times i was chosen over j (non-negative; halves allowed for split ties).
    prior : {"gaussian", "none"}
        pwcmp's distance prior, or none (pure maximum likelihood).
    anchor : {"mean0", "fix0"}
        ``mean0`` adds MEAN0_WEIGHT * mean(q)^2; ``fix0`` is handled by the solver, which
        holds q[0] at 0 and optimises the rest.

    Notes
    -----
    Every term depends on q only through the position differences u_a = (q_i - q_j) / SIGMA,
    so derivatives are taken with respect to u and mapped back with the incidence matrix J
    (u = J q / SIGMA). In u the likelihood's Hessian is diagonal, and the grouped prior's is
    diagonal plus a term of rank at most 3 G (G = distinct (k, n) groups), so the full
    Hessian costs O(P G + N^2 G) (see :meth:`hessian`).
    """

    def __init__(self, counts: np.ndarray, prior: str = "gaussian", anchor: str = "mean0") -> None:
        self.counts = np.asarray(counts, dtype=float)
        self.prior = prior
        self.anchor = anchor
        self.positions = ComparedPositions.from_counts(self.counts)
        self.n = self.counts.shape[0]
        pos = self.positions
        half = pos.n_pairs
        self._i = pos.rows[:half]
        self._j = pos.cols[:half]
        # Incidence of the unordered pairs, N x pairs: J_half^T v = sum_a v_a (e_i - e_j),
        # built as the transpose of its pairs x N form (two entries per row, no sorting).
        # (Its pairs x N form in CSR is its own N x pairs form in CSC: same three arrays.)
        entries = np.empty(2 * half, dtype=np.int32)
        entries[0::2], entries[1::2] = self._i, self._j
        signs = np.empty(2 * half)
        signs[0::2], signs[1::2] = 1.0, -1.0
        rows = np.arange(0, 2 * half + 1, 2, dtype=np.int32)
        self._incidence_t = sparse.csc_matrix((signs, entries, rows), shape=(self.n, half))
        self._flat_ij = self._i * self.n + self._j
        self._flat_ji = self._j * self.n + self._i
        self._k = pos.group_k
        self._nk = pos.group_n - pos.group_k
        self._c = pos.group_count
        self._wins = pos.wins[:half]
        self._losses = pos.losses[:half]
        self._mirror_groups()
        self._constant = 0.0 if prior == "gaussian" else -pos.rows.size * np.log1p(PRIOR_FLOOR)

    def _mirror_groups(self) -> None:
        """Each (k, n) group's mirror (n - k, n) and the unordered group pairs {g, g'}.

        The mirror of a group is the group of the mirrored positions; pwcmp's unanimity
        shift keeps the groups closed under it (k + k' = n always).
        """
        pos = self.positions
        half = pos.n_pairs
        size = pos.group_k.size
        mirror = np.zeros(size, dtype=np.intp)
        mirror[pos.group_of[:half]] = pos.group_of[half:]
        mirror[pos.group_of[half:]] = pos.group_of[:half]
        self._mirror = mirror
        reps = np.flatnonzero(np.arange(size) <= mirror)
        member = np.zeros((reps.size, size))
        member[np.arange(reps.size), reps] = 1.0
        member[np.arange(reps.size), mirror[reps]] = 1.0
        self._pair_reps, self._pair_mirrors = reps, mirror[reps]
        self._pair_member = member
        # The fixed blocks of the prior's low-rank middle matrix (see _prior_terms).
        g = reps.size
        self._pair_middle = np.zeros((3 * g, 3 * g))
        weight = np.diag(member.sum(axis=1))
        self._pair_middle[:g, g : 2 * g] = weight
        self._pair_middle[g : 2 * g, :g] = weight

    # ------------------------------------------------------------------ evaluation
    def value(self, q: np.ndarray) -> float:
        """Objective only (cheaper than :meth:`value_and_grad`; used in line searches)."""
        return self._evaluate(q, order=0)[0]

    def value_and_grad(
        self, q: np.ndarray, normal: tuple[np.ndarray, ...] | None = None
    ) -> tuple[float, np.ndarray]:
        """Objective and gradient with respect to all N scores. ``normal``: the
        :meth:`normal_terms` at q when already known (bootstrap chord steps)."""
        value, grad, _ = self._evaluate(q, order=1, normal=normal)
        return value, grad

    def value_grad_hess(self, q: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Objective, gradient and exact (N, N) Hessian, sharing all intermediate terms."""
        return self._evaluate(q, order=2)

    def hessian(self, q: np.ndarray) -> np.ndarray:
        """Exact Hessian of the whole objective (likelihood, prior and mean0)."""
        return self._evaluate(q, order=2)[2]

    def __call__(self, q: np.ndarray) -> float:
        return self.value(q)

    @property
    def pair_index(self) -> np.ndarray:
        """Flat index i N + j of every compared pair i < j, in the order of the pair terms
        (ascending)."""
        return self._flat_ij

    def normal_terms(self, q: np.ndarray) -> tuple[np.ndarray, ...]:
        """log Phi(u), log Phi(-u) and both inverse Mills ratios on the compared pairs at q
        (:func:`scaling.thurstone.normal_terms` of u = (q_i - q_j) / SIGMA, in
        :attr:`pair_index` order)."""
        return normal_terms((q[self._i] - q[self._j]) / SIGMA)

    def _evaluate(
        self, q: np.ndarray, order: int, normal: tuple[np.ndarray, ...] | None = None
    ) -> tuple[float, np.ndarray | None, ...]:
        """Value (order 0), gradient (1) and Hessian (2), all on the unordered pairs.

        Position (j, i) mirrors (i, j): u is negated, wins and losses swap, and the prior's
        groups map onto their mirrors (k, n) -> (n - k, n) (:attr:`_mirror`). Every term is
        therefore twice its value on the first half of the positions, and the derivatives
        are taken with respect to the H = P / 2 pair differences u_h (J_half maps them to q).
        """
        u = (q[self._i] - q[self._j]) / SIGMA
        if normal is None:
            normal = normal_terms(u)
        value, d_u, d2_u = pair_likelihood(u, self._wins, self._losses, normal, order)
        value += self._constant
        if self.anchor == "mean0":
            mean = q.mean()
            value += MEAN0_WEIGHT * mean * mean
        prior = None
        if self.prior == "gaussian":
            prior = self._prior_terms(u, *normal, order)
            value += prior[0]
        if order == 0:
            return value, None, None

        if prior is not None:
            d_u += prior[1]
        grad = self._incidence_t @ d_u
        grad /= SIGMA
        if self.anchor == "mean0":
            grad += 2.0 * MEAN0_WEIGHT * mean / self.n
        if order == 1:
            return value, grad, None

        # Second derivatives in u: likelihood (diagonal), prior (diagonal + low rank).
        if prior is not None:
            d2_u += prior[2]
        # mean0's Hessian is the constant 2 w / N^2 everywhere: the Laplacian starts from it.
        base = 2.0 * MEAN0_WEIGHT / self.n**2 if self.anchor == "mean0" else 0.0
        hess = self._laplacian(d2_u / SIGMA**2, base)
        if prior is not None:
            # factors^T middle factors (B^T D E + E^T D B + X^T M X), mapped to the scores
            # (J^T factors^T / SIGMA) and added in one product.
            factors, middle = prior[3]
            mapped = self._incidence_t @ factors.T  # (N, 3 G')
            hess += (mapped @ (middle / SIGMA**2)) @ mapped.T
        return value, grad, hess

    def _laplacian(self, pair: np.ndarray, base: float = 0.0) -> np.ndarray:
        """J_half^T diag(pair) J_half, the weighted graph Laplacian of the compared pairs,
        plus ``base`` in every entry (one pass over the N x N matrix instead of two)."""
        hess = np.full((self.n, self.n), base)
        flat = hess.reshape(-1)
        flat[self._flat_ij] = base - pair
        flat[self._flat_ji] = base - pair
        flat[:: self.n + 1] += np.bincount(self._i, pair, self.n) + np.bincount(
            self._j, pair, self.n
        )
        return hess

    def _prior_terms(
        self,
        u: np.ndarray,
        log_p: np.ndarray,
        log_not: np.ndarray,
        mills_p: np.ndarray,
        mills_not: np.ndarray,
        order: int,
    ) -> tuple:
        """pwcmp's Gaussian prior, grouped by distinct (k, n), and its derivatives in u_h.

        On all P positions a: prior_a = sum_g c_g w_ga with w_ga = L_g(P_a) / Z_g, a softmax
        over positions of Lambda_ga = k_g log P_a + (n_g - k_g) log(1 - P_a); value
        V = -sum_a log(prior_a + 0.1). With r_a = 1 / (prior_a + 0.1), s_g = sum_a r_a w_ga,
        m_ga = c_g w_ga (r_a - s_g), d_ga = dLambda_ga/du_a and e_ga = -d^2 Lambda_ga/du_a^2:

        * dV/du_a = -sum_g m_ga d_ga;
        * d^2V/du_a du_b = delta_ab [r_a^2 y_a^2 - sum_g m_ga (d_ga^2 - e_ga)]
          + (B^T E + E^T B + X^T T X)_ab, with B_ga = w_ga d_ga, X_ga = c_g B_ga,
          y_a = sum_g X_ga, E_ga = m_ga d_ga - c_g r_a^2 w_ga y_a and
          T_gh = sum_a r_a^2 w_ga w_ha.

        Both d and e are sums of two outer products (d_ga = k_g M(u_a) - (n_g - k_g)
        M(-u_a), M the inverse Mills ratio), so every sum over g above is a product of a
        few coefficient vectors with the G x H matrix of unnormalised weights W: one small
        matrix product replaces a dozen passes over G x H arrays.

        Mirror symmetry: at the mirror h + H of pair position h, Lambda_g = Lambda_g'(h)
        with g' = (n - k, n) the mirror group, so only the G x H half is computed. Z_g,
        the maxima, s_g and c_g are mirror-symmetric; prior_a, r_a and the diagonal take the
        same value at h and h + H; d, B, X and E change sign and move to g'. Folded onto
        u_h (J = [J_half; -J_half]), the gradient and diagonal are twice the half's, and the
        low-rank factors become F_g = F_g(h) + F_g'(h), identical for g and g': one row per
        unordered group pair {g, g'} (weight 2, or 1 when g = g').

        Returns (value,) for order 0, (value, dV/du_h) for order 1 and
        (value, dV/du_h, diagonal, (factors, middle)) for order 2, the low-rank Hessian in
        u_h being factors^T middle factors with middle = [[0, D, 0], [D, 0, 0], [0, 0, M]],
        D = diag(weight).
        """
        mirror, k, nk, c = self._mirror, self._k, self._nk, self._c
        w = np.multiply.outer(k, log_p)
        w += np.multiply.outer(nk, log_not)
        top = w.max(axis=1)
        top = np.maximum(top, top[mirror])
        np.exp(w - top[:, None], out=w)  # W: the weights before normalisation
        sums = w.sum(axis=1)
        alpha = 1.0 / (sums + sums[mirror])  # w_gh = alpha_g W_gh
        ca = c * alpha
        prior = ca @ w
        r = 1.0 / (prior + PRIOR_FLOOR)
        value = -2.0 * float(np.sum(np.log(prior + PRIOR_FLOOR)))
        if order == 0:
            return (value,)

        s = alpha * (w @ r)
        s += s[mirror]
        # Every sum over g weighs W by (r_h - s_g) (the m of the docstring) except y's:
        # with W' = W (r - s), sum_g m d = M a0 - M' a1 (M = M(u), M' = M(-u)) where
        # a = rows @ W' (the rows' coefficients c alpha k, c alpha (n - k), ...).
        weighted = w * r
        shifted = weighted - s[:, None] * w
        cak, cank = ca * k, ca * nk
        rows = [cak, cank] if order == 1 else [cak, cank, cak * k, cak * nk, cank * nk]
        a = np.stack(rows) @ shifted
        d_u = -2.0 * (mills_p * a[0] - mills_not * a[1])
        if order == 1:
            return value, d_u

        curve_p = mills_p * (u + mills_p)  # -(log Phi(u))''
        curve_n = mills_not * (mills_not - u)  # -(log Phi(-u))''
        v0, v1 = np.stack([cak, cank]) @ w
        y = mills_p * v0 - mills_not * v1
        # sum_g m (d^2 - e) = M^2 a2 - 2 M M' a3 + M'^2 a4 - curve_p a0 - curve_n a1
        m_d2_e = mills_p * mills_p * a[2]
        m_d2_e -= 2.0 * mills_p * mills_not * a[3]
        m_d2_e += mills_not * mills_not * a[4]
        m_d2_e -= curve_p * a[0]
        m_d2_e -= curve_n * a[1]
        r2 = r * r
        diagonal = 2.0 * (r2 * y * y - m_d2_e)
        b = np.multiply.outer(alpha * k, mills_p)
        b -= np.multiply.outer(alpha * nk, mills_not)
        b *= w  # B = w d
        t = (weighted @ weighted.T) * np.multiply.outer(alpha, alpha)  # sum_h r^2 W_gh W_g'h
        t += t[mirror][:, mirror]
        member = self._pair_member
        reps, mirrors = self._pair_reps, self._pair_mirrors
        g = member.shape[0]
        # Rows F_g(h) + F_g'(h) per pair {g, g'}. alpha, s and c are the same for g and g',
        # so E = c w ((r - s) d - r^2 y) folds to c ((r - s) F_B - alpha r^2 y (W_g + W_g')).
        factors = np.empty((3 * g, w.shape[1]))
        folded_b, folded_e, folded_x = factors[:g], factors[g : 2 * g], factors[2 * g :]
        np.add(b[reps], b[mirrors], out=folded_b)
        np.multiply(folded_b, r - s[reps][:, None], out=folded_e)
        folded_e -= np.multiply.outer(alpha[reps], r2 * y) * (w[reps] + w[mirrors])
        folded_e *= c[reps][:, None]
        np.multiply(folded_b, c[reps][:, None], out=folded_x)
        middle = self._pair_middle.copy()
        middle[2 * g :, 2 * g :] = member @ t @ member.T
        return value, d_u, diagonal, (factors, middle)

    def one_sided(self, at_most: float = 0.0) -> np.ndarray:
        """Conditions that were compared but lost, or won, at most ``at_most`` times.

        With 0 (never lost or never won) only the prior can pin them, far beyond their
        neighbours (see :mod:`scaling.optimum`). Returned as sorted indices.
        """
        wins = np.bincount(self.positions.rows, self.positions.wins, self.n)
        losses = np.bincount(self.positions.rows, self.positions.losses, self.n)
        compared = (wins + losses) > 0
        return np.flatnonzero(compared & (np.minimum(wins, losses) <= at_most))

    def coordinate_profile(self, q: np.ndarray, c: int, context: tuple | None = None):
        """The objective as a function of q[c] alone: returns ``f(xs) -> values``.

        The other scores stay at ``q``. The likelihood and mean0 terms are exact;
        so is the prior at the positions of condition c, normalisers included. The prior
        at all other positions depends on q[c] only through the G normalisers; that
        dependence is linearised in 1 / Z_g at ``q`` (exact value and slope at q[c]). The
        values are offset by a constant: only differences between them mean anything.
        ``context`` (from :meth:`profile_context`, possibly at slightly different scores)
        saves the O(G P) part when several conditions are profiled in turn; each value
        then costs O(G deg(c)).
        """
        first, second = np.flatnonzero(self._i == c), np.flatnonzero(self._j == c)
        pairs = np.concatenate([first, second])
        sign = np.concatenate([np.ones(first.size), -np.ones(second.size)])
        q_other = q[np.where(sign > 0, self._j[pairs], self._i[pairs])]
        pos = self.positions
        wins, losses = pos.wins[pairs], pos.losses[pairs]
        rest_sum = q.sum() - q[c]
        gaussian = self.prior == "gaussian"
        if gaussian:
            k, nk = self._k[:, None, None], self._nk[:, None, None]
            log_c = np.log(pos.group_count)[:, None]
            both, top, weight = self.profile_context(q) if context is None else context
            rest = np.ones(both.shape[1])
            rest[pairs] = 0.0  # both positions of c's pairs
            with np.errstate(divide="ignore"):  # no other position: log 0 = -inf is right
                log_rest = np.log(both @ rest) + top
                log_slope = np.log(both @ (weight * rest) * pos.group_count) + top

        def profile(xs: np.ndarray) -> np.ndarray:
            u = sign * (np.asarray(xs, dtype=float)[:, None] - q_other) / SIGMA  # (X, deg)
            log_p, log_not, _, _ = normal_terms(u)
            values = -2.0 * (log_p @ wins + log_not @ losses)
            if self.anchor == "mean0":
                mean = (rest_sum + xs) / self.n
                values += MEAN0_WEIGHT * mean * mean
            if not gaussian:
                return values
            # Lambda_ga at c's positions (G, X, 2 deg): each pair's position, then its mirror.
            lam = np.concatenate([k * log_p + nk * log_not, k * log_not + nk * log_p], axis=2)
            lam_top = lam.max(axis=2)  # (G, X)
            scaled = np.exp(lam - lam_top[:, :, None], out=lam)  # one exponential, both sums
            log_z = np.logaddexp(log_rest[:, None], np.log(scaled.sum(axis=2)) + lam_top)
            prior = np.einsum("gxd,gx->xd", scaled, np.exp(log_c + lam_top - log_z))
            values -= np.sum(np.log(prior + PRIOR_FLOOR), axis=1)
            # Other positions: -sum_a log(sum_g c_g e^Lambda_ga / Z_g + 0.1), linearised.
            values -= np.exp(log_slope[:, None] - log_z).sum(axis=0)
            return values

        return profile

    def profile_context(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The O(G P) part of :meth:`coordinate_profile`: e^(Lambda_ga - max_a Lambda_ga)
        summed over the two positions of each pair (G x pairs), that maximum, and
        1 / (prior_a + 0.1) per pair (the same at both positions)."""
        log_p, log_not, _, _ = self.normal_terms(q)
        # Computed on the pair half: the mirror position of h carries group g's weight at h
        # for the mirror group of g (see _prior_terms).
        mirror = self._mirror
        half = np.multiply.outer(self._k, log_p)
        half += np.multiply.outer(self._nk, log_not)
        top = half.max(axis=1)
        top = np.maximum(top, top[mirror])
        np.exp(half - top[:, None], out=half)
        sums = half.sum(axis=1)
        weight = 1.0 / ((self._c / (sums + sums[mirror])) @ half + PRIOR_FLOOR)
        return half + half[mirror], top, weight

    def likelihood_hessian(self, q: np.ndarray) -> np.ndarray:
        """Hessian of the likelihood and mean0 terms (exact without a prior).

        Positive semi-definite everywhere (definite with ``mean0`` on a connected graph
        while no pair's difference has underflowed its curvature); whitens L-BFGS and
        serves as a convex model of the prior objective.
        """
        u = (q[self._i] - q[self._j]) / SIGMA
        _, _, d2_u = pair_likelihood(u, self._wins, self._losses, normal_terms(u), 2)
        base = 2.0 * MEAN0_WEIGHT / self.n**2 if self.anchor == "mean0" else 0.0
        return self._laplacian(d2_u / SIGMA**2, base)
