"""Pairwise comparisons to JOD scales: Thurstone Case V, compatible with pwcmp.

Inputs: the trial table or a count matrix; output: the scale table (see
:mod:`scaling.formats`). The main entry points::

    import scaling
    table = scaling.scale(trials_df, by=["scene", "attribute"], bootstrap=500)
    result = scaling.pw_scale(counts)            # one count matrix, numpy in and out
    screening = scaling.screen_observers(trials_df)
"""

from scaling.api import (
    DisconnectedGraphWarning,
    FixedSpec,
    OrderingSpec,
    PwScaleResult,
    pw_scale,
    scale,
    scale_counts,
)
from scaling.bootstrap import BootstrapJob, bootstrap_many, bootstrap_scores
from scaling.errors import InputError
from scaling.io import (
    counts_from_trials,
    read_count_matrix,
    read_table,
    read_trials,
    write_table,
)
from scaling.likelihood import SIGMA, ThurstoneObjective
from scaling.outliers import screen_observers
from scaling.simulate import simulate_trials
from scaling.solvers import (
    ChordStart,
    FixedScore,
    Ordering,
    chord_start,
    solve_cvxpy,
    solve_exact,
)

__all__ = [
    "SIGMA",
    "BootstrapJob",
    "ChordStart",
    "DisconnectedGraphWarning",
    "FixedScore",
    "FixedSpec",
    "InputError",
    "Ordering",
    "OrderingSpec",
    "PwScaleResult",
    "ThurstoneObjective",
    "bootstrap_many",
    "bootstrap_scores",
    "chord_start",
    "counts_from_trials",
    "pw_scale",
    "read_count_matrix",
    "read_table",
    "read_trials",
    "scale",
    "scale_counts",
    "screen_observers",
    "simulate_trials",
    "solve_cvxpy",
    "solve_exact",
    "write_table",
]
