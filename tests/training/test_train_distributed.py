"""Two processes (``accelerate launch --num_processes 2 --cpu``, gloo) train as one does: the
same learning-rate schedule and losses, metrics reduced and written once, validation gathered
from both shards, checkpoints written once and resumed by a different number of processes."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from training.checkpoints import CHECKPOINTS  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.trainer import train  # noqa: E402


def launch_two(*args: str) -> subprocess.CompletedProcess:
    """`accelerate launch --num_processes 2 --cpu -m jodkit ARGS` (gloo on the loopback)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launcher = [sys.executable, "-m", "accelerate.commands.launch"]
    command = [*launcher, "--num_processes", "2", "--cpu", "-m", "jodkit", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def write_config(workspace, out, path) -> TrainConfig:
    config = TrainConfig.model_validate(
        {
            "model": str(workspace / "tiny"),
            "data": {
                "table": str(workspace / "table.csv"),
                "val_fraction": 0.2,
                "test_fraction": 0.2,
            },
            "image": {"size": 56},
            "adapter": {"rank": 4, "alpha": 8, "dropout": 0.0, "vision": "lora"},
            "optim": {"lr": 2e-3, "max_steps": 4, "pairs_per_batch": 4, "warmup_ratio": 0.25},
            "run": {
                "output_dir": str(out),
                "progress": False,
                "log_every": 1,
                "eval_every": 2,
                "checkpoint_every": 2,
                "num_workers": 0,
                "tensorboard": False,
                "gradient_checkpointing": False,
                "mixed_precision": "no",
            },
        }
    )
    config.to_yaml(path)
    return config


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, flat_workspace):
    root = tmp_path_factory.mktemp("distributed")
    return flat_workspace(root, ("noise",), (56, 56), seed=2)


@pytest.mark.slow
def test_two_processes_train_as_one_and_resume_on_one(workspace, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    torch.set_num_threads(1)
    train(write_config(workspace, one, tmp_path / "one.yaml"))
    two_config = write_config(workspace, two, tmp_path / "two.yaml")
    launch_two("train", str(tmp_path / "two.yaml"))

    single, double = pd.read_csv(one / "metrics.csv"), pd.read_csv(two / "metrics.csv")
    print("single process:", single, "two processes:", double, sep="\n")
    assert double["step"].tolist() == [1, 2, 3, 4]  # written once, by the main process
    np.testing.assert_array_equal(double["lr"], single["lr"])  # the same schedule
    assert double["lr"].iloc[-1] == 0.0 and double["lr"].max() == pytest.approx(2e-3)
    for term in ("loss", "kl", "ce", "fidelity"):  # reduced over both processes' halves
        np.testing.assert_allclose(double[term], single[term], rtol=2e-4)
    np.testing.assert_allclose(double["images_per_s"] > 0, True)

    evals_one, evals_two = pd.read_csv(one / "eval.csv"), pd.read_csv(two / "eval.csv")
    assert evals_two["step"].tolist() == evals_one["step"].tolist() == [2, 2, 4, 4]
    assert (evals_two.loc[evals_two["level"] == "global", "n"] == 4).all()  # both shards
    np.testing.assert_allclose(evals_two["mae_jod"], evals_one["mae_jod"], rtol=1e-3)

    steps = sorted(p.name for p in (two / CHECKPOINTS).glob("step_*"))
    assert steps == ["step_00000002", "step_00000004"]
    state = json.loads((two / CHECKPOINTS / "step_00000002" / "state.json").read_text())
    assert state["step"] == 2

    # resume the two-process run's step-2 checkpoint with ONE process: steps 3-4 as before
    shutil.rmtree(two / CHECKPOINTS / "step_00000004")
    train(two_config)
    resumed = pd.read_csv(two / "metrics.csv")
    assert resumed["step"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed["loss"], single["loss"], rtol=2e-4)
    np.testing.assert_array_equal(resumed["lr"], single["lr"])
