"""The bundled example data (data/) is what data/README.md says it is, and scales well."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr
from typer.testing import CliRunner

from jodkit.cli import app
from scaling.simulate import make_true_scores, simulate_trials

DATA = Path(__file__).resolve().parents[2] / "data"


def test_example_files_are_reproduced_by_the_documented_code() -> None:
    truth = make_true_scores(10, n_scenes=4, jod_range=6.0, attribute="detail", seed=7)
    trials = simulate_trials(
        truth,
        n_observers=12,
        design="full",
        outlier_fraction=0.1,
        left_bias=0.1,
        attribute="detail",
        seed=7,
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(DATA / "example_trials.csv"), trials, check_dtype=False
    )
    pd.testing.assert_frame_equal(pd.read_csv(DATA / "example_truth.csv"), truth)


def test_readme_command_scales_the_example_and_flags_the_random_observer(tmp_path) -> None:
    out, screen = tmp_path / "scales.csv", tmp_path / "screen.csv"
    result = CliRunner().invoke(
        app,
        [
            "scale",
            str(DATA / "example_trials.csv"),
            "--by",
            "scene,attribute",
            "--bootstrap",
            "50",
            "-o",
            str(out),
            "--screen",
            str(screen),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    flagged = pd.read_csv(screen).query("flagged")["observer"].tolist()
    assert flagged == ["O12"]
    scales = pd.read_csv(out).merge(
        pd.read_csv(DATA / "example_truth.csv"), on=["scene", "attribute", "condition"]
    )
    assert len(scales) == 40 and scales["ci_low"].notna().all()
    for _, scene in scales.groupby("scene"):
        assert spearmanr(scene["jod_x"], scene["jod_y"])[0] > 0.9
