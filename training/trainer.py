"""The training loop: accelerate (CPU, one or several GPUs), pairs from the same scene,
DeQA's losses, cosine schedule with warm-up, checkpoints with resume, a CSV metrics log.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from scaling.errors import InputError
from training.config import LossConfig, OptimConfig, TrainConfig
from training.data import pair_indices, read_table, split_scenes
from training.labels import JodRescaling, make_label
from training.losses import answer_ce, fidelity, level_kl, level_scores
from training.modeling import (
    ADAPTER_DIR,
    MERGED_DIR,
    VISION_NAMES,
    LoadedModel,
    apply_adapters,
    find_submodule,
    level_logits,
    load_vlm,
    write_model_card,
)
from training.predict import samples_for
from training.prompts import PromptBook

METRIC_FIELDS = ("step", "epoch", "lr", "loss", "kl", "ce", "fidelity", "images_per_s")
CHECKPOINTS = "checkpoints"


@dataclass
class PreparedData:
    """The validated table with its split, level-scale labels and per-attribute mappings."""

    table: pd.DataFrame
    rescalings: dict[str, JodRescaling]


def prepare_data(config: TrainConfig) -> PreparedData:
    """Read, filter, split by scene, rescale on the training split, build labels."""
    if config.data.table is None:
        raise InputError("data.table is not set: point it at a training table (CSV/Parquet)")
    table = read_table(config.data.table, config.data.image_root)
    if config.data.attributes:
        table = table[table["attribute"].isin(config.data.attributes)].reset_index(drop=True)
        if table.empty:
            raise InputError(
                f"no rows for attributes {config.data.attributes}", source=str(config.data.table)
            )
    if config.kind == "vlm":  # every attribute needs its words in the prompts
        prompts = PromptBook(config.prompts.attributes, config.prompts.questions)
        for attribute in table["attribute"].unique():
            prompts.words(attribute)
    table["split"] = split_scenes(
        table,
        config.data.val_fraction,
        config.data.test_fraction,
        config.run.seed,
        config.data.split_column,
    )
    train = table[table["split"] == "train"]
    rescalings = {
        a: JodRescaling.fit(group["jod"].to_numpy()) for a, group in train.groupby("attribute")
    }
    missing = sorted(set(table["attribute"]) - set(rescalings))
    if missing:
        raise InputError(f"attributes {missing} have no training rows", field="attribute")
    mu = np.array(
        [rescalings[a].to_level(j) for a, j in zip(table["attribute"], table["jod"], strict=True)]
    )
    sigma = np.array(
        [
            rescalings[a].std_to_level(s)
            for a, s in zip(table["attribute"], table["jod_std"], strict=True)
        ]
    )
    table["mu"] = np.clip(mu, 1.0, 5.0)  # val/test scenes may exceed the training range
    table["sigma"] = sigma
    table["label"] = [
        make_label(config.loss.label, m, s) for m, s in zip(table["mu"], sigma, strict=True)
    ]
    return PreparedData(table, rescalings)


def resolve_precision(setting: str) -> str:
    """'auto' means bf16 where the GPU supports it, else full precision."""
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def deqa_loss(
    model: torch.nn.Module, batch: dict, level_ids: torch.Tensor, weights: LossConfig
) -> dict[str, torch.Tensor]:
    """DeQA's total: fidelity + 0.05 (CE + KL) by default; zero weights skip a term.

    ``batch`` holds the A rows of its pairs first, then the B rows, plus ``mu``, ``sigma``
    and ``target`` (the level-scale labels).
    """
    model_inputs = {k: v for k, v in batch.items() if k not in ("mu", "sigma", "target")}
    logits, vocab = level_logits(model, model_inputs)
    terms = {}
    if weights.kl_weight:
        terms["kl"] = level_kl(vocab, level_ids, batch["target"])
    if weights.ce_weight:
        terms["ce"] = answer_ce(logits, batch["labels"])
    if weights.fidelity_weight:
        score, _ = level_scores(vocab[:, level_ids].float())
        n = score.shape[0] // 2
        mu, sigma = batch["mu"], batch["sigma"]
        terms["fidelity"] = fidelity(score[:n], score[n:], mu[:n], mu[n:], sigma[:n], sigma[n:])
    total = sum(getattr(weights, f"{name}_weight") * value for name, value in terms.items())
    return {"loss": total, **terms}


def build_optimizer(groups: list[dict], optim: OptimConfig, total_steps: int):
    """AdamW (fused when asked) and a cosine schedule with linear warm-up."""
    from transformers import get_cosine_schedule_with_warmup

    kwargs = {"fused": True} if optim.fused_adamw else {}
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay, **kwargs)
    warmup = math.ceil(optim.warmup_ratio * total_steps)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


class Trainer:
    """One training run from a :class:`TrainConfig`; :meth:`fit` writes the model directory."""

    def __init__(self, config: TrainConfig, data: PreparedData | None = None) -> None:
        from accelerate import Accelerator

        self.config = config
        self.out = Path(config.run.output_dir)
        set_seed(config.run.seed)
        self.precision = resolve_precision(config.run.mixed_precision)
        self.accelerator = Accelerator(
            mixed_precision=self.precision, gradient_accumulation_steps=config.optim.grad_accum
        )
        self.data = data or prepare_data(config)
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        self.loaded: LoadedModel = load_vlm(config.model, dtype, config.run.attn_implementation)
        self.loaded.model = apply_adapters(self.loaded.model, config.adapter)
        if config.run.gradient_checkpointing:
            self.loaded.model.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": False}
            )
            self.loaded.model.enable_input_require_grads()
        self.prompts = PromptBook(config.prompts.attributes, config.prompts.questions)
        self.encoder = self.loaded.encoder()
        self.train_rows = self.data.table[self.data.table["split"] == "train"].reset_index(
            drop=True
        )
        if self.train_rows.empty:
            raise InputError("the training split is empty", field="scene")
        optim = config.optim
        pairs_per_step = optim.pairs_per_batch * optim.grad_accum * self.accelerator.num_processes
        self.steps_per_epoch = max(1, len(self.train_rows) // pairs_per_step)
        self.total_steps = optim.max_steps or math.ceil(optim.epochs * self.steps_per_epoch)
        optimizer, scheduler = build_optimizer(
            param_groups(self.loaded.model, optim.lr, optim.vision_lr), optim, self.total_steps
        )
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            self.loaded.model, optimizer, scheduler
        )
        self.level_ids = torch.tensor(self.loaded.level_ids, device=self.accelerator.device)
        self.step = 0

    def _batches(self, epoch: int):
        """This process's batches of pairs for an epoch (same order on every run)."""
        pairs = pair_indices(
            self.train_rows, self.config.data.pair_scope, self.config.run.seed + epoch
        )
        acc = self.accelerator
        pairs = pairs[acc.process_index :: acc.num_processes]
        size = self.config.optim.pairs_per_batch
        n_batches = self.steps_per_epoch * self.config.optim.grad_accum
        return [pairs[i * size : (i + 1) * size] for i in range(n_batches)]

    def _batch_tensors(self, pairs: list[tuple[int, int]], rng: random.Random) -> dict:
        index = [a for a, _ in pairs] + [b for _, b in pairs]
        rows = self.train_rows.iloc[index]
        sample_rng = rng if self.config.prompts.sample_paraphrases else None
        samples = samples_for(
            rows, self.prompts, self.config.image.size, self.config.image.roi_column, sample_rng
        )
        batch = self.encoder(samples)
        batch["mu"] = torch.tensor(rows["mu"].to_numpy(), dtype=torch.float32)
        batch["sigma"] = torch.tensor(rows["sigma"].to_numpy(), dtype=torch.float32)
        batch["target"] = torch.tensor(np.stack(rows["label"].to_numpy()), dtype=torch.float32)
        return {k: v.to(self.accelerator.device) for k, v in batch.items()}

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        return deqa_loss(self.model, batch, self.level_ids, self.config.loss)

    def fit(self) -> Path:
        """Train to ``total_steps`` (resuming from the last checkpoint) and save the model."""
        acc = self.accelerator
        self.out.mkdir(parents=True, exist_ok=True)
        self.config.to_yaml(self.out / "config.yaml")
        self._resume()
        log = MetricsLog(self.out / "metrics.csv", append=self.step > 0)
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="train",
            disable=not (self.config.run.progress and acc.is_main_process),
        )
        self.model.train()
        running: dict[str, list[float]] = {}
        images, started = 0, time.perf_counter()
        while self.step < self.total_steps:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            batches = self._batches(epoch)
            accum = self.config.optim.grad_accum
            for index in range(offset * accum, len(batches)):
                rng = random.Random(hash((self.config.run.seed, epoch, index)))
                batch = self._batch_tensors(batches[index], rng)
                with acc.accumulate(self.model), acc.autocast():
                    terms = self.loss(batch)
                    acc.backward(terms["loss"])
                    if acc.sync_gradients and self.config.optim.max_grad_norm:
                        acc.clip_grad_norm_(
                            self.model.parameters(), self.config.optim.max_grad_norm
                        )
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                images += batch["input_ids"].shape[0]
                for name, value in terms.items():
                    running.setdefault(name, []).append(float(value.detach()))
                if not acc.sync_gradients:
                    continue
                self.step += 1
                bar.update(1)
                if self.step % self.config.run.log_every == 0 or self.step == self.total_steps:
                    elapsed = time.perf_counter() - started
                    row = {name: float(np.mean(v)) for name, v in running.items()}
                    row.update(
                        step=self.step,
                        epoch=round(self.step / self.steps_per_epoch, 4),
                        lr=self.scheduler.get_last_lr()[0],
                        images_per_s=images / elapsed,
                    )
                    log.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                    running, images, started = {}, 0, time.perf_counter()
                every = self.config.run.checkpoint_every
                if every and self.step % every == 0:
                    self.save_checkpoint()
                if self.step >= self.total_steps:
                    break
        bar.close()
        return self.save_model()

    def save_checkpoint(self) -> Path:
        """Model, optimiser, scheduler and RNG states, resumable with the same config."""
        path = self.out / CHECKPOINTS / f"step_{self.step:08d}"
        self.accelerator.save_state(str(path))
        if self.accelerator.is_main_process:
            (path / "trainer_state.json").write_text(json.dumps({"step": self.step}))
        return path

    def _resume(self) -> None:
        root = self.out / CHECKPOINTS
        if not (self.config.run.resume and root.is_dir()):
            return
        done = sorted(p for p in root.iterdir() if (p / "trainer_state.json").is_file())
        if done:
            self.accelerator.load_state(str(done[-1]))
            self.step = json.loads((done[-1] / "trainer_state.json").read_text())["step"]

    def save_model(self) -> Path:
        """Adapter (or merged weights), tokenizer, processor, config and JOD mappings."""
        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            model = acc.unwrap_model(self.model)
            merged = self.config.run.merge_adapters
            if merged:
                loaded = LoadedModel(
                    model.merge_and_unload(),
                    self.loaded.tokenizer,
                    self.loaded.processor,
                    self.loaded.level_ids,
                    self.out,
                )
                loaded.save(self.out / MERGED_DIR)
            else:
                model.save_pretrained(self.out / ADAPTER_DIR)
            write_model_card(self.out, self.data.rescalings, Path(self.config.model), merged)
            self.data.table.drop(columns=["label"]).to_csv(self.out / "split.csv", index=False)
        return self.out


class MetricsLog:
    """``metrics.csv``: one row per logged step, appended across resumed runs."""

    def __init__(self, path: Path, append: bool) -> None:
        self.path = path
        if not (append and path.is_file()):
            with path.open("w", newline="") as f:
                csv.DictWriter(f, METRIC_FIELDS).writeheader()

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, METRIC_FIELDS, extrasaction="ignore").writerow(row)


def train(config: TrainConfig) -> Path:
    """Python API: train (the MLLM, or the ResNet baseline for ``kind: resnet``) and return
    the model directory."""
    if config.kind == "resnet":
        from training.baseline import BaselineTrainer

        return BaselineTrainer(config).fit()
    return Trainer(config).fit()
