"""Connectivity of comparison graphs.

Scores are comparable only within a connected component of the graph whose edges are the
compared pairs: nothing in the data ties the offset of one component to another. jodkit
scales each component on its own and reports the membership; ``link_like_pwcmp`` reproduces
pwcmp's workaround (join the best condition of every component with one vote each way) for
users who need pwcmp's numbers.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components


def _win_graph(counts: np.ndarray) -> csr_matrix:
    """Directed graph with an edge i -> j where i beat j at least once, built directly in
    CSR form (the flat indices of the winners list the edges row by row)."""
    won = counts > 0
    n = counts.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.count_nonzero(won, axis=1), out=indptr[1:])
    cols = (np.flatnonzero(won) % n).astype(np.int32)
    return csr_matrix((np.ones(cols.size), cols, indptr), shape=(n, n))


def _first_and_sizes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest member index and size of every label 0 .. max (np.unique without sorting)."""
    sizes = np.bincount(labels)
    first = np.full(sizes.size, labels.size)
    np.minimum.at(first, labels, np.arange(labels.size))
    return first, sizes


def _largest_first(raw: np.ndarray) -> np.ndarray:
    """Renumber component labels by size, largest first; ties go to the lower first index."""
    first, sizes = _first_and_sizes(raw)
    order = np.lexsort((first, -sizes))
    renumber = np.empty_like(order)
    renumber[order] = np.arange(order.size)
    return renumber[raw]


def component_labels(counts: np.ndarray) -> np.ndarray:
    """Component of every condition, numbered by size: 0 is the largest.

    Ties in size go to the component holding the lower condition index. A condition never
    compared forms a component of its own. (The components of the compared pairs are the
    weak components of the win graph.)
    """
    _, raw = connected_components(_win_graph(counts), directed=True, connection="weak")
    return _largest_first(raw)


def components_and_cores(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`component_labels`, and the determined core (:func:`determined_core`) of
    every component at once, from one graph: what :func:`scaling.api.pw_scale` needs."""
    graph = _win_graph(counts)
    _, strong = connected_components(graph, directed=True, connection="strong")
    labels = _single_component_around_largest(counts, strong)
    if labels is None:
        _, weak = connected_components(graph, directed=True, connection="weak")
        labels = _largest_first(weak)
    return labels, _largest_strong(strong, labels)


def _single_component_around_largest(counts: np.ndarray, strong: np.ndarray) -> np.ndarray | None:
    """All zeros when every condition is in the largest strongly connected component or
    compared with one of its members (then the graph is connected: the common case, a
    few one-sided conditions around a core); None when that does not settle it."""
    in_largest = strong == np.argmax(np.bincount(strong))
    outside = np.flatnonzero(~in_largest)
    if outside.size > 0:
        inside = np.flatnonzero(in_largest)
        touching = (counts[np.ix_(outside, inside)] + counts[np.ix_(inside, outside)].T) > 0
        if not touching.any(axis=1).all():
            return None
    return np.zeros(strong.size, dtype=np.intp)


def _largest_strong(strong: np.ndarray, within: np.ndarray) -> np.ndarray:
    """Membership of the largest strongly connected component inside each group of
    ``within`` (ties to the lowest condition index); none where every one is a single
    condition (no condition both beat and was beaten within a cycle)."""
    first, sizes = _first_and_sizes(strong)
    group = within[first]
    order = np.lexsort((first, -sizes, group))  # per group: largest, then lowest index
    ordered = group[order]
    leaders = order[np.concatenate([[True], ordered[1:] != ordered[:-1]])]
    chosen = np.zeros(first.size, dtype=bool)
    chosen[leaders[sizes[leaders] > 1]] = True
    return chosen[strong]


def link_like_pwcmp(counts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """pwcmp's patch for disconnected graphs: tie the components' best conditions together.

    The best condition of each component is chosen by pwcmp's crude initial estimate (the
    ISO 20462 arcsine transform of the win ratios), and every pair of these is given one
    vote each way. The resulting scores are comparable across components only by fiat.
    """
    counts = np.asarray(counts, dtype=float)
    totals = counts + counts.T
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(totals > 0, counts / totals, 0.5)
    estimate = np.sum(-(12.0 / np.pi * np.arcsin(np.sqrt(ratio)) - 3.0) / 2.0, axis=0)
    linked = counts.copy()
    best = []
    for component in range(labels.max() + 1):
        members = np.flatnonzero(labels == component)
        best.append(members[np.argmax(estimate[members])])
    for a in range(len(best)):
        for b in range(a + 1, len(best)):
            linked[best[a], best[b]] = 1.0
            linked[best[b], best[a]] = 1.0
    return linked


def determined_core(counts: np.ndarray) -> np.ndarray:
    """Conditions whose scores the data pin, relative to each other: Ford's condition.

    Maximum-likelihood scores exist exactly when the win graph (an edge i -> j when i beat j
    at least once) is strongly connected (Ford, 1957): otherwise some set of conditions beat
    every other condition they met, and nothing bounds how far above them it lies. A
    condition that never lost is the simplest case, but two groups where one always beat the
    other are another, although every condition has wins and losses. The core is the largest
    strongly connected component (ties go to the one holding the lowest condition index).
    """
    _, strong = connected_components(_win_graph(counts), directed=True, connection="strong")
    return _largest_strong(strong, np.zeros(counts.shape[0], dtype=np.intp))
