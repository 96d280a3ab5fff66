"""Pairwise comparisons to JOD scales: Thurstone Case V, compatible with pwcmp.

Inputs: the trial table or a count matrix; output: the scale table (see
:mod:`scaling.formats`). The main entry points::

    import scaling
    table = scaling.scale(trials_df, by=["scene", "attribute"], bootstrap=500)
    result = scaling.pw_scale(counts)            # one count matrix, numpy in and out
    screening = scaling.screen_observers(trials_df)
    pairs = scaling.select_pairs(trials_df, by=["scene"])  # what to judge next

The names below load on first use (PEP 562), so that importing a light module of this
package (``scaling.errors``, ``scaling.cli``) does not import numpy, pandas and cvxpy:
``jod --help`` and ``jod scale --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "scaling.api": (
        "DisconnectedGraphWarning",
        "FixedSpec",
        "OrderingSpec",
        "PwScaleResult",
        "UndeterminedScoresWarning",
        "pw_scale",
        "scale",
        "scale_counts",
    ),
    "scaling.config": ("ScaleConfig",),
    "scaling.bootstrap": ("BootstrapJob", "bootstrap_many", "bootstrap_scores"),
    "scaling.errors": ("InputError",),
    "scaling.io": (
        "counts_from_trials",
        "read_count_matrix",
        "read_table",
        "read_trials",
        "write_table",
    ),
    "scaling.likelihood": ("SIGMA", "ThurstoneObjective"),
    "scaling.outliers": ("screen_observers",),
    "scaling.select": ("plan_batch", "select_cross_pairs", "select_pairs"),
    "scaling.simulate": ("simulate_trials",),
    "scaling.solvers": (
        "ChordStart",
        "FixedScore",
        "Ordering",
        "chord_start",
        "solve_cvxpy",
        "solve_exact",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'scaling' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
