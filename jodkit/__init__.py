"""jodkit: pairwise image-quality judgments to JOD scales, unified scales and trained models.

The stages live in their own top-level packages (``scaling``, ``alignment``, ``study``,
``annotation_app``, ``training``); this package only holds the ``jod`` command line and
the distribution's version.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jodkit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
