"""Evaluation metrics and the evaluate command on hand-made predictions."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from jodkit.cli import app as jod
from scaling.errors import InputError
from training.evaluate import evaluate, evaluate_models, metrics


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
