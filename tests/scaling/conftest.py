"""Fixtures of the scaling tests: the independent pwcmp reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REFERENCE = Path(__file__).with_name("pwcmp_reference.py")


def load_pwcmp_reference() -> ModuleType:
    """``tests/scaling/pwcmp_reference.py`` as a module (tests and benchmarks load it by
    path: the tests are not a package)."""
    spec = importlib.util.spec_from_file_location("pwcmp_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pwcmp_reference() -> ModuleType:
    """An implementation of pwcmp's objective, optimum and bootstrap that shares no code
    with ``scaling``."""
    return load_pwcmp_reference()
