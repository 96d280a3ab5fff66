"""The values each scaling option takes: one definition for the API's checks and for the
command line's choices.

Only the standard library here: ``jod scale --help`` reads these without loading numpy or
pandas.
"""

from enum import Enum

PRIORS = ("gaussian", "none")
ANCHORS = ("mean0", "fix0")
TIE_POLICIES = ("drop", "split")
SOLVERS = ("exact", "cvxpy")
DISCONNECTED_POLICIES = ("separate", "pwcmp")
RESAMPLE_UNITS = ("observer", "trial")
SELECTION_METHODS = ("eig", "random", "round_robin")


def choice_type(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A command-line option type taking one of ``values``: ``--help`` lists them and the
    command line refuses any other (every stage's CLI builds its choices with this)."""
    return Enum(name, {value: value for value in values}, type=str)


INTERVALS = ("percentile", "expanded")
