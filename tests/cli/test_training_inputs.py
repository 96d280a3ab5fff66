"""``jod train`` and ``jod evaluate`` on bad input: one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from jodkit.cli import app

runner = CliRunner()


@pytest.fixture
def tables(tmp_path, monkeypatch):
    """Two images, a truth table and predictions for them, in the working folder."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 8)).save(name)
    truth = pd.DataFrame(
        {
            "image_path": ["a.png", "b.png", "c.png"],
            "scene": "s",
            "attribute": "noise",
            "jod": [0.0, -1.0, -2.0],
            "jod_std": 0.2,
        }
    )
    truth.to_csv("truth.csv", index=False)
    pred = truth.assign(image_path=[str(tmp_path / p) for p in truth["image_path"]])
    pred.assign(jod_pred=[0.1, -0.8, -2.5]).to_csv("pred.csv", index=False)
    return truth


def test_a_jod_too_large_to_be_real_is_refused(tables):
    tables.assign(jod=[0.0, 1e308, -2.0]).to_csv("huge.csv", index=False)
    result = runner.invoke(app, ["evaluate", "pred.csv", "huge.csv", "-o", "ev"])
    assert result.exit_code == 2
    assert result.output == (
        "error: huge.csv, row 2, field 'jod': jod 1e+308 is no JOD (a scale spans tens of JOD; "
        "|jod| must stay within 1000)\n"
    )


def test_evaluate_refuses_an_output_that_is_an_input_and_writes_whole(tables):
    result = runner.invoke(app, ["evaluate", "pred.csv", "truth.csv", "-o", "truth.csv"])
    assert result.exit_code == 2
    assert result.output == "error: truth.csv: -o/--output is a file: give a folder\n"
    done = runner.invoke(app, ["evaluate", "pred.csv", "truth.csv", "-o", "ev"])
    assert done.exit_code == 0, done.output
    assert {"metrics.csv", "scatter.png"} <= {p.name for p in Path("ev").iterdir()}


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "absent.yaml: file not found"),
        (b"model: [m\n", "bad.yaml: is not valid YAML at line 2, column 1: expected ',' or ']', "
         "but got '<stream end>' (while parsing a flow sequence)"),
        (b"model: m\noptim: {learning_rate: 1}\n", "bad.yaml, field 'optim.learning_rate': "
         "Extra inputs are not permitted (a misspelt setting?)"),
        (b"- 1\n", "bad.yaml: the config must be a mapping, not list"),
        (b"model: caf\xe9\n", "bad.yaml: is not UTF-8 text (byte 0xe9 on line 1): save the file "
         "as UTF-8"),
    ],
)  # fmt: skip
def test_train_config_errors_are_one_line(tmp_path, monkeypatch, content, line):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    name = line.split(":")[0].split(",")[0]
    if content is not None:
        (tmp_path / name).write_bytes(content)
    result = runner.invoke(app, ["train", name])
    assert result.exit_code == 2
    assert result.output == f"error: {line}\n"


@pytest.mark.parametrize(
    ("card", "line"),
    [
        (
            None,
            "error: model: not a trained jodkit model (no jodkit_model.json); pass the output "
            "folder of `jod train config.yaml`\n",
        ),
        (
            '{"rescalings": 3',
            "error: model/jodkit_model.json: unreadable model card (JSONDecodeError); "
            "re-export the model with `jod train`\n",
        ),
        (
            '{"task": "score"}',
            "error: model/jodkit_model.json: unreadable model card (KeyError); "
            "re-export the model with `jod train`\n",
        ),
    ],
)
def test_predict_names_a_folder_that_is_no_model(tables, card, line):
    Path("model").mkdir()
    if card is not None:
        Path("model/jodkit_model.json").write_text(card)
    result = runner.invoke(app, ["predict", "model", "a.png"])
    assert result.exit_code == 2
    assert result.output == line
