"""The comparator's learning test: a tiny random VLM trained on CPU on the noise ladders must
tell which of two unseen scenes' renditions is less noisy, answer the same whichever image
comes first, and beat an untrained model and one trained on shuffled answers.

Data: the synthetic noise study (``conftest.py``: 12 photos x 3 crops, five noise levels,
JOD = -20 sigma); all crops of two photos are test scenes. Targets: Thurstone probabilities
of the true scale; five simulated observers per scene provide the trials. The shuffled
control permutes the true JOD among the training images, so its answers carry no rule.
"""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from training.comparator import (  # noqa: E402
    PairwiseTask,
    load_comparator,
    predict_pair_rows,
    prepare_pairs,
)
from training.config import TrainConfig  # noqa: E402
from training.modeling import load_vlm  # noqa: E402
from training.run import Run  # noqa: E402
from training.tiny import save_tiny_model  # noqa: E402

STEPS = 300
RECIPE = {
    "image": {"size": 112},
    "adapter": {"rank": 16, "alpha": 32, "dropout": 0.0, "lm_head": "full"},
    "optim": {
        "lr": 3e-3,
        "vision_lr": 1e-4,
        "max_steps": STEPS,
        "pairs_per_batch": 8,
        "warmup_ratio": 0.05,
    },
    "run": {
        "gradient_checkpointing": False,
        "progress": False,
        "log_every": 25,
        "eval_every": None,
        "checkpoint_every": None,
        "num_workers": 0,
        "tensorboard": False,
    },
}


def config_for(model, study, scale, out) -> TrainConfig:
    pairs = {
        "trials": [str(study["trials"])],
        "scene_scales": str(scale),
        "images": str(study["index"]),
        "split_table": str(study["split"]),
        "kl_weight": 5.0,
    }
    raw = {"model": str(model), "task": "pairwise", "pairs": pairs, **RECIPE}
    raw["run"] = {**RECIPE["run"], "output_dir": str(out)}
    return TrainConfig.model_validate(raw)


def held_out_pairs(study, out) -> pd.DataFrame:
    """The test scenes' pairs with their true JOD (from the unshuffled scale)."""
    pairs = pd.read_csv(out / "split.csv")
    pairs = pairs[pairs["split"] == "test"].drop(columns=["jod_A", "jod_B"])
    truth = pd.read_csv(study["scale"]).set_index(["scene", "condition"])["jod"]
    for side in ("A", "B"):
        keys = list(zip(pairs[f"scene_{side}"], pairs[f"condition_{side}"], strict=True))
        pairs[f"jod_{side}"] = truth.loc[keys].to_numpy()
    return pairs.reset_index(drop=True)


def far_accuracy(pred: pd.DataFrame) -> float:
    """Share of pairs at least 1 JOD apart whose better image gets P > 1/2 (P = 1/2: half)."""
    far = (pred["jod_A"] - pred["jod_B"]).abs() >= 1.0
    said = np.sign(pred["p_a_better"] - 0.5)
    truth = np.sign(pred["jod_A"] - pred["jod_B"])
    right = np.where(said == 0, 0.5, (said == truth).astype(float))
    return float(right[far.to_numpy()].mean())


@pytest.mark.slow
def test_comparator_learns_noise_and_beats_untrained_and_shuffled(pair_study, tmp_path):
    torch.set_num_threads(1)
    model = save_tiny_model(tmp_path / "tiny")
    scale = pd.read_csv(pair_study["scale"])
    split = pd.read_csv(pair_study["split"]).set_index("scene")["split"]
    train = (scale["scene"].map(split) == "train").to_numpy()
    shuffled = scale.copy()
    shuffled.loc[train, "jod"] = np.random.default_rng(0).permutation(scale.loc[train, "jod"])
    shuffled.to_csv(tmp_path / "shuffled_scale.csv", index=False)

    results = {}
    for name, table in (
        ("real", pair_study["scale"]),
        ("shuffled", tmp_path / "shuffled_scale.csv"),
    ):
        config = config_for(model, pair_study, table, tmp_path / name)
        Run(config, PairwiseTask, prepare_pairs(config)).fit()
        loaded, loaded_config, card = load_comparator(tmp_path / name)
        rows = held_out_pairs(pair_study, tmp_path / name)
        results[name] = predict_pair_rows(loaded, rows, loaded_config, card["layout"], 40)
    results["untrained"] = predict_pair_rows(
        load_vlm(model), held_out_pairs(pair_study, tmp_path / "real"), config, "two_images", 40
    )
    accuracy = {name: far_accuracy(pred) for name, pred in results.items()}
    log = pd.read_csv(tmp_path / "real" / "metrics.csv")
    real = results["real"]
    signal = float(np.mean(np.abs(real["p_ab"] - 0.5)))
    gap = float(np.mean(np.abs(real["p_ab"] - real["p_ba"])))
    print(log.to_string(), accuracy, f"|P - 1/2| {signal:.3f}, order gap {gap:.3f}", sep="\n")
    n_far = int(((real["jod_A"] - real["jod_B"]).abs() >= 1).sum())
    assert n_far == 6 * 7  # 6 unseen scenes x 7 pairs of noise levels at least 1 JOD apart
    assert accuracy["real"] >= 0.85
    assert accuracy["real"] >= accuracy["untrained"] + 0.25
    assert accuracy["real"] >= accuracy["shuffled"] + 0.25
    assert log["kl"].iloc[-1] < 0.5 * log["kl"].iloc[0]
    # trained on both orders, it answers the same whichever image is shown first
    assert gap < 0.5 * signal
