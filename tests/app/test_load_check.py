"""The crash test's exactly-once check (benchmarks/load_test.py) can fail: before, it
counted primary keys, which are unique by construction."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py"
_SPEC = importlib.util.spec_from_file_location("load_test", _PATH)
load_test = importlib.util.module_from_spec(_SPEC)
sys.modules["load_test"] = load_test  # dataclasses look their module up while defined
_SPEC.loader.exec_module(load_test)
check = load_test.check_ledger

ACKED = [(1, "t1", "stored"), (2, "t2", "stored"), (3, "t3", "stored"), (3, "t3", "duplicate")]
STORED = [(1, "t1"), (2, "t2"), (3, "t3")]


def test_a_clean_run_passes():
    verdict = check(ACKED, STORED, exported=3)
    assert verdict.ok and (verdict.acknowledged, verdict.lost, verdict.twice) == (3, 0, 0)


@pytest.mark.parametrize(
    ("stored", "exported", "acked", "lost", "twice"),
    [
        (STORED[:2], 2, ACKED, 1, 0),  # an acknowledged answer missing
        ([(1, "t1"), (2, "t2"), (3, "other")], 3, ACKED, 1, 0),  # stored under another token
        ([*STORED, (4, "t3")], 4, ACKED, 0, 1),  # one token on two trials
        ([*STORED, (3, "t9")], 4, ACKED, 1, 1),  # one trial answered twice
        (STORED, 4, ACKED, 0, 1),  # the export repeats a row
        (STORED, 3, [*ACKED, (3, "t3", "stored")], 0, 1),  # "stored" said twice
    ],
)
def test_duplicates_and_losses_are_counted(stored, exported, acked, lost, twice):
    verdict = check(acked, stored, exported)
    assert (verdict.lost, verdict.twice) == (lost, twice)
    assert not verdict.ok
