"""The values alignment's options take: one definition for the stage's checks and for the
command line's choices.

No imports here: ``jod align --help`` reads these without loading numpy or pandas.
"""

LINE_METHODS = ("paper", "weighted", "eiv", "offset")
"""The straight-line fits of ``alignment.fits``."""
NEEDS_STD = ("weighted", "eiv")
"""Line fits that weigh images by their ``jod_std``."""
METHODS = (*LINE_METHODS, "joint")
"""Every method ``jod align`` runs: the line fits and the joint model (``alignment.joint``)."""
REFERENCE_RULES = ("auto", "range", "size", "connected")
"""Rules that pick the reference scene (``alignment.reference``)."""
