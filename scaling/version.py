"""The installed distribution's version, recorded in every table's metadata.

It lives in the base stage (not in ``jodkit``) so that the stages never import the command
line: ``jodkit`` re-exports it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jodkit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
