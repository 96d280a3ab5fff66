"""Batched prediction: JOD, predicted std and level probabilities per image and attribute."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from scaling.errors import InputError
from training.batches import worker_batches
from training.config import TrainConfig
from training.labels import JodRescaling
from training.losses import level_scores
from training.modeling import LoadedModel, answer_logits, load_trained, read_model_card
from training.prompts import LEVEL_WORDS, PromptBook
from training.samples import score_samples

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PROB_COLUMNS = tuple(f"p_{w}" for w in LEVEL_WORDS)


@torch.no_grad()
def predict_rows(
    loaded: LoadedModel,
    rescalings: dict[str, JodRescaling],
    rows: pd.DataFrame,
    config: TrainConfig,
    batch_size: int,
    padding_side: str = "left",
    progress: bool = False,
    num_workers: int = 0,
) -> pd.DataFrame:
    """Predictions for ``rows`` (columns image_path, attribute, optionally scene); images
    are decoded in ``num_workers`` DataLoader workers."""
    unknown = sorted(set(rows["attribute"]) - set(rescalings))
    if unknown:
        raise InputError(
            f"the model was not trained on attributes {unknown}; it knows {sorted(rescalings)}",
            field="attribute",
        )
    prompts = PromptBook(config.prompts.attributes, config.prompts.questions)
    encoder = loaded.encoder(padding_side)
    model = loaded.model.eval()
    device = next(model.parameters()).device
    level_ids = torch.tensor(loaded.level_ids, device=device)
    probs, scores, stds = [], [], []
    chunks = [rows.iloc[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    image = config.image

    def build(chunk: pd.DataFrame) -> dict:
        batch = encoder(score_samples(chunk, prompts, image.size, image.roi_column))
        batch["labels"] = torch.full_like(batch["labels"], -100)  # only the level is read
        return batch

    loader = worker_batches(chunks, build, num_workers)
    for batch in tqdm(loader, total=len(chunks), desc="predict", disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        _, _, vocab = answer_logits(model, batch)
        logits = vocab[:, level_ids].float()
        score, std = level_scores(logits)
        probs.append(logits.softmax(-1).cpu().numpy())
        scores.append(score.cpu().numpy())
        stds.append(std.cpu().numpy())
    out = rows[[c for c in ("image_path", "scene", "attribute") if c in rows.columns]].copy()
    out["score"] = np.concatenate(scores)
    out["score_std"] = np.concatenate(stds)
    out["jod_pred"] = [
        float(rescalings[a].to_jod(s)) for a, s in zip(out["attribute"], out["score"], strict=True)
    ]
    out["jod_std_pred"] = [
        float(rescalings[a].std_to_jod(s))
        for a, s in zip(out["attribute"], out["score_std"], strict=True)
    ]
    out[list(PROB_COLUMNS)] = np.concatenate(probs)
    return out.reset_index(drop=True)


def list_images(images: Path) -> list[Path]:
    """Image files in a folder (recursively, sorted) or a single file."""
    if images.is_file():
        return [images]
    if not images.is_dir():
        raise InputError("no such image file or folder", source=str(images))
    found = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found", source=str(images))
    return found


def predict_images(
    model_dir: str | Path,
    images: str | Path,
    attributes: Sequence[str] | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """Every image x attribute (default: all the model was trained on) through a trained model."""
    model_dir = Path(model_dir)
    card, rescalings = read_model_card(model_dir)
    config = TrainConfig.from_yaml(model_dir / "config.yaml")
    if card.get("task", "score") != "score":
        raise InputError(
            f"{model_dir} holds a comparator: ask it with `jod predict --pairs` or `jod compare`",
            source=str(model_dir),
        )
    paths = [str(p) for p in list_images(Path(images))]
    attributes = list(attributes or rescalings)
    rows = pd.DataFrame(
        [(p, a) for a in attributes for p in paths], columns=["image_path", "attribute"]
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    workers = config.run.num_workers
    if card.get("kind") == "resnet":
        from training.baseline import WEIGHTS_DIR, ResNetRegressor, predict_baseline_rows

        model = ResNetRegressor.load(model_dir / WEIGHTS_DIR).to(device)
        return predict_baseline_rows(
            model, rescalings, rows, config.image.size, batch_size, progress
        )
    loaded, rescalings = load_trained(model_dir, hub_kernels=config.run.hub_kernels)
    loaded.model.to(device)
    return predict_rows(
        loaded, rescalings, rows, config, batch_size, progress=progress, num_workers=workers
    )
