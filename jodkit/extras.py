"""Is an optional extra (``pip install 'jodkit[app]'``) installed?

The extras' package lists are read from jodkit's own installed metadata, i.e. from
``pyproject.toml``: they are written down once.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement


def missing_requirements(extra: str) -> list[str]:
    """The requirements of ``extra`` that are absent or too old, e.g. ``["flask (absent)"]``.

    Empty when jodkit itself is not installed (a source tree on ``PYTHONPATH``): then the
    command's own imports tell what is missing.
    """
    try:
        declared = requires("jodkit") or []
    except PackageNotFoundError:
        return []
    missing = []
    for text in declared:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or "extra" not in str(marker) or not marker.evaluate({"extra": extra}):
            continue
        try:
            found = version(requirement.name)
        except PackageNotFoundError:
            missing.append(f"{requirement.name} (absent)")
            continue
        if not requirement.specifier.contains(found, prereleases=True):
            missing.append(f"{requirement.name}{requirement.specifier} (found {found})")
    return missing


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'jodkit[{extra}]'"
