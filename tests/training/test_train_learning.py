"""The learning test: a tiny random VLM, trained on CPU through :func:`training.trainer.train`,
must rank unseen scenes' noise renditions clearly better than the same model untrained (which
already reaches per-scene SRCC 0.72: noise changes its random features monotonically), and a
model trained on shuffled labels must not. ``JODKIT_TEST_PRECISION=bf16`` runs it in bf16
mixed precision (``benchmarks/gpu_check.sh`` does, on CUDA).

Diagnosis that shaped the recipe (docs/training.md, "The learning test"): a random lm_head
caps the level logits near +-1, so it is trained (``adapter.lm_head: full``); the vision tower
collapses to a constant at LoRA's learning rate, so it has its own (``optim.vision_lr``); noise
needs pixels, so the images are 112 px (64 patches of 14 px, 16 tokens after merging).
"""

import os

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from training.config import TrainConfig  # noqa: E402
from training.evaluate import evaluate  # noqa: E402
from training.modeling import load_trained, load_vlm  # noqa: E402
from training.predict import predict_rows  # noqa: E402
from training.run import prepare_data  # noqa: E402
from training.tiny import save_tiny_model  # noqa: E402
from training.trainer import train  # noqa: E402

PRECISION = os.environ.get("JODKIT_TEST_PRECISION", "no")


def untrained_score(model, table) -> pd.DataFrame:
    """The random model's test-scene metrics: what training must clearly beat."""
    config = TrainConfig.model_validate(
        {
            "model": str(model),
            "data": {"table": str(table), "split_column": "split"},
            "image": {"size": 112},
        }
    )
    data = prepare_data(config)
    rows = data.rows("test")
    pred = predict_rows(load_vlm(model), data.rescalings, rows, config, batch_size=30)
    pred["jod"] = rows["jod"].to_numpy()
    return evaluate(pred).set_index("level")


def train_and_score(model, table, out) -> pd.DataFrame:
    """Train with the learning recipe, reload from disk, evaluate on the test scenes."""
    config = TrainConfig.model_validate(
        {
            "model": str(model),
            "data": {"table": str(table), "split_column": "split"},
            "image": {"size": 112},
            "adapter": {"rank": 16, "alpha": 32, "dropout": 0.0, "lm_head": "full"},
            "loss": {"kl_weight": 1.0},
            "optim": {
                "lr": 3e-3,
                "vision_lr": 1e-4,
                "max_steps": 250,
                "pairs_per_batch": 8,
                "warmup_ratio": 0.05,
            },
            "run": {
                "output_dir": str(out),
                "gradient_checkpointing": False,
                "progress": False,
                "log_every": 50,
                "mixed_precision": PRECISION,
                "eval_every": None,
                "num_workers": 0,
                "tensorboard": False,
            },
        }
    )
    train(config)
    loaded, rescalings = load_trained(out)
    rows = pd.read_csv(out / "split.csv").query("split == 'test'")
    pred = predict_rows(loaded, rescalings, rows, config, batch_size=30)
    pred["jod"] = rows["jod"].to_numpy()
    return evaluate(pred).set_index("level"), pd.read_csv(out / "metrics.csv")


@pytest.mark.slow
def test_tiny_vlm_ranks_unseen_scenes_and_beats_shuffled_labels(
    noise_study, shuffled_noise_study, tmp_path
):
    torch.set_num_threads(1)
    model = save_tiny_model(tmp_path / "tiny")
    untrained = untrained_score(model, noise_study)
    real, log = train_and_score(model, noise_study, tmp_path / "real")
    shuffled, _ = train_and_score(model, shuffled_noise_study, tmp_path / "shuffled")
    print("untrained", untrained, "trained", real, "shuffled labels", shuffled, log, sep="\n")
    assert log["loss"].iloc[-1] < 0.5 * log["loss"].iloc[0]
    assert real.loc["global", "n"] == 30  # 6 unseen scenes x 5 noise levels
    assert real.loc["global", "srcc"] >= 0.8
    assert real.loc["per_scene_mean", "srcc"] >= 0.9
    # training must add what the random features do not already give
    assert real.loc["global", "srcc"] >= untrained.loc["global", "srcc"] + 0.3
    assert real.loc["per_scene_mean", "srcc"] >= untrained.loc["per_scene_mean", "srcc"] + 0.15
    assert real.loc["global", "mae_jod"] <= 0.7 * untrained.loc["global", "mae_jod"]
    assert real.loc["global", "srcc"] > shuffled.loc["global", "srcc"] + 0.5
