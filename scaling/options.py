"""The values each scaling option takes: one definition for the API's checks and for the
command line's choices.

No imports here: ``jod scale --help`` reads these without loading numpy or pandas.
"""

PRIORS = ("gaussian", "none")
ANCHORS = ("mean0", "fix0")
TIE_POLICIES = ("drop", "split")
SOLVERS = ("exact", "cvxpy")
DISCONNECTED_POLICIES = ("separate", "pwcmp")
RESAMPLE_UNITS = ("observer", "trial")
SELECTION_METHODS = ("eig", "random", "round_robin")
