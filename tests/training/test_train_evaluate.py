"""Evaluation metrics and the evaluate command on hand-made predictions."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy.stats import pearsonr, spearmanr
from typer.testing import CliRunner

from jodkit.cli import app as jod
from scaling.errors import InputError
from training.evaluate import evaluate, evaluate_models, metrics, scatter_plot


def test_metrics_on_a_monotone_nonlinear_relation():
    pred = np.linspace(0, 1, 30)
    truth = 6 / (1 + np.exp(-(pred - 0.5) / 0.1)) - 3  # monotone, far from linear
    m = metrics(pred, truth)
    assert m["srcc"] == pytest.approx(1.0) and m["krcc"] == pytest.approx(1.0)
    assert m["plcc"] > 0.99  # the logistic fit undoes the sigmoid
    assert m["mae_jod"] == pytest.approx(np.mean(np.abs(pred - truth)))


def test_metrics_hand_case_and_degenerate_inputs():
    m = metrics(np.array([1.0, 3.0, 2.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert m["srcc"] == pytest.approx(0.8) and m["krcc"] == pytest.approx(4 / 6)
    assert m["mae_jod"] == pytest.approx(0.5)
    assert np.isnan(metrics(np.ones(5), np.arange(5.0))["srcc"])


def test_evaluate_reports_global_and_per_scene_mean():
    frame = pd.DataFrame(
        {
            "scene": ["a"] * 4 + ["b"] * 4,
            "attribute": "noise",
            "jod": [0, 1, 2, 3, 0, 1, 2, 3.0],
            "jod_pred": [0, 1, 2, 3, 3, 2, 1, 0.0],
        }
    )
    table = evaluate(frame).set_index("level")
    assert table.loc["per_scene_mean", "srcc"] == pytest.approx(0.0)  # mean of 1 and -1
    assert table.loc["global", "n"] == 8
    with pytest.raises(InputError, match="'jod_pred' missing"):
        evaluate(frame.drop(columns=["jod_pred"]))


def test_evaluate_models_puts_models_side_by_side():
    truth = np.arange(6.0)
    frame = pd.DataFrame({"scene": ["a", "a", "a", "b", "b", "b"], "attribute": "noise"})
    frame["jod"] = truth
    table = evaluate_models(
        {"deqa": frame.assign(jod_pred=truth + 0.5), "resnet": frame.assign(jod_pred=-truth)}
    )
    assert table["model"].tolist() == ["deqa", "deqa", "resnet", "resnet"]
    by_model = table[table["level"] == "global"].set_index("model")
    assert by_model.loc["deqa", "srcc"] == pytest.approx(1.0)
    assert by_model.loc["resnet", "srcc"] == pytest.approx(-1.0)
    assert by_model.loc["deqa", "mae_jod"] == pytest.approx(0.5)


def test_evaluate_command_writes_table_and_plot(tmp_path):
    rows = []
    for i in range(6):
        name = f"im{i}.png"
        Image.new("RGB", (8, 8)).save(tmp_path / name)
        rows.append((name, "s" + str(i % 2), "noise", float(i), 0.3))
    pd.DataFrame(rows, columns=["image_path", "scene", "attribute", "jod", "jod_std"]).to_csv(
        tmp_path / "truth.csv", index=False
    )
    pred = pd.DataFrame(
        {
            "image_path": [str(tmp_path / r[0]) for r in rows],
            "attribute": "noise",
            "jod_pred": [0.2, 1.1, 1.9, 3.2, 3.8, 5.3],
        }
    )
    pred.to_csv(tmp_path / "pred.csv", index=False)
    result = CliRunner().invoke(
        jod,
        [
            "evaluate",
            str(tmp_path / "pred.csv"),
            str(tmp_path / "truth.csv"),
            "-o",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "ev" / "metrics.csv")
    assert table.loc[table["level"] == "global", "srcc"].item() == pytest.approx(1.0)
    assert (tmp_path / "ev" / "scatter.png").stat().st_size > 1000
    pred.drop(columns=["jod_pred"]).to_csv(tmp_path / "bad.csv", index=False)
    bad = CliRunner().invoke(
        jod, ["evaluate", str(tmp_path / "bad.csv"), str(tmp_path / "truth.csv")]
    )
    assert bad.exit_code == 2 and "jod_pred" in bad.output, bad.output


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(6, 40), noise=st.floats(0.05, 2.0))
def test_plcc_follows_the_direction_of_the_data(seed, n, noise):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    pred = np.tanh(truth) + noise * rng.normal(size=n)
    if spearmanr(pred, truth).statistic == 0:
        return
    forward, backward = metrics(pred, truth), metrics(-pred, truth)
    assert backward["plcc"] == pytest.approx(-forward["plcc"], abs=1e-6, nan_ok=True)
    if abs(pearsonr(pred, truth).statistic) > 0.5:  # a clear direction
        assert np.sign(forward["plcc"]) == np.sign(forward["srcc"])
        assert abs(forward["plcc"]) >= abs(pearsonr(pred, truth).statistic) - 0.02


def test_inverted_predictions_give_a_negative_plcc():
    # the symptom: SRCC -0.797 with PLCC +0.836 (a decreasing logistic was fitted)
    rng = np.random.default_rng(3)
    truth = np.linspace(-3, 0, 30)
    pred = -truth + rng.normal(0, 0.6, 30)
    m = metrics(pred, truth)
    assert m["srcc"] < -0.7 and m["plcc"] < -0.7


def write_run_split(tmp_path):
    """A run's split.csv (train/val/test rows) and predictions for every row."""
    rows = []
    for i in range(12):
        name = f"im{i}.png"
        Image.new("RGB", (8, 8)).save(tmp_path / name)
        split = ("train", "val", "test")[i % 3]
        rows.append((name, f"s{i % 3}", "noise", float(i), 0.3, split))
    columns = ["image_path", "scene", "attribute", "jod", "jod_std", "split"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "split.csv", index=False)
    pred = pd.DataFrame(
        {
            "image_path": [str(tmp_path / r[0]) for r in rows],
            "attribute": "noise",
            "jod_pred": np.arange(12.0) + np.where(np.arange(12) % 3 == 2, 0.5, 0.0),
        }
    )
    pred.to_csv(tmp_path / "pred.csv", index=False)


@pytest.mark.parametrize(("split", "n"), [(None, 4), ("test", 4), ("val", 4), ("all", 12)])
def test_evaluate_takes_the_test_split_by_default(tmp_path, split, n):
    write_run_split(tmp_path)
    args = ["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "split.csv")]
    args += ["-o", str(tmp_path / "ev")] + ([] if split is None else ["--split", split])
    result = CliRunner().invoke(jod, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "ev" / "metrics.csv")
    assert table.loc[table["level"] == "global", "n"].item() == n
    mae = table.loc[table["level"] == "global", "mae_jod"].item()
    assert mae == pytest.approx(
        0.5 if split in (None, "test") else (0.0 if split == "val" else 1 / 6)
    )


def test_evaluate_split_errors(tmp_path):
    write_run_split(tmp_path)
    plain = pd.read_csv(tmp_path / "split.csv").drop(columns=["split"])
    plain.to_csv(tmp_path / "plain.csv", index=False)
    result = CliRunner().invoke(
        jod,
        ["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "plain.csv"), "--split", "test"],
    )
    assert result.exit_code == 2 and "needs a 'split' column" in result.output
    result = CliRunner().invoke(
        jod, ["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "split.csv"), "--split", "dev"]
    )
    assert result.exit_code == 2 and "split must be one of" in result.output


def test_scatter_plot_has_a_legend_split_markers_and_metrics(tmp_path, monkeypatch):
    import matplotlib.axes

    texts, legends = [], []
    monkeypatch.setattr(
        matplotlib.axes.Axes, "text", lambda self, *a, **k: texts.append(a[2]) or None
    )
    original_legend = matplotlib.axes.Axes.legend

    def record_legend(self, handles, labels, **kwargs):
        legends.append(list(labels))
        return original_legend(self, handles, labels, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", record_legend)
    frame = pd.read_csv(write_run_split(tmp_path) or tmp_path / "split.csv")
    frame["jod_pred"] = frame["jod"] + 0.1
    scatter_plot(frame, tmp_path / "scatter.png")
    assert (tmp_path / "scatter.png").stat().st_size > 10_000
    assert texts and "SRCC 1.000" in texts[0] and "MAE 0.10 JOD" in texts[0]
    assert {"s0", "s1", "s2", "y = x", "split: train", "split: val", "split: test"} <= set(
        legends[0]
    )
