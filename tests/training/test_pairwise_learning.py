"""The comparator's learning test on the example study: a tiny random VLM trained on CPU on the
study's noise ladders must tell which of two renditions of an unseen scene is less noisy,
answer the same whichever image comes first, and beat an untrained model and one trained on
shuffled answers.

Data: ``jod demo`` on three crops of each of 12 scikit-image photographs
(``benchmarks/pairwise_example.py``, the evaluation of docs/training.md): 36 scenes of 12
renditions (4 detail levels x noise 0, 0.03, 0.07 at 192 px), 15 simulated observers per
scene; the noise attribute's per-scene judgments with the Thurstone targets of the experts'
scale. Every crop of two photographs is a test scene (content unseen in training). The
shuffled control permutes the experts' JOD among the training images, so its answers carry
no rule; the untrained model is the same random model before training.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("skimage.data")
pytest.importorskip("cv2")

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

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pairwise_example.py"
STEPS = 300


def load_benchmark():
    spec = importlib.util.spec_from_file_location("pairwise_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def far_accuracy(pred: pd.DataFrame) -> float:
    """Share of pairs at least 1 JOD apart whose better image gets P > 1/2 (P = 1/2: half)."""
    far = (pred["jod_A"] - pred["jod_B"]).abs() >= 1.0
    said = np.sign(pred["p_a_better"] - 0.5)
    truth = np.sign(pred["jod_A"] - pred["jod_B"])
    right = np.where(said == 0, 0.5, (said == truth).astype(float))
    return float(right[far.to_numpy()].mean())


def shuffled_scales(scales: Path, split: Path, out: Path) -> Path:
    """The experts' scale with the training scenes' JOD permuted within each attribute."""
    table = pd.read_csv(scales)
    scene_split = pd.read_csv(split).groupby("scene")["split"].first()
    rng = np.random.default_rng(0)
    for attribute in table["attribute"].unique():
        rows = (table["attribute"] == attribute) & (table["scene"].map(scene_split) == "train")
        table.loc[rows, "jod"] = rng.permutation(table.loc[rows, "jod"].to_numpy())
    table.to_csv(out, index=False)
    return out


@pytest.mark.slow
def test_comparator_learns_the_example_studys_noise_and_beats_the_controls(tmp_path):
    torch.set_num_threads(1)
    bench = load_benchmark()
    demo = bench.example_study(tmp_path, seed=0, bootstrap=0)
    split = bench.split_table(demo, tmp_path / "training_split.csv")
    model = save_tiny_model(tmp_path / "tiny")
    scales = {
        "real": None,
        "shuffled": shuffled_scales(
            demo / "scales" / "scene_scales.csv", split, tmp_path / "shuffled_scales.csv"
        ),
    }
    results = {}
    for name, scene_scales in scales.items():
        path = bench.comparator_config(
            tmp_path / f"{name}.yaml",
            STEPS,
            model,
            demo,
            split,
            tmp_path / name,
            ["noise"],
            scene_scales,
        )
        config = TrainConfig.from_yaml(path)
        Run(config, PairwiseTask, prepare_pairs(config)).fit()
        loaded, loaded_config, card = load_comparator(tmp_path / name)
        if name == "real":  # the held-out scenes' pairs, with the experts' JOD
            pairs = pd.read_csv(tmp_path / name / "split.csv")
            held_out = pairs[pairs["split"] == "test"].reset_index(drop=True)
        results[name] = predict_pair_rows(loaded, held_out, loaded_config, card["layout"], 40)
    results["untrained"] = predict_pair_rows(load_vlm(model), held_out, config, "two_images", 40)
    accuracy = {name: far_accuracy(pred) for name, pred in results.items()}
    log = pd.read_csv(tmp_path / "real" / "metrics.csv")
    real = results["real"]
    signal = float(np.mean(np.abs(real["p_ab"] - 0.5)))
    gap = float(np.mean(np.abs(real["p_ab"] - real["p_ba"])))
    n_far = int(((real["jod_A"] - real["jod_B"]).abs() >= 1).sum())
    print(log.to_string(), accuracy, f"|P - 1/2| {signal:.3f}, order gap {gap:.3f}", sep="\n")
    print(f"{n_far} of {len(real)} held-out pairs at least 1 JOD apart")
    assert set(held_out["attribute"]) == {"noise"} and set(held_out["task"]) == {"per_scene"}
    assert n_far >= 200  # 6 unseen scenes, most of their 66 pairs
    assert accuracy["real"] >= 0.85
    assert accuracy["real"] >= accuracy["untrained"] + 0.25
    assert accuracy["real"] >= accuracy["shuffled"] + 0.25
    assert log["kl"].iloc[-1] < 0.5 * log["kl"].iloc[0]
    # trained on both orders, it answers the same whichever image is shown first: P(A better)
    # asked with A first (p_ab) and with B first (p_ba) differ by less than half the signal
    assert gap < 0.5 * signal
