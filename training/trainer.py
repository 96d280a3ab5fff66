"""The DeQA-Score task: a LoRA-adapted multimodal LLM trained on pairs of images of the same
scene (or data set) with DeQA's losses, and :func:`train`, the entry point of every run.

The loop, validation, checkpoints and logs are the shared skeleton's (``training.run``);
this module says how the model is loaded and adapted, how a micro-batch of pairs is built,
what the loss is and how the model predicts.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from training.config import LossConfig, TrainConfig
from training.data import pair_indices
from training.labels import make_label, qalign_level
from training.losses import deqa_loss
from training.modeling import (
    ADAPTER_DIR,
    MERGED_DIR,
    VISION_NAMES,
    LoadedModel,
    answer_logits,
    apply_adapters,
    enable_checkpointing,
    find_submodule,
    fp32_master_weights,
    load_vlm,
    write_model_card,
)
from training.predict import predict_rows
from training.prompts import PromptBook
from training.run import PreparedData, Run, ScoreValidation, storage_dtype
from training.samples import score_samples

#: Batch entries that carry labels rather than model inputs.
LABEL_KEYS = ("mu", "sigma", "target")


def param_groups(
    model: torch.nn.Module, lr: float, vision_lr: float | None
) -> list[dict[str, object]]:
    """Trainable parameters, with the vision tower's in a group of its own when its rate differs."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if vision_lr is None or vision_lr == lr:
        return [{"params": [p for _, p in trainable], "lr": lr}]
    tower = find_submodule(model, VISION_NAMES) + "."
    vision = [p for n, p in trainable if n.startswith(tower)]
    rest = [p for n, p in trainable if not n.startswith(tower)]
    return [
        g for g in ({"params": rest, "lr": lr}, {"params": vision, "lr": vision_lr}) if g["params"]
    ]


def adapted_model(config: TrainConfig, precision: str) -> LoadedModel:
    """The local model with its adapters, fp32 trainable weights and, when asked, activation
    checkpointing: the start of every MLLM task (score model and comparator)."""
    run = config.run
    loaded = load_vlm(
        config.model, storage_dtype(precision), run.attn_implementation, run.hub_kernels
    )
    loaded.model = apply_adapters(loaded.model, config.adapter)
    fp32_master_weights(loaded.model)
    enable_checkpointing(loaded.model, run.gradient_checkpointing)
    return loaded


def save_adapted(
    model: torch.nn.Module,
    loaded: LoadedModel,
    out: Path,
    config: TrainConfig,
    rescalings: dict,
    extra: dict | None = None,
) -> None:
    """The adapter (with a fully trained tower or head), or merged weights; the model card."""
    merged = config.run.merge_adapters
    if merged:
        merged_model = LoadedModel(
            model.merge_and_unload(), loaded.tokenizer, loaded.processor, loaded.level_ids, out
        )
        merged_model.save(out / MERGED_DIR)
    else:
        model.save_pretrained(out / ADAPTER_DIR)
    write_model_card(out, rescalings, Path(config.model), merged, extra=extra)


def score_loss(
    model: torch.nn.Module,
    batch: dict,
    level_ids: torch.Tensor,
    weights: LossConfig,
    tail_only: bool = True,
) -> dict[str, torch.Tensor]:
    """Forward pass (logits only at the answer unless ``tail_only`` is off) and DeQA's total
    with its terms."""
    inputs = {k: v for k, v in batch.items() if k not in LABEL_KEYS}
    logits, labels, level_vocab = answer_logits(model, inputs, tail_only)
    return deqa_loss(logits, labels, level_vocab, level_ids, batch, weights)


class ScoreTask(ScoreValidation):
    """DeQA-Score's score model for :class:`training.run.Run`: units are same-scene pairs."""

    loss_terms = ("loss", "kl", "ce", "fidelity")
    images_per_unit = 2

    def __init__(self, config: TrainConfig, data: PreparedData, precision: str) -> None:
        self.config = config
        self.rescalings = data.rescalings
        self.prompts = PromptBook(config.prompts.attributes, config.prompts.questions)
        for attribute in data.table["attribute"].unique():
            self.prompts.words(attribute)  # every attribute needs its words in the prompts
        self.train_rows = data.rows("train")
        kind = config.loss.label
        self.train_rows["label"] = [
            make_label(kind, m, s)
            for m, s in zip(self.train_rows["mu"], self.train_rows["sigma"], strict=True)
        ]
        self.train_rows["level"] = [qalign_level(m) for m in self.train_rows["mu"]]
        self.loaded = adapted_model(config, precision)
        self.model = self.loaded.model
        self.encoder = self.loaded.encoder()
        self.level_ids = torch.tensor(self.loaded.level_ids)
        self.units_per_step = config.optim.pairs_per_batch

    def units(self, epoch: int) -> list[tuple[int, int]]:
        return pair_indices(
            self.train_rows, self.config.data.pair_scope, self.config.run.seed + epoch
        )

    def collate(self, units: list[tuple[int, int]], positions: list[int], epoch: int) -> dict:
        """A rows first, then B rows; each image's paraphrase seeded by its place in the epoch,
        its answer carrying its Q-Align level word (as DeQA's answers do)."""
        index = [a for a, _ in units] + [b for _, b in units]
        rows = self.train_rows.iloc[index]
        rngs = None
        if self.config.prompts.sample_paraphrases:
            seed = self.config.run.seed
            rngs = [
                random.Random(hash((seed, epoch, p, side))) for side in (0, 1) for p in positions
            ]
        samples = score_samples(
            rows,
            self.prompts,
            self.config.image.size,
            self.config.image.roi_column,
            rngs,
            rows["level"].tolist(),
        )
        batch = self.encoder(samples)
        batch["mu"] = torch.tensor(rows["mu"].to_numpy(), dtype=torch.float32)
        batch["sigma"] = torch.tensor(rows["sigma"].to_numpy(), dtype=torch.float32)
        batch["target"] = torch.tensor(np.stack(rows["label"].to_numpy()), dtype=torch.float32)
        return batch

    def loss(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        level_ids = self.level_ids.to(batch["input_ids"].device)
        return score_loss(model, batch, level_ids, self.config.loss)

    def param_groups(self) -> list[dict]:
        optim = self.config.optim
        return param_groups(self.model, optim.lr, optim.vision_lr)

    def predict(self, model: torch.nn.Module, rows: pd.DataFrame, batch_size: int):
        return predict_rows(
            self.loaded.with_model(model), self.rescalings, rows, self.config, batch_size
        )

    def save(self, model: torch.nn.Module, out: Path) -> None:
        """The adapter (with a fully trained tower or head), or merged weights; the card."""
        save_adapted(model, self.loaded, out, self.config, self.rescalings)


def train(config: TrainConfig, force: bool = False) -> Path:
    """Python API: train the MLLM (or the ResNet baseline for ``kind: resnet``) and return
    the model directory. ``force`` starts over a run whose config differs."""
    from training.baseline import ResNetTask

    if config.task == "pairwise":
        from training.comparator import PairwiseTask, prepare_pairs

        return Run(config, PairwiseTask, prepare_pairs(config)).fit(force)
    task = ResNetTask if config.kind == "resnet" else ScoreTask
    return Run(config, task).fit(force)
