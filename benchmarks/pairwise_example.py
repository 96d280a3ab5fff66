"""The score model against the comparator on the example study, with the human scale as the
ceiling: the evaluation table of docs/training.md (the comparator section).

Steps, each through jodkit's own code: ``jod demo`` on three crops of each of 12
scikit-image photographs (36 scenes of 12 renditions, simulated expert panel, per-scene and
cross-content trials, scales, unified training table); every crop of two photographs is a
test scene; a tiny random Qwen2-VL (``training.tiny``); the score model trained
on the unified table and the comparator trained on the trials (``task: pairwise``, Thurstone
targets), both on CPU with the learning tests' recipe and the same scene split (the
comparator reads the score run's ``split.csv``); predictions on the held-out scenes; ``jod
evaluate --task pairwise``. It also prints which soft target predicts unseen observers best
(``training.pairwise_eval.target_holdout`` on the demo's trials).

    python benchmarks/pairwise_example.py --out /tmp/pairwise-example [--steps 800]
        [--comparator-steps 2000]
        [--attribute noise|detail|all]

The tiny models are random and small: the table shows the pipeline's numbers, not what a 2B
or 7B model reaches.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

RECIPE = {
    "image": {"size": 112},
    "adapter": {"rank": 16, "alpha": 32, "dropout": 0.0, "lm_head": "full"},
    "optim": {"lr": 3e-3, "vision_lr": 1e-4, "pairs_per_batch": 8, "warmup_ratio": 0.05},
    "run": {
        "seed": 0,
        "gradient_checkpointing": False,
        "progress": False,
        "log_every": 50,
        "eval_every": None,
        "checkpoint_every": None,
        "num_workers": 0,
        "tensorboard": False,
    },
}


TEST_PHOTOS = ("chelsea", "camera")


def write_photos(folder: Path) -> Path:
    """Three square crops of each scikit-image sample photograph as PNG files: one scene
    each, 36 scenes (the learning tests' scenes)."""
    from PIL import Image

    from study.example import photo_crops

    folder.mkdir(parents=True, exist_ok=True)
    for name, k, crop in photo_crops():
        Image.fromarray(crop).save(folder / f"{name}_{k}.png")
    return folder


def split_table(demo: Path, out: Path) -> Path:
    """The training table with a split column: every crop of the test photographs is a test
    scene (content unseen in training), the others train."""
    manifest = pd.read_csv(demo / "example" / "manifest.csv")
    photo = manifest.groupby("scene")["source"].first().str.rsplit("_", n=1).str[0]
    table = pd.read_csv(demo / "training.csv")
    table["split"] = np.where(table["scene"].map(photo).isin(TEST_PHOTOS), "test", "train")
    table.to_csv(out, index=False)
    return out


def held_out_pairs(demo: Path, trials: list[Path], split: Path, attribute: str) -> pd.DataFrame:
    """Every pair of the test scenes, per-scene and cross-content, with its trials, images and
    the human scale's probability: what both models are scored on."""
    from scaling.io import read_table
    from training.pairwise_data import (
        attach_images,
        pair_splits,
        pair_table,
        read_image_index,
        read_pair_trials,
    )

    scales = [read_table(demo / "scales" / f"{k}_scales.csv") for k in ("scene", "cross")]
    pairs = pair_table(read_pair_trials(trials), *scales)
    pairs = attach_images(pairs, read_image_index(demo / "example" / "manifest.csv"))
    pairs["split"] = pair_splits(pairs, 0.0, 0.0, 0, split_table=pd.read_csv(split))
    keep = (pairs["split"] == "test") & ((pairs["attribute"] == attribute) | (attribute == "all"))
    return pairs[keep].reset_index(drop=True)


def example_study(out: Path, seed: int = 0, bootstrap: int = 100) -> Path:
    """``jod demo`` on the photographs of :func:`write_photos` (36 scenes of 12 renditions,
    simulated panel of ``seed``) in ``out/demo``, unless it is there already. ``bootstrap``:
    resamples for the scales' and the unified scale's intervals (0: none, faster)."""
    from study.demo import DemoConfig, run_demo
    from study.example import CROP_CORNERS, SAMPLE_PHOTOS
    from study.pipeline import PanelConfig

    demo = out / "demo"
    if not (demo / "demo.json").is_file():
        config = DemoConfig(
            images=str(write_photos(out / "photos")),
            scenes=len(SAMPLE_PHOTOS) * len(CROP_CORNERS),
            panel=PanelConfig(seed=seed, bootstrap=bootstrap),
            align_bootstrap=2 * bootstrap,
        )
        run_demo(demo, config, force=True, progress=False)
    return demo


def comparator_config(
    path: Path,
    steps: int,
    model: Path,
    demo: Path,
    split: Path,
    output_dir: Path,
    attributes: list[str] | None,
    scene_scales: Path | None = None,
) -> Path:
    """The comparator on the example study's per-scene judgments (2k training pairs, not the
    13k cross-content ones), Thurstone targets of ``scene_scales`` (default: the demo's)."""
    return write_config(
        path,
        steps,
        model=str(model),
        task="pairwise",
        data={"attributes": attributes} if attributes else {},
        pairs={
            "trials": [str(demo / "trials" / "scene_trials.csv")],
            "scene_scales": str(scene_scales or demo / "scales" / "scene_scales.csv"),
            "cross_scales": str(demo / "scales" / "cross_scales.csv"),
            "images": str(demo / "example" / "manifest.csv"),
            "split_table": str(split),
            "kl_weight": 5.0,
        },
        run={"output_dir": str(output_dir)},
    )


def write_config(path: Path, steps: int, **sections) -> Path:
    config = {**RECIPE, **sections}
    config["optim"] = {**RECIPE["optim"], "max_steps": steps}
    config["run"] = {**RECIPE["run"], **sections.get("run", {})}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder")
    parser.add_argument("--steps", type=int, default=800, help="the score model's steps")
    parser.add_argument(
        "--comparator-steps", type=int, default=None, help="the comparator's (default: --steps)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the simulated panel's seed")
    parser.add_argument(
        "--attribute", default="noise", help="noise, detail or all (the demo has both)"
    )
    args = parser.parse_args(argv)

    import torch

    from training.comparator import predict_pairs
    from training.config import TrainConfig
    from training.pairwise_data import read_pair_trials
    from training.pairwise_eval import evaluate_pairwise_files, target_holdout
    from training.predict import predict_images
    from training.tiny import save_tiny_model
    from training.trainer import train

    torch.set_num_threads(1)
    out = args.out.resolve()
    started = time.perf_counter()
    demo = example_study(out, args.seed)
    model = save_tiny_model(out / "tiny")
    trials = [demo / "trials" / "scene_trials.csv", demo / "trials" / "cross_trials.csv"]
    table = split_table(demo, out / "training_split.csv")
    attributes = {"attributes": [args.attribute]} if args.attribute != "all" else {}
    score_yaml = write_config(
        out / "score.yaml",
        args.steps,
        model=str(model),
        data={
            "table": str(table),
            "image_root": str(demo),
            "split_column": "split",
            **attributes,
        },
        loss={"kl_weight": 1.0},
        run={"output_dir": str(out / "score")},
    )
    comparator_yaml = comparator_config(
        out / "comparator.yaml",
        args.comparator_steps or args.steps,
        model,
        demo,
        out / "score" / "split.csv",
        out / "comparator",
        attributes.get("attributes"),
    )
    timings = {}
    for name, path in (("score", score_yaml), ("comparator", comparator_yaml)):
        t0 = time.perf_counter()
        train(TrainConfig.from_yaml(path), force=True)
        timings[name] = time.perf_counter() - t0
    predict_images(out / "score", demo / "example" / "images", progress=False).to_csv(
        out / "score_predictions.csv", index=False
    )
    evaluation_pairs = held_out_pairs(demo, trials, out / "score" / "split.csv", args.attribute)
    evaluation_pairs.to_csv(out / "pairs.csv", index=False)
    predict_pairs(out / "comparator", out / "pairs.csv", 32, progress=False).to_csv(
        out / "comparator_predictions.csv", index=False
    )
    table = evaluate_pairwise_files(
        out / "comparator_predictions.csv",
        out / "pairs.csv",
        out / "evaluation",
        score_predictions=out / "score_predictions.csv",
        scales=demo / "scales" / "scene_scales.csv",
    )
    pd.set_option("display.width", 160)
    print(table.round(3).to_string(index=False))
    disagreement = pd.read_csv(out / "evaluation" / "disagreement.csv")
    print(
        f"comparator's own scale vs the experts' (held-out scenes, centred per scene): "
        f"mean |difference| {disagreement['difference'].abs().mean():.2f} JOD, "
        f"largest {disagreement['difference'].abs().max():.2f} JOD"
    )
    targets = target_holdout(read_pair_trials(trials))
    print("soft targets scored on held-out observers (5 folds):")
    print(targets.round(4).to_string(index=False))
    print(
        f"training: score model {timings['score']:.0f} s, comparator "
        f"{timings['comparator']:.0f} s ({args.steps} and "
        f"{args.comparator_steps or args.steps} steps); "
        f"total {time.perf_counter() - started:.0f} s"
    )
    return table


if __name__ == "__main__":
    main()
