"""jodkit: pairwise image-quality judgments to JOD scales, unified scales and trained models.

The stages live in their own top-level packages (``scaling``, ``alignment``, ``study``,
``annotation_app``, ``training``); this package only holds the ``jod`` command line. The
version is defined once, in the base stage (``scaling.version``), so no stage imports this
package.
"""

from scaling.version import __version__

__all__ = ["__version__"]
