"""The run skeleton that every trainer shares.

Data preparation, the process layout (accelerate: CPU, one or several GPUs, several
machines), precision, optimiser and schedule, micro-batches built in DataLoader workers, the
loop, validation with the best weights kept and early stopping, checkpoints with resume, logs
and plots. A task (the MLLM score model in ``trainer.py``, the ResNet baseline in
``baseline.py``) brings only what differs: its model, how a micro-batch is built, its loss and
its predictions (:class:`Task`).

The batch of one optimiser step is global: ``optim.pairs_per_batch`` units whatever the number
of processes, split into micro-batches of ``units_per_step / (processes x grad_accum)``, so the
data order, the schedule and a checkpoint do not depend on how many processes run.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from scaling.errors import InputError
from training.batches import worker_batches
from training.checkpoints import (
    BEST,
    CHECKPOINTS,
    WEIGHTS_FILE,
    RunState,
    load_trainable_state,
    resume_latest,
    step_checkpoints,
    write_checkpoint,
    write_weights,
)
from training.config import OptimConfig, TrainConfig
from training.data import read_table, split_scenes
from training.evaluate import evaluate
from training.labels import JodRescaling
from training.runlog import CURVES_FILE, EVAL_FILE, METRICS_FILE, TENSORBOARD_DIR, RunLog

CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.csv"
#: Settings that change neither the data, the model nor the optimisation: a resumed run may
#: differ from its first part in these.
RESUMABLE_CHANGES = {
    "run.progress",
    "run.num_workers",
    "run.prefetch_factor",
    "run.eval_batch_size",
    "run.log_every",
    "run.tensorboard",
    "run.resume",
    "run.output_dir",
}


@dataclass
class PreparedData:
    """The validated table with its split, level-scale targets and per-attribute mappings."""

    table: pd.DataFrame
    rescalings: dict[str, JodRescaling]

    def rows(self, split: str) -> pd.DataFrame:
        return self.table[self.table["split"] == split].reset_index(drop=True)


def prepare_data(config: TrainConfig) -> PreparedData:
    """Read, filter, split by scene, rescale on the training split (``mu``, ``sigma``)."""
    if config.data.table is None:
        raise InputError("data.table is not set: point it at a training table (CSV/Parquet)")
    table = read_table(config.data.table, config.data.image_root)
    if config.data.attributes:
        table = table[table["attribute"].isin(config.data.attributes)].reset_index(drop=True)
        if table.empty:
            raise InputError(
                f"no rows for attributes {config.data.attributes}", source=str(config.data.table)
            )
    table["split"] = split_scenes(
        table,
        config.data.val_fraction,
        config.data.test_fraction,
        config.run.seed,
        config.data.split_column,
    )
    train = table[table["split"] == "train"]
    if train.empty:
        raise InputError("the training split is empty", source=str(config.data.table))
    rescalings = {
        a: JodRescaling.fit(group["jod"].to_numpy()) for a, group in train.groupby("attribute")
    }
    missing = sorted(set(table["attribute"]) - set(rescalings))
    if missing:
        raise InputError(f"attributes {missing} have no training rows", field="attribute")
    mu = [rescalings[a].to_level(j) for a, j in zip(table["attribute"], table["jod"], strict=True)]
    sigma = [
        rescalings[a].std_to_level(s)
        for a, s in zip(table["attribute"], table["jod_std"], strict=True)
    ]
    table["mu"] = np.clip(mu, 1.0, 5.0)  # val/test scenes may exceed the training range
    table["sigma"] = np.asarray(sigma, dtype=float)
    return PreparedData(table, rescalings)


def resolve_precision(setting: str) -> str:
    """'auto' means bf16 where the GPU supports it, else full precision."""
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def storage_dtype(precision: str) -> torch.dtype:
    """The dtype frozen weights are stored in (trainable ones are fp32 masters)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(groups: list[dict], optim: OptimConfig, total_steps: int):
    """AdamW (fused when asked) and a cosine schedule with linear warm-up."""
    from transformers import get_cosine_schedule_with_warmup

    kwargs = {"fused": True} if optim.fused_adamw else {}
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay, **kwargs)
    warmup = math.ceil(optim.warmup_ratio * total_steps)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


class Task(Protocol):
    """What a trainer plugs into :class:`Run`."""

    model: torch.nn.Module
    #: Names of the loss dict's entries, ``"loss"`` (the total) first.
    loss_terms: tuple[str, ...]
    #: Units (pairs, or images) in one optimiser step, over all processes.
    units_per_step: int
    #: Images in one unit (2 for a pair), for the images/s figure.
    images_per_unit: int

    def units(self, epoch: int) -> list[Any]:
        """The epoch's training units in their (seeded) order."""

    def collate(self, units: list[Any], positions: list[int], epoch: int) -> dict:
        """A micro-batch of CPU tensors; runs in DataLoader workers (decodes the images).
        ``positions`` (each unit's place in the epoch) seed per-sample randomness."""

    def loss(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        """``loss`` (the total to minimise) and the unweighted terms."""

    def param_groups(self) -> list[dict]:
        """The optimiser's parameter groups."""

    def predict(self, model: torch.nn.Module, rows: pd.DataFrame, batch_size: int):
        """Predictions for ``rows``, in the rows' order."""

    #: The validation metrics, the default ``run.select_metric`` first.
    eval_metrics: tuple[str, ...]

    def validation(self, rows: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
        """Validation table of ``predictions`` for ``rows``: ``attribute, level`` ('global'
        among the levels), the ``eval_metrics`` and ``n``."""

    def save(self, model: torch.nn.Module, out: Path) -> None:
        """The trained model directory's weights and ``jodkit_model.json``."""


#: Validation metrics where lower is better.
LOWER_IS_BETTER = frozenset({"mae_jod", "brier"})


class ScoreValidation:
    """The validation of models that predict JOD per image (score model, ResNet baseline)."""

    eval_metrics = ("srcc", "plcc", "krcc", "mae_jod")

    def validation(self, rows: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
        """SRCC, PLCC, KRCC and MAE of ``jod_pred`` against the rows' JOD (``evaluate``)."""
        truth = {"jod": rows["jod"].to_numpy(), "scene": rows["scene"].to_numpy()}
        return evaluate(predictions.assign(**truth))


class TrainingInterrupted(Exception):
    """Ctrl-C during training; the message says how to resume."""


class Run:
    """One training run of ``make_task``'s task; :meth:`fit` writes the model directory."""

    def __init__(
        self,
        config: TrainConfig,
        make_task: Callable[[TrainConfig, PreparedData, str], Task],
        data: PreparedData | None = None,
    ) -> None:
        from accelerate import Accelerator

        self.config = config
        self.out = Path(config.run.output_dir)
        set_seed(config.run.seed)
        self.precision = resolve_precision(config.run.mixed_precision)
        self.accelerator = acc = Accelerator(mixed_precision=self.precision)
        self.data = data or prepare_data(config)
        self.task = make_task(config, self.data, self.precision)
        self.val_rows = self.data.rows("val")
        optim = config.optim
        units = self.task.units_per_step
        self.micro = units // (acc.num_processes * optim.grad_accum)
        if self.micro * acc.num_processes * optim.grad_accum != units:
            raise InputError(
                f"{units} units per step do not split into {acc.num_processes} processes x "
                f"{optim.grad_accum} accumulation steps; make optim.pairs_per_batch a multiple "
                f"of {acc.num_processes * optim.grad_accum}",
                field="optim.pairs_per_batch",
            )
        self.steps_per_epoch = max(1, len(self.task.units(0)) // units)
        self.total_steps = optim.max_steps or math.ceil(optim.epochs * self.steps_per_epoch)
        optimizer, self.scheduler = build_optimizer(
            self.task.param_groups(), optim, self.total_steps
        )
        self.model, self.optimizer = acc.prepare(self.task.model, optimizer)
        self.state = RunState()

    # --- the loop -------------------------------------------------------------------------

    def fit(self, force: bool = False) -> Path:
        """Train to ``total_steps`` (resuming from the newest intact checkpoint), keep the best
        or last weights and save the model directory."""
        acc = self.accelerator
        self._claim_output(force)
        self._resume()
        log = None
        if acc.is_main_process:  # the only process that writes logs
            run, task = self.config.run, self.task
            log = RunLog(
                self.out, task.loss_terms, task.eval_metrics, run.tensorboard, self.state.step
            )
        try:
            self._loop(log)
        except KeyboardInterrupt:
            raise TrainingInterrupted(self._resume_hint()) from None
        finally:
            if log:
                log.close()
        best = self.out / CHECKPOINTS / BEST / WEIGHTS_FILE
        if self.config.run.keep == "best" and best.is_file():
            load_trainable_state(acc.unwrap_model(self.model), best)
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.task.save(acc.unwrap_model(self.model), self.out)
            self.data.table.drop(columns=["label"], errors="ignore").to_csv(
                self.out / SPLIT_FILE, index=False
            )
            if log:
                log.plot()
        acc.wait_for_everyone()
        return self.out

    def _loop(self, log: RunLog | None) -> None:
        acc, config = self.accelerator, self.config
        accum = config.optim.grad_accum
        images_per_micro = self.micro * self.task.images_per_unit
        bar = tqdm(
            total=self.total_steps,
            initial=self.state.step,
            desc="train",
            disable=not (config.run.progress and acc.is_main_process),
        )
        sums = torch.zeros(len(self.task.loss_terms) + 1, device=acc.device)
        micro_batches, seconds, started = 0, 0.0, time.perf_counter()
        self.model.train()
        stop = False
        while self.state.step < self.total_steps and not stop:
            epoch, offset = divmod(self.state.step, self.steps_per_epoch)
            for index, batch in enumerate(self._loader(epoch, offset)):
                sync = (index + 1) % accum == 0
                torch.manual_seed(
                    hash((config.run.seed, self.state.step, index, acc.process_index))
                )
                batch = {k: v.to(acc.device, non_blocking=True) for k, v in batch.items()}
                with nullcontext() if sync else acc.no_sync(self.model):
                    with acc.autocast():
                        terms = self.task.loss(self.model, batch)
                    acc.backward(terms["loss"] / accum)
                nan = sums.new_tensor(float("nan"))  # a term switched off
                values = [
                    terms[t].detach().float() if t in terms else nan for t in self.task.loss_terms
                ]
                sums += torch.stack([*values, sums.new_tensor(float(images_per_micro))])
                micro_batches += 1
                if not sync:
                    continue
                if config.optim.max_grad_norm:
                    acc.clip_grad_norm_(self.model.parameters(), config.optim.max_grad_norm)
                self.optimizer.step()
                if not acc.optimizer_step_was_skipped:
                    self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.state.step += 1
                seconds += time.perf_counter() - started
                bar.update(1)
                step = self.state.step
                last = step >= self.total_steps
                if step % config.run.log_every == 0 or last:
                    row = self._reduce(sums, micro_batches, seconds)
                    if log:
                        log.train(row)
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                    sums.zero_()
                    micro_batches, seconds = 0, 0.0
                every = config.run.eval_every
                if len(self.val_rows) and ((every and step % every == 0) or last):
                    stop = self._validate(log)
                every = config.run.checkpoint_every
                if every and step % every == 0:
                    self._checkpoint()
                started = time.perf_counter()  # images/s counts training time only
                if last or stop:
                    break
        bar.close()

    def _reduce(self, sums: torch.Tensor, micro_batches: int, seconds: float) -> dict:
        """Mean loss terms over micro-batches and processes; images/s summed over processes."""
        acc = self.accelerator
        means = acc.reduce(sums[:-1] / max(micro_batches, 1), reduction="mean")
        images = acc.reduce(sums[-1:], reduction="sum")
        step = self.state.step
        row = dict(zip(self.task.loss_terms, means.tolist(), strict=True))
        row.update(
            step=step,
            epoch=round(step / self.steps_per_epoch, 4),
            lr=self.scheduler.get_last_lr()[0],
            images_per_s=float(images) / max(seconds, 1e-9),
        )
        return row

    def _loader(self, epoch: int, offset: int) -> torch.utils.data.DataLoader:
        """This process's micro-batches from step ``offset`` to the end of ``epoch``: the
        positions of its units in the epoch's order (wrapping round for the last step)."""
        acc, run = self.accelerator, self.config.run
        per_step = self.task.units_per_step
        chunks = []
        for step in range(offset, self.steps_per_epoch):
            for micro in range(self.config.optim.grad_accum):
                rank = micro * acc.num_processes + acc.process_index
                start = step * per_step + rank * self.micro
                chunks.append(list(range(start, start + self.micro)))
        build = partial(_collate, self.task, self.task.units(epoch), epoch)
        return worker_batches(
            chunks, build, run.num_workers, run.prefetch_factor, acc.device.type == "cuda"
        )

    # --- validation -----------------------------------------------------------------------

    def _validate(self, log: RunLog | None) -> bool:
        """Score the validation split (sharded over processes); keep the best weights.
        Returns True when early stopping says stop."""
        from accelerate.utils import broadcast_object_list, gather_object

        acc, run = self.accelerator, self.config.run
        model = acc.unwrap_model(self.model)
        shard = self.val_rows.iloc[acc.process_index :: acc.num_processes]
        with torch.no_grad(), acc.autocast():
            pred = self.task.predict(model, shard, run.eval_batch_size)
        model.train()
        gathered = gather_object([(shard, pred)])
        metric = run.select_metric or self.task.eval_metrics[0]
        decision = [None]
        if acc.is_main_process:
            rows = pd.concat([r for r, _ in gathered], ignore_index=True)
            table = self.task.validation(rows, pd.concat([p for _, p in gathered]))
            value = float(table.loc[table["level"] == "global", metric].mean())
            if log:
                log.evaluation(self.state.step, table)
            decision = [value]
        value = broadcast_object_list(decision)[0]
        state = self.state
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        better = state.best_value is None or (
            math.isfinite(value) and sign * value > sign * state.best_value
        )
        state.history.append({"step": state.step, metric: value})
        if better:
            state.best_value, state.best_step, state.stale_evals = value, state.step, 0
            if acc.is_main_process:
                write_weights(model, self.out / CHECKPOINTS / BEST, state)
        else:
            state.stale_evals += 1
        acc.wait_for_everyone()
        return bool(run.early_stopping and state.stale_evals >= run.early_stopping)

    # --- checkpoints and the output folder ------------------------------------------------

    def _checkpoint(self) -> None:
        acc = self.accelerator
        if acc.is_main_process:
            write_checkpoint(
                acc.unwrap_model(self.model),
                self.optimizer,
                self.scheduler,
                self.out / CHECKPOINTS,
                self.state,
                self.config.run.keep_checkpoints,
            )
        acc.wait_for_everyone()

    def _resume(self) -> None:
        if not self.config.run.resume:
            return
        model = self.accelerator.unwrap_model(self.model)
        state = resume_latest(model, self.optimizer, self.scheduler, self.out / CHECKPOINTS)
        if state is not None:
            self.state = state

    def _claim_output(self, force: bool) -> None:
        """Refuse to resume (or overwrite) a run made with a different config unless
        ``force``, which starts it over (as ``run.resume: false`` does); then write this
        config."""
        acc = self.accelerator
        saved = self.out / CONFIG_FILE
        if saved.is_file() and not force:
            differences = config_differences(saved, self.config)
            if differences:
                raise InputError(
                    "this config differs from the run already in "
                    f"{self.out} ({'; '.join(differences)}): pass --force to start that run "
                    "over, or choose another run.output_dir",
                    source=str(saved),
                )
        acc.wait_for_everyone()
        if acc.is_main_process:
            if force or not self.config.run.resume:  # start over: nothing of the old run stays
                for name in (CHECKPOINTS, TENSORBOARD_DIR):
                    shutil.rmtree(self.out / name, ignore_errors=True)
                for name in (METRICS_FILE, EVAL_FILE, CURVES_FILE):
                    (self.out / name).unlink(missing_ok=True)
            self.out.mkdir(parents=True, exist_ok=True)
            self.config.to_yaml(saved)
        acc.wait_for_everyone()

    def _resume_hint(self) -> str:
        done = step_checkpoints(self.out / CHECKPOINTS)
        where = f"interrupted at step {self.state.step} of {self.total_steps}"
        if not done:
            return (
                f"{where}; no checkpoint was written yet (run.checkpoint_every: "
                f"{self.config.run.checkpoint_every}), so running the same command again "
                "starts over"
            )
        return (
            f"{where}; the last checkpoint is {done[-1]}: run the same command again to "
            "resume from it"
        )


def _collate(task: Task, units: list, epoch: int, positions: list[int]) -> dict:
    return task.collate([units[p % len(units)] for p in positions], positions, epoch)


def config_differences(saved: Path, config: TrainConfig) -> list[str]:
    """'section.field: old -> new' for each setting that differs from a saved config."""
    try:
        old = yaml.safe_load(saved.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"cannot read the saved config ({error})", source=str(saved)) from error
    new = config.model_dump(mode="json")
    return [
        f"{key}: {a!r} -> {b!r}"
        for key, a, b in _flat_pairs(old, new)
        if key not in RESUMABLE_CHANGES and a != b
    ]


def _flat_pairs(old: dict, new: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    pairs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            pairs.extend(_flat_pairs(a, b, name + "."))
        else:
            pairs.append((name, a, b))
    return pairs
