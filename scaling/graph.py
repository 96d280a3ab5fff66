"""Connectivity of comparison graphs.

Scores are comparable only within a connected component of the graph whose edges are the
compared pairs: nothing in the data ties the offset of one component to another. jodkit
scales each component on its own and reports the membership; ``link_like_pwcmp`` reproduces
pwcmp's workaround (join the best condition of every component with one vote each way) for
users who need pwcmp's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from scaling.likelihood import arcsine_scores
from scaling.thurstone import component_labels as thurstone_components
from scaling.thurstone import first_and_sizes


def _win_graph(counts: np.ndarray) -> csr_matrix:
    """Directed graph with an edge i -> j where i beat j at least once, built directly in
    CSR form (the flat indices of the winners list the edges row by row)."""
    won = counts > 0
    n = counts.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.count_nonzero(won, axis=1), out=indptr[1:])
    cols = (np.flatnonzero(won) % n).astype(np.int32)
    return csr_matrix((np.ones(cols.size), cols, indptr), shape=(n, n))


def component_labels(counts: np.ndarray) -> np.ndarray:
    """Component of every condition of a count matrix, numbered by size: 0 is the largest
    (:func:`scaling.thurstone.component_labels` of the compared pairs). Ties in size go to
    the component holding the lower condition index; a condition never compared forms a
    component of its own."""
    winners, losers = np.nonzero(counts)
    return thurstone_components(counts.shape[0], winners, losers)


def _core_label(strong: np.ndarray) -> int:
    """The largest strongly connected component (ties to the one holding the lowest
    condition index), or -1 where every one is a single condition (no cycle of wins)."""
    first, sizes = first_and_sizes(strong)
    largest = int(np.lexsort((first, -sizes))[0])
    return largest if sizes[largest] > 1 else -1


def link_like_pwcmp(counts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """pwcmp's patch for disconnected graphs: tie the components' best conditions together.

    The best condition of each component is chosen by pwcmp's crude initial estimate (the
    ISO 20462 arcsine transform of the win ratios), and every pair of these is given one
    vote each way. The resulting scores are comparable across components only by fiat.
    """
    counts = np.asarray(counts, dtype=float)
    estimate = arcsine_scores(counts)
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
    strongly connected component (ties go to the one holding the lowest condition index;
    none where every such component is a single condition). ``counts`` is one connected
    comparison graph.
    """
    order = WinOrder.from_counts(counts)
    return order.strong == order.core


@dataclass(frozen=True)
class WinOrder:
    """The strongly connected components of one connected win graph and their order.

    ``strong`` labels each condition's strongly connected component (SCC); ``reach[a, b]``
    is True when SCC a beat SCC b through a chain of wins (and on the diagonal). Between two
    different SCCs every comparison went one way: the data order them. ``core`` is the SCC
    label of the determined core (:func:`determined_core`), or -1 when there is none.

    A set of conditions that beat every condition outside it that it met (an *up-set*: an
    SCC with everything that reaches it) can move up together without losing any
    likelihood: these are the only directions in which pwcmp's objective can fail to have
    a finite optimum (:mod:`scaling.optimum`).
    """

    strong: np.ndarray
    reach: np.ndarray
    core: int

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> WinOrder:
        """The order of the win graph of ``counts`` (i -> j when i beat j at least once)."""
        n_scc, strong = connected_components(_win_graph(counts), directed=True, connection="strong")
        won = counts > 0
        winner, loser = np.nonzero(won & (strong[:, None] != strong[None, :]))
        edges = np.unique(strong[winner] * n_scc + strong[loser])
        reach = np.eye(n_scc, dtype=bool)
        children = [[] for _ in range(n_scc)]
        parents_left = np.zeros(n_scc, dtype=np.intp)
        for edge in edges:
            children[edge // n_scc].append(edge % n_scc)
            parents_left[edge % n_scc] += 1
        # Kahn's topological order, then the closure from the bottom up.
        order, ready = [], list(np.flatnonzero(parents_left == 0))
        while ready:
            node = ready.pop()
            order.append(node)
            for child in children[node]:
                parents_left[child] -= 1
                if parents_left[child] == 0:
                    ready.append(child)
        for node in reversed(order):
            if children[node]:
                reach[node] |= np.logical_or.reduce(reach[children[node]], axis=0)
        return cls(strong, reach, _core_label(strong))

    @property
    def n_components(self) -> int:
        return self.reach.shape[0]

    def up_set(self, component: int) -> np.ndarray:
        """Conditions of SCC ``component`` and of every SCC that beat it through a chain."""
        return self.reach[self.strong, component]

    def down_set(self, component: int) -> np.ndarray:
        """Conditions of SCC ``component`` and of every SCC it beat through a chain."""
        return self.reach[component, self.strong]

    def free_directions(self, component: int) -> tuple[bool, bool]:
        """Whether SCC ``component`` can move up, and down, without a loss of likelihood
        relative to the core (relative to the rest, when there is no core): its up-set
        (down-set) does not hold the core, or is not every condition."""
        if self.core >= 0:
            return (not self.reach[self.core, component], not self.reach[component, self.core])
        up, down = self.up_set(component), self.down_set(component)
        return (not up.all(), not down.all())

    def ordered_pairs(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(winner, loser) of every compared pair of conditions in different SCCs: all
        its comparisons went one way. The data's order, which no placement may break."""
        return np.nonzero((counts > 0) & (self.strong[:, None] != self.strong[None, :]))
