"""``jod scale`` on bad input: one line naming file, row and field, exit code 2, nothing
written; outputs never overwrite inputs and appear only when complete."""

from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from jodkit.cli import app
from scaling.simulate import make_true_scores, simulate_trials

runner = CliRunner()
HEADER = "observer,session,scene,attribute,condition_A,condition_B,is_A_selected\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder holding a valid trial table t.csv and a count matrix m.csv."""
    monkeypatch.chdir(tmp_path)
    truth = make_true_scores(4, n_scenes=1, seed=1)
    simulate_trials(truth, n_observers=12, seed=2).to_csv("t.csv", index=False)
    counts = pd.DataFrame([[0, 5, 6], [2, 0, 4], [1, 3, 0]], index=list("abc"), columns=list("abc"))
    counts.to_csv("m.csv")
    return tmp_path


def _files(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _refused(args: list[str], folder, line: str) -> None:
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["scale", *args, "-q"])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {line}\n"
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing changed


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"", "bad.csv: is empty: a table needs a header row"),
        (
            HEADER.encode() + b"O1,s,sc,a,caf\xe9,c1,1\n",
            "bad.csv, row 1: is not UTF-8 text (byte 0xe9): save the file as UTF-8 "
            "(e.g. 'CSV UTF-8' in a spreadsheet)",
        ),
        (
            HEADER.replace(",", ";").encode() + b"O1;s;sc;a;c0;c1;1\n",
            "bad.csv: has one column named 'observer;session;scene;attribute;condition_A;"
            "condition_B;is_': the file seems separated by ';', and jodkit reads "
            "comma-separated .csv (tab-separated: .tsv)",
        ),
        (
            b"observer,observer,condition_A,condition_B,is_A_selected\nO1,O2,c0,c1,1\n",
            "bad.csv, field 'observer': appears twice in the header: each column needs its "
            "own name",
        ),
        (
            HEADER.encode() + b"O1,s,sc,a,c0,c1,1\nO1,s,sc,a,c0,c2,1,extra\n",
            "bad.csv, row 2: has 8 fields where the header has 7 (a stray ','?)",
        ),
        (
            HEADER.encode() + b"O1,s,sc,a,c0,c1,7\n",
            "bad.csv, row 1, field 'is_A_selected': must be 0 or 1, got 7",
        ),
        (
            b",a,b\na,0,1e300\nb,2,0\n",
            "bad.csv, row 1, field 'b': count is too large to be a number of judgments "
            "(over 1e+09): 1e+300",
        ),
        (b",a,b\na,0,-3\nb,2,0\n", "bad.csv, row 1, field 'b': count is negative: -3"),
    ],
    ids=["empty", "not-utf8", "semicolons", "column-twice", "stray-comma", "bad-value",
         "count-1e300", "negative-count"],
)  # fmt: skip
def test_bad_tables(folder, content, line):
    (folder / "bad.csv").write_bytes(content)
    _refused(["bad.csv", "-o", "out.csv"], folder, line)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["absent.csv"], "absent.csv: file not found"),
        (["."], ".: is a folder, where a table file is expected"),
        (["t.csv", "-o", "t.csv"], "t.csv: -o/--output would overwrite the input INPUT: "
         "write to another file"),
        (["t.csv", "--screen", "t.csv"], "t.csv: --screen would overwrite the input INPUT: "
         "write to another file"),
        (["t.csv", "-o", "s.csv", "--screen", "s.csv"], "s.csv: --screen and -o/--output name "
         "the same file: give them different names"),
        (["t.csv", "-o", "s.csv", "--plots", "t.csv"], "t.csv: --plots is a file: give a folder"),
        (["t.csv", "-o", "t.csv/s.csv"], "t.csv: -o/--output cannot be written: t.csv is a "
         "file, not a folder"),
        (["t.csv", "-o", "/proc/1/s.csv"], "/proc/1: -o/--output cannot be written: "
         "permission denied"),
        (["t.csv", "--plot", "x.txt"], "x.txt: --plot writes one figure: end its name in .png, "
         ".pdf or .svg (for a folder of plots, use --plots DIR)"),
        (["m.csv", "--screen", "s.csv"], "m.csv: --screen needs trials (observers), not a count "
         "matrix"),
        (["t.csv", "--solver", "cvxpy", "--prior", "none", "--order", "c0>zz"], "field 'order': "
         "'c0>zz' names 'zz', which is no condition of the data (the conditions: c0, c1, c2, "
         "c3)"),
        (["t.csv", "--solver", "cvxpy", "--prior", "none", "--fix", "c00=0"], "field 'fix': "
         "'c00=0' names 'c00', which is no condition of the data (did you mean 'c0'?)"),
    ],
)  # fmt: skip
def test_bad_paths_and_options(folder, args, line):
    if args[-1].startswith("/proc/") and os.access("/proc/1", os.W_OK):
        pytest.skip("/proc/1 is writable here")
    _refused(args, folder, line)


def test_a_choice_outside_its_set_is_a_usage_error_listing_the_choices(folder):
    result = runner.invoke(app, ["scale", "t.csv", "--prior", "flat"])
    assert result.exit_code == 2
    assert result.output == (
        "error: Invalid value for '--prior': 'flat' is not one of 'gaussian', 'none'. "
        "(see 'jod scale --help')\n"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["scale", "--nope"], "error: No such option: --nope"),
        (["nosuch"], "error: No such command 'nosuch'. (see 'jod --help')"),
        (["scale"], "error: Missing argument 'INPUT'. (see 'jod scale --help')"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args, line):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.startswith(line) and result.output.count("\n") == 1, result.output


def test_options_that_cannot_apply_to_a_count_matrix_are_named(folder):
    result = runner.invoke(app, ["scale", "m.csv", "-o", "s.csv", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "warning: --bootstrap does not apply to a count matrix (a count matrix has no "
        "observers or trials to resample): ignored\n"
    )
    assert (folder / "s.csv").exists()


def test_a_failure_half_way_keeps_the_previous_outputs_and_leaves_no_partial_file(folder):
    first = runner.invoke(app, ["scale", "t.csv", "-o", "s.csv", "-q"])
    assert first.exit_code == 0, first.output
    before = {name: (folder / name).read_bytes() for name in ("s.csv", "s.csv.meta.json")}
    (folder / "plots" / "overview.png").mkdir(parents=True)  # the plots cannot be written
    files = _files(folder)
    result = runner.invoke(
        app, ["scale", "t.csv", "-o", "s.csv", "--plots", "plots", "--seed", "3", "-q"]
    )
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "error: plots/overview.png: is a folder, where a file is expected"
    )
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert _files(folder) == files  # no temporary file left behind


def test_a_full_disk_is_one_line_and_leaves_nothing(folder, monkeypatch):
    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    files = _files(folder)
    result = runner.invoke(app, ["scale", "t.csv", "-o", "s.csv", "-q"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == "error: s.csv: no space left on the device"
    assert _files(folder) == files


def test_count_columns_are_integers_when_ties_are_dropped(folder):
    trials = pd.read_csv("t.csv")
    trials["tie"] = (np.arange(len(trials)) % 7 == 0).astype(int)
    trials.to_csv("ties.csv", index=False)
    for ties in ("drop", "split"):
        result = runner.invoke(app, ["scale", "ties.csv", "-o", f"{ties}.csv", "--ties", ties])
        assert result.exit_code == 0, result.output
    dropped, split = pd.read_csv("drop.csv"), pd.read_csv("split.csv")
    assert {dropped[c].dtype.kind for c in ("n_comparisons", "n_wins", "n_losses")} == {"i"}
    assert (split["n_wins"] % 1 == 0.5).any() and split["n_wins"].dtype.kind == "f"
    assert split["n_comparisons"].dtype.kind == "i"  # a split tie is one whole comparison
