"""``jod scale`` from the command line: outputs, input kinds and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat
from typer.testing import CliRunner

from jodkit.cli import app
from scaling.io import read_table
from scaling.simulate import make_true_scores, simulate_trials

runner = CliRunner()


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory):
    truth = make_true_scores(6, n_scenes=2, seed=5)
    path = tmp_path_factory.mktemp("cli") / "comparisons.csv"
    simulate_trials(truth, n_observers=12, seed=6).to_csv(path, index=False)
    return path


def test_scale_writes_table_metadata_and_plots(trials_csv, tmp_path):
    out = tmp_path / "scales.csv"
    plots = tmp_path / "plots"
    result = runner.invoke(
        app,
        [
            "scale",
            str(trials_csv),
            "--by",
            "scene,attribute",
            "-o",
            str(out),
            "--bootstrap",
            "40",
            "--jobs",
            "1",
            "--plots",
            str(plots),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    table = read_table(out)
    assert len(table) == 12 and table["jod_std"].notna().all()
    meta = json.loads((tmp_path / "scales.csv.meta.json").read_text())
    assert meta["bootstrap_samples"] == 40 and meta["group_by"] == ["scene", "attribute"]
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert len(pngs) == 5  # a ranking and a count heatmap per scene, and the overview
    assert "overview.png" in pngs
    assert all((plots / p).stat().st_size > 10_000 for p in pngs)


def test_scale_reads_a_count_matrix(tmp_path):
    counts = np.array([[0, 8, 9], [2, 0, 7], [1, 3, 0]])
    path = tmp_path / "counts.mat"
    savemat(path, {"D": counts})
    out = tmp_path / "scales.parquet"
    result = runner.invoke(app, ["scale", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = read_table(out)
    assert table["condition"].tolist() == ["c1", "c2", "c3"]
    assert table["jod"].is_monotonic_decreasing


def test_constrained_scaling_from_the_command_line(tmp_path):
    path = tmp_path / "counts.csv"
    frame = pd.DataFrame([[0, 2, 6], [6, 0, 5], [2, 3, 0]], index=list("abc"), columns=list("abc"))
    frame.to_csv(path)
    out = tmp_path / "s.csv"
    args = ["scale", str(path), "-o", str(out), "--prior", "none", "--solver", "cvxpy"]
    result = runner.invoke(app, [*args, "--order", "a>b>c"])
    assert result.exit_code == 0, result.output
    jod = read_table(out).set_index("condition")["jod"]
    assert jod["a"] >= jod["b"] - 1e-6


def test_bad_input_exits_with_a_located_error_and_writes_nothing(trials_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.read_csv(trials_csv).rename(columns={"condition_B": "conditon_B"}).to_csv(bad, index=False)
    out = tmp_path / "scales.csv"
    result = runner.invoke(app, ["scale", str(bad), "-o", str(out)])
    assert result.exit_code == 2
    assert "bad.csv" in result.output and "conditon_B" in result.output
    assert not out.exists()


def test_bad_options_are_refused(trials_csv, tmp_path):
    out = tmp_path / "scales.csv"
    result = runner.invoke(app, ["scale", str(trials_csv), "-o", str(out), "--order", "a"])
    assert result.exit_code != 0 and "A>B>C" in result.output
    result = runner.invoke(app, ["scale", str(trials_csv), "-o", str(out), "--prior", "bounded"])
    assert result.exit_code == 2 and "prior" in result.output
    assert not out.exists()


def test_screening_is_written(trials_csv, tmp_path):
    screen = tmp_path / "screen.csv"
    args = ["scale", str(trials_csv), "-o", str(tmp_path / "s.csv"), "--screen", str(screen)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(screen)
    assert set(table["observer"]) == set(pd.read_csv(trials_csv)["observer"])
    assert "flagged observers" in result.output


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF-"), (".svg", b"<?xml")]
)
def test_plot_writes_one_overview_figure_in_the_format_of_its_suffix(
    trials_csv, tmp_path, suffix, magic
):
    overview = tmp_path / f"scales{suffix}"
    args = ["scale", str(trials_csv), "-o", str(tmp_path / "s.csv"), "--plot", str(overview)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert overview.is_file() and overview.read_bytes().startswith(magic)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.csv", "s.csv.meta.json", overview.name]
    )
