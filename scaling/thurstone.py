"""The Thurstone Case V core shared by every stage: the unit, the normal-distribution terms,
the pair likelihood, the percentile interval and the components of a comparison graph.

One definition of each, imported by scaling (the objective, outlier screening, simulation,
the bootstrap), alignment's joint model and the annotation app's dashboard:

* :data:`SIGMA`, the JOD unit: P(i chosen over j) = Phi((q_i - q_j) / SIGMA), so that a
  difference of 1 JOD is chosen 75% of the time (pwcmp's 1.4826);
* :func:`preference_probability` and :func:`normal_terms` (log Phi and inverse Mills
  ratios, accurate in both tails);
* :func:`pair_negative_log_likelihood` (value, gradient and curvature of the binomial
  Thurstone likelihood of counted pairs) and :func:`log_binomial_probability`;
* :func:`percentile_interval`, the one confidence-interval recipe (MATLAB's ``prctile``
  percentiles, as pwcmp's ``pw_scale_bootstrp``), which also takes one-sided samples, and
  :func:`expanded_alpha`, its small-sample correction;
* :func:`component_labels` and :func:`label_components`, the connected components of a
  comparison graph, largest first.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import erfcx, gammaln, ndtr
from scipy.stats import t as student_t

SIGMA = 1.4826
"""Standard deviation of the Thurstone difference, in JOD: Phi(1 / SIGMA) = 0.75."""

_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_INV_SQRT_2 = 1.0 / np.sqrt(2.0)


def preference_probability(difference: np.ndarray | float) -> np.ndarray:
    """P(the first condition is chosen) for a score difference in JOD: Phi(d / SIGMA)."""
    return ndtr(np.asarray(difference, dtype=float) / SIGMA)


class NormalTerms(NamedTuple):
    """log Phi(u), log Phi(-u) and the inverse Mills ratios phi(u) / Phi(u) and
    phi(u) / Phi(-u), elementwise (see :func:`normal_terms`)."""

    log_p: np.ndarray
    log_not: np.ndarray
    mills_p: np.ndarray
    mills_not: np.ndarray


def normal_terms(u: np.ndarray) -> NormalTerms:
    """The standard normal terms every Thurstone likelihood needs, from one ``erfcx``.

    ``u`` is a standardised difference (q_i - q_j) / SIGMA. With z = |u| / sqrt(2) and
    x = erfcx(z): the tail Phi(-|u|) = x e^(-z^2) / 2, so log Phi(-|u|) = log(x / 2) - z^2
    and phi(u) / Phi(-|u|) = sqrt(2 / pi) / x exactly, and log Phi(|u|) =
    log1p(-Phi(-|u|)). Accurate to a few ulp for every finite u (erfcx is scaled: no
    underflow), at about half the cost of two ``scipy.special.log_ndtr`` calls.
    """
    z = np.abs(u) * _INV_SQRT_2
    x = erfcx(z)
    gauss = np.exp(-z * z)
    tail = 0.5 * x * gauss
    log_tail = np.log(0.5 * x) - z * z
    log_body = np.log1p(-tail)
    mills_tail = _SQRT_2_OVER_PI / x
    mills_body = _INV_SQRT_2PI * gauss / (1.0 - tail)
    positive = u >= 0.0
    return NormalTerms(
        np.where(positive, log_body, log_tail),
        np.where(positive, log_tail, log_body),
        np.where(positive, mills_body, mills_tail),
        np.where(positive, mills_tail, mills_body),
    )


def pair_negative_log_likelihood(
    u: np.ndarray,
    wins: np.ndarray,
    losses: np.ndarray,
    order: int = 1,
    normal: NormalTerms | None = None,
) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """-sum(wins log Phi(u) + losses log Phi(-u)) over pairs, with derivatives in u.

    Parameters
    ----------
    u : array
        Standardised differences (q_i - q_j) / SIGMA, one per pair.
    wins, losses : array
        Times i was chosen over j, and j over i (halves allowed).
    order : {0, 1, 2}
        0: the value only; 1: and dV/du; 2: and d^2V/du^2 (each pair's term depends on its
        own u only, so the second derivative is a vector).
    normal : NormalTerms, optional
        :func:`normal_terms` (u), when already known.

    The binomial coefficients are left out (constant in the scores); see
    :func:`log_binomial_probability` for the probability of the counts themselves.
    """
    log_p, log_not, mills_p, mills_not = normal_terms(u) if normal is None else normal
    value = -float(np.dot(wins, log_p) + np.dot(losses, log_not))
    if order == 0:
        return value, None, None
    d_u = losses * mills_not - wins * mills_p
    if order == 1:
        return value, d_u, None
    # -(log Phi(u))'' = M(u) (u + M(u)) and -(log Phi(-u))'' = M(-u) (M(-u) - u).
    d2_u = wins * mills_p * (u + mills_p) + losses * mills_not * (mills_not - u)
    return value, d_u, d2_u


def log_binomial_probability(
    wins: np.ndarray, totals: np.ndarray, difference: np.ndarray
) -> np.ndarray:
    """Natural log of P(``wins`` of ``totals`` | score ``difference`` in JOD), per pair.

    The binomial probability of the counts under the Thurstone model, in log space
    throughout (pwcmp's ``log(max(binopdf(...), 1e-200))`` equals it where its floor is
    not reached and stays finite where it is).
    """
    log_p, log_not, _, _ = normal_terms(np.asarray(difference, dtype=float) / SIGMA)
    log_choose = gammaln(totals + 1.0) - gammaln(wins + 1.0) - gammaln(totals - wins + 1.0)
    return log_choose + wins * log_p + (totals - wins) * log_not


def percentile_interval(
    lower: np.ndarray,
    upper: np.ndarray | None = None,
    alpha: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """The central ``1 - alpha`` percentile interval of bootstrap samples, per column.

    Percentiles follow MATLAB's ``prctile`` (numpy ``method="hazen"``), as pwcmp's
    ``pw_scale_bootstrp``. NaN samples (a score left undefined in a resample) are left out;
    a column with none defined gets NaN.

    Samples may be one-sided: ``lower`` holds each sample's lowest possible value and
    ``upper`` its highest (default: ``lower``, ordinary point samples). A sample that is
    only bounded below has ``upper = +inf``. The interval runs from the ``alpha / 2``
    percentile of ``lower`` to the ``1 - alpha / 2`` percentile of ``upper``, so it becomes
    one-sided (an infinite end) once ``alpha / 2`` of the samples or more are unbounded on
    that side, and is never narrower than the samples allow.

    Parameters
    ----------
    lower : array, shape (samples,) or (samples, columns)
    upper : array of the same shape, optional
    alpha : float
        0.05 gives the 2.5 and 97.5 percentiles.

    Returns
    -------
    (low, high) : arrays with one value per column
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    lower = np.asarray(lower, dtype=float)
    upper = lower if upper is None else np.asarray(upper, dtype=float)
    if upper.shape != lower.shape:
        raise ValueError(f"lower and upper differ in shape: {lower.shape}, {upper.shape}")
    return _hazen(lower, 100.0 * alpha / 2.0), _hazen(upper, 100.0 * (1.0 - alpha / 2.0))


def expanded_alpha(alpha: float, units: int) -> float:
    """The tail probability that gives the *expanded* percentile interval of a bootstrap
    over ``units`` resampling units (observers): the percentiles at
    Phi(-sqrt(U / (U - 1)) t_{1 - alpha / 2, U - 1}) and its complement instead of
    alpha / 2 (Hesterberg, 2015). A percentile bootstrap over few units is too narrow (the
    resampled spread is (U - 1) / U of the true one, and its tails are normal where
    Student's t is due); this widens it as a t interval would, with the same percentile
    rule. ``units`` below 2 leave ``alpha`` as it is."""
    if units < 2:
        return alpha
    quantile = student_t.ppf(1.0 - alpha / 2.0, units - 1)
    return float(2.0 * ndtr(-np.sqrt(units / (units - 1.0)) * quantile))


def _hazen(samples: np.ndarray, percent: float) -> np.ndarray:
    """numpy's ``nanpercentile(..., method="hazen")`` along axis 0, exact with infinities
    (numpy interpolates inf - inf to NaN when both neighbours are infinite)."""
    ordered = np.sort(samples, axis=0)  # NaN last
    count = np.sum(~np.isnan(ordered), axis=0)
    rank = np.clip(count * percent / 100.0 + 0.5, 1.0, np.maximum(count, 1)) - 1.0
    below = np.floor(rank).astype(np.intp)
    above = np.minimum(below + 1, np.maximum(count - 1, 0))
    fraction = rank - below
    a = np.take_along_axis(ordered, below[None, ...], axis=0)[0]
    b = np.take_along_axis(ordered, above[None, ...], axis=0)[0]
    with np.errstate(invalid="ignore"):
        value = np.where((fraction == 0.0) | (a == b), a, a + fraction * (b - a))
    value = np.where(a == -np.inf, -np.inf, value)  # between -inf and anything: -inf
    value = np.where((b == np.inf) & (fraction > 0.0), np.inf, value)
    return np.where(count > 0, value, np.nan)


def component_labels(n_nodes: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Connected component of each of ``n_nodes`` nodes joined by the edges
    (``first[k]``, ``second[k]``), numbered by size: 0 is the largest, ties to the
    component holding the lowest node index. A node without edges is a component alone."""
    first, second = np.asarray(first, dtype=np.intp), np.asarray(second, dtype=np.intp)
    graph = coo_matrix((np.ones(first.size), (first, second)), shape=(n_nodes, n_nodes))
    _, raw = connected_components(graph, directed=False)
    return largest_first(raw)


def first_and_sizes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest member index and size of every label 0 .. max (np.unique without sorting)."""
    sizes = np.bincount(labels)
    first = np.full(sizes.size, labels.size)
    np.minimum.at(first, labels, np.arange(labels.size))
    return first, sizes


def largest_first(raw: np.ndarray) -> np.ndarray:
    """Renumber component labels by size, largest first; ties go to the lower first index."""
    first, sizes = first_and_sizes(raw)
    order = np.lexsort((first, -sizes))
    renumber = np.empty_like(order)
    renumber[order] = np.arange(order.size)
    return renumber[raw]


def label_components(
    nodes: Sequence[Hashable], edges: Iterable[tuple[Hashable, Hashable]]
) -> dict[Hashable, int]:
    """:func:`component_labels` for named nodes (image ids, scenes): node -> component,
    0 the largest. An edge naming a node missing from ``nodes`` raises KeyError."""
    index = {node: k for k, node in enumerate(nodes)}
    pairs = np.array([(index[a], index[b]) for a, b in edges], dtype=np.intp).reshape(-1, 2)
    labels = component_labels(len(index), pairs[:, 0], pairs[:, 1])
    return {node: int(labels[k]) for node, k in index.items()}
