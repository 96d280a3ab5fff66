"""Shared test helpers: where the licensed reference data live, and a skip when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_DATA = SHARED / "data" / "real"


@pytest.fixture
def real_data() -> Path:
    """``../shared/data/real``: licensed for testing, never copied into the project."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"reference data not found at {REAL_DATA} (../shared is not beside the repo)")
    return REAL_DATA
