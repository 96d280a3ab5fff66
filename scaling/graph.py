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


def component_labels(counts: np.ndarray) -> np.ndarray:
    """Component of every condition, numbered by size: 0 is the largest.

    Ties in size go to the component holding the lower condition index. A condition never
    compared forms a component of its own.
    """
    compared = (counts + counts.T) > 0
    _, raw = connected_components(csr_matrix(compared), directed=False)
    sizes = np.bincount(raw)
    first = np.array([np.flatnonzero(raw == c)[0] for c in range(sizes.size)])
    order = np.lexsort((first, -sizes))
    renumber = np.empty_like(order)
    renumber[order] = np.arange(order.size)
    return renumber[raw]


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
    _, labels = connected_components(csr_matrix(counts > 0), directed=True, connection="strong")
    sizes = np.bincount(labels)
    biggest = np.flatnonzero(sizes == sizes.max())
    first = [np.flatnonzero(labels == c)[0] for c in biggest]
    core = labels == biggest[int(np.argmin(first))]
    if core.sum() == 1 and sizes.max() == 1:
        core[:] = False  # no condition was both beaten and beating within a cycle
    return core
