"""Scaling figures are written as real PNGs, one per group, and refuse malformed tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from scaling.errors import InputError
from scaling.plots import (
    plot_comparison_counts,
    plot_overview,
    plot_rankings,
    plot_recovery,
    plot_screening,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def scale_table(n: int = 12, scenes: tuple[str, ...] = ("s1",)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for scene in scenes:
        jod = rng.normal(0, 2, n)
        rows.append(
            pd.DataFrame(
                {
                    "scene": scene,
                    "attribute": "detail",
                    "condition": [f"c{i:02d}" for i in range(n)],
                    "jod": jod,
                    "jod_std": 0.3,
                    "ci_low": jod - 0.5,
                    "ci_high": jod + 0.5,
                    "n_comparisons": 30,
                    "n_wins": 15,
                    "n_losses": 15,
                    "component": np.r_[np.zeros(n - 2, int), [1, 1]],
                    "determined": np.r_[[False], np.ones(n - 1, bool)],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def screening_table(flagged: int) -> pd.DataFrame:
    dist = np.r_[np.full(flagged, 3.0), np.linspace(0, 1, 10 - flagged)]
    return pd.DataFrame(
        {
            "observer": [f"O{i}" for i in range(10)],
            "dist_L": dist,
            "flagged": dist >= 1.5,
            "n_trials": 50,
        }
    )


def assert_png(path: Path, min_side: int = 300) -> Image.Image:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = Image.open(path)
    assert min(image.size) >= min_side and max(image.size) <= 3000
    return image.convert("RGB")


def red_pixels(image: Image.Image) -> int:
    rgb = np.asarray(image).astype(int)
    return int(((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)).sum())


def test_one_ranking_png_per_group(tmp_path: Path) -> None:
    paths = plot_rankings(scale_table(scenes=("kitchen", "park lane")), tmp_path)
    assert [p.name for p in paths] == ["ranking_kitchen_detail.png", "ranking_park_lane_detail.png"]
    for path in paths:
        assert_png(path)


def test_ranking_without_bootstrap_and_many_conditions(tmp_path: Path) -> None:
    table = scale_table(n=300).assign(ci_low=np.nan, ci_high=np.nan)
    (path,) = plot_rankings(table, tmp_path)
    assert_png(path)


def test_screening_marks_flagged_observers_in_red(tmp_path: Path) -> None:
    flagged = assert_png(plot_screening(screening_table(2), tmp_path / "a.png"))
    clean = assert_png(plot_screening(screening_table(0), tmp_path / "b.png"))
    assert red_pixels(flagged) > 500
    assert red_pixels(clean) == 0


def test_comparison_counts_heatmap(tmp_path: Path) -> None:
    counts = np.arange(16, dtype=float).reshape(4, 4)
    np.fill_diagonal(counts, 0)
    path = plot_comparison_counts(
        counts, list("abcd"), tmp_path / "sub" / "counts.png", order=[3, 1, 2, 0]
    )
    assert_png(path, min_side=250)


def test_recovery_plot(tmp_path: Path) -> None:
    table = scale_table()
    assert_png(plot_recovery(table["jod"].to_numpy() + 0.1, table, tmp_path / "r.png"))


@pytest.mark.parametrize("column", ["jod", "component", "determined", "ci_low"])
def test_ranking_names_the_missing_column(tmp_path: Path, column: str) -> None:
    with pytest.raises(InputError, match=f"field '{column}'"):
        plot_rankings(scale_table().drop(columns=column), tmp_path)
    assert not list(tmp_path.iterdir())


def test_empty_tables_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no rows"):
        plot_rankings(scale_table().iloc[:0], tmp_path)
    with pytest.raises(InputError, match="field 'dist_L'"):
        plot_screening(screening_table(1).drop(columns="dist_L"), tmp_path / "s.png")


def test_counts_must_match_the_conditions(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="3 x 3"):
        plot_comparison_counts(np.zeros((4, 4)), list("abc"), tmp_path / "c.png")
    with pytest.raises(InputError, match="non-negative"):
        plot_comparison_counts(-np.ones((2, 2)), list("ab"), tmp_path / "c.png")


def test_recovery_needs_one_true_score_per_row(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="3 values for 12 rows"):
        plot_recovery(np.zeros(3), scale_table(), tmp_path / "r.png")


def test_overview_shows_at_most_the_requested_groups(tmp_path: Path) -> None:
    table = scale_table(scenes=("a", "b", "c", "d"))
    one_row = assert_png(plot_overview(table, tmp_path / "three.png", max_groups=3))
    two_rows = assert_png(plot_overview(table, tmp_path / "all.png"))
    assert two_rows.size[1] > one_row.size[1]  # the fourth group needs a second row


def test_overview_names_the_missing_column(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="field 'determined'"):
        plot_overview(scale_table().drop(columns="determined"), tmp_path / "o.png")
    assert not list(tmp_path.iterdir())


def test_one_sided_intervals_are_arrows_and_placed_scores_point_their_way(tmp_path) -> None:
    """A score unbounded above gets an arrow from its lower end to the right edge, one
    unbounded below an arrow to the left edge; two-sided ones stay error bars."""
    from scaling.plots import _ranking_figure

    table = scale_table(6).drop(columns=["scene", "attribute"])
    table["bound"] = ["two-sided"] * 4 + ["lower", "upper"]
    table.loc[4, ["jod", "ci_low", "ci_high"]] = [5.0, 4.0, np.inf]
    table.loc[5, ["jod", "ci_low", "ci_high"]] = [-5.0, -np.inf, -4.0]
    figure = _ranking_figure(table, "one-sided")
    ax = figure.axes[0]
    left, right = ax.get_xlim()
    arrows = sorted((a.xy[0], a.xyann[0]) for a in ax.texts)
    assert arrows == [(left, -4.0), (right, 4.0)]
    markers = {
        tuple(np.round(c.get_offsets()[0], 6)) for c in ax.collections if len(c.get_offsets())
    }
    assert (5.0, 5.0) in markers and (-5.0, 0.0) in markers  # sorted by jod: rows 5 and 0
    assert plot_rankings(table, tmp_path)[0].read_bytes().startswith(PNG_SIGNATURE)
