"""Observer screening (pwcmp's ``pw_outlier_analysis``).

For each observer, the data of all *other* observers are scaled, and we ask how probable
the observer's own answers are under those scores: the log10 binomial probability of their
counts for every pair they compared, summed over the groups (scenes, attributes) that share
observers and divided by the number of such pairs, so that observers with more trials are
not penalised. An observer far below the others' first quartile, by more than 1.5
inter-quartile ranges, deserves a look. With few trials per observer, chance alone pushes
honest observers past 1.5: the table reports ``n_trials`` next to the flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import pandas as pd

from scaling.errors import InputError
from scaling.thurstone import log_binomial_probability

THRESHOLD = 1.5
FEW_TRIALS_NOTE = (
    "dist_L >= 1.5 deserves investigation, not automatic rejection: with few trials per "
    "observer, honest observers exceed 1.5 by chance; compare n_trials."
)

SolveFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def log10_binomial(
    wins: np.ndarray, totals: np.ndarray, scores_i: np.ndarray, scores_j: np.ndarray
) -> np.ndarray:
    """log10 P(wins of i over j | totals, Thurstone scores)
    (:func:`scaling.thurstone.log_binomial_probability`, in base 10 as pwcmp reports it)."""
    return log_binomial_probability(wins, totals, scores_i - scores_j) / np.log(10.0)


def observer_log_likelihoods(
    group_counts: Sequence[np.ndarray], solve: SolveFn
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out log10 likelihood of every observer's counts.

    Parameters
    ----------
    group_counts : sequence of numpy.ndarray
        One stack per group, shape (U, N_g, N_g), with the same U observers in the same
        order in every stack (zeros where an observer did not take part).
    solve : callable
        ``solve(D, q0) -> q``: scales the others' summed counts (warm-started from the
        scores of all observers' data).

    Returns
    -------
    log_likelihood : numpy.ndarray
        Shape (U,): summed log10 probabilities over compared pairs (i < j) of all groups.
    n_pairs : numpy.ndarray
        Shape (U,): number of those pairs.
    """
    n_units = group_counts[0].shape[0]
    total = np.zeros(n_units)
    n_pairs = np.zeros(n_units, dtype=int)
    for stack in group_counts:
        all_counts = stack.sum(axis=0)
        q_all = solve(all_counts, None)
        i, j = np.triu_indices(stack.shape[1], k=1)
        for o in range(n_units):
            own = stack[o]
            totals = own[i, j] + own[j, i]
            compared = totals > 0
            if not compared.any():
                continue
            q = solve(all_counts - own, q_all)
            ii, jj = i[compared], j[compared]
            total[o] += log10_binomial(own[ii, jj], totals[compared], q[ii], q[jj]).sum()
            n_pairs[o] += int(compared.sum())
    return total, n_pairs


def distance_below_quartile(values: np.ndarray) -> np.ndarray:
    """pwcmp's ``dist_L``: (Q1 - L) / IQR for values below the first quartile, else 0.

    Quartiles follow MATLAB's ``quantile`` (numpy ``method="hazen"``). NaN values (no
    compared pair) are left out of the quartiles and get NaN. When the inter-quartile range
    is 0, values below Q1 get an infinite distance.
    """
    q1, q3 = np.nanpercentile(values, [25, 75], method="hazen")
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(values < q1, (q1 - values) / (q3 - q1), 0.0)
    return np.where(np.isnan(values), np.nan, dist)


def _scale(counts: np.ndarray, q0: np.ndarray | None, prior: str, anchor: str) -> np.ndarray:
    """The others' scores by the scale's own estimator (pwcmp's optimum where finite,
    placement where not), quietly: screening reports no scale."""
    import warnings

    from scaling.api import _pw_scale

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _pw_scale(counts, prior, anchor, q0=q0).jod


def screen_observers(
    trials: pd.DataFrame,
    by: Sequence[str] | None = None,
    *,
    ties: str = "drop",
    prior: str = "gaussian",
    anchor: str = "mean0",
    threshold: float = THRESHOLD,
    solve: SolveFn | None = None,
) -> pd.DataFrame:
    """Screen the observers of a trial table.

    Parameters
    ----------
    trials : pandas.DataFrame
        Trial table (``scaling.formats``).
    by : sequence of str, optional
        Group columns; each group is scaled on its own and the observers' likelihoods are
        summed over groups. Each named column must exist; the default is ``scene`` and
        ``attribute``, those present.
    ties : {"drop", "split"}
        Tie policy for building the counts.
    prior, anchor : str
        Scaling options for the others' data (pwcmp's defaults).
    threshold : float
        ``flagged`` is ``dist_L >= threshold``.
    solve : callable, optional
        ``solve(D, q0) -> q`` replacing the default exact solver.

    Returns
    -------
    pandas.DataFrame
        ``observer, log_likelihood_per_pair, dist_L, flagged, n_trials, n_pairs``, sorted by
        ``dist_L`` (largest first); ``attrs["jodkit"]["screening"]`` holds the settings and
        a note on reading the flag.
    """
    from scaling.io import group_columns, validate_trials

    if by is None:
        keys = [k for k in ("scene", "attribute") if k in trials.columns]
    else:
        keys = group_columns(by, "trials")
    trials = validate_trials(trials, by=keys, source="trials")
    observers = sorted(trials["observer"].astype(str).unique())
    if len(observers) < 3:
        raise InputError(
            f"screening needs at least 3 observers, found {len(observers)}",
            field="observer",
        )
    from scaling.io import counts_from_trials

    solve = solve or partial(_scale, prior=prior, anchor=anchor)
    by_observer = trials.assign(observer=trials["observer"].astype(str))
    groups = by_observer.groupby(keys, sort=True) if keys else [((), by_observer)]
    index = {name: o for o, name in enumerate(observers)}
    stacks = []
    for _, group in groups:
        conditions = sorted(set(group["condition_A"]) | set(group["condition_B"]))
        stack = np.zeros((len(observers), len(conditions), len(conditions)))
        for name, own in group.groupby("observer", sort=False):
            stack[index[name]] = counts_from_trials(own, conditions, ties)
        stacks.append(stack)
    log_likelihood, n_pairs = observer_log_likelihoods(stacks, solve)
    per_pair = np.divide(
        log_likelihood, n_pairs, out=np.full(len(observers), np.nan), where=n_pairs > 0
    )
    dist = distance_below_quartile(per_pair)
    table = pd.DataFrame(
        {
            "observer": observers,
            "log_likelihood_per_pair": per_pair,
            "dist_L": dist,
            "flagged": dist >= threshold,
            "n_trials": by_observer.groupby("observer").size().reindex(observers).to_numpy(),
            "n_pairs": n_pairs,
        }
    )
    table = table.sort_values("dist_L", ascending=False, kind="stable").reset_index(drop=True)
    table.attrs["jodkit"] = {
        "screening": {
            "by": keys,
            "ties": ties,
            "prior": prior,
            "anchor": anchor,
            "threshold": threshold,
            "quartiles": "hazen",
            "note": FEW_TRIALS_NOTE,
        }
    }
    return table
