"""The CNN baseline of the industrial portrait paper: a ResNet regressing JOD with MSE.

Same table, split, JOD rescaling and evaluation as the multimodal LLM, so that reports show
both side by side. The backbone is transformers' ``ResNetModel`` (torchvision is not needed):
ResNet-50 by default, loaded from a local directory (``from_pretrained``) when ``model`` is set.
The head regresses the 1..5 level-scale score (an affine map of the JOD per attribute, so MSE
on it is MSE on the JOD up to a constant factor), one output per attribute.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from scaling.errors import InputError
from training.config import TrainConfig
from training.data import load_image
from training.labels import JodRescaling
from training.modeling import missing_model_message, write_model_card
from training.trainer import (
    MetricsLog,
    PreparedData,
    build_optimizer,
    prepare_data,
    resolve_precision,
    set_seed,
)

WEIGHTS_DIR = "resnet"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNetRegressor(torch.nn.Module):
    """A ResNet backbone, global pooling and one linear output per attribute."""

    def __init__(self, backbone: torch.nn.Module, attributes: list[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.attributes = list(attributes)
        self.head = torch.nn.Linear(backbone.config.hidden_sizes[-1], len(attributes))
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.constant_(self.head.bias, 3.0)  # the middle of the 1..5 scale

    def forward(self, pixels: torch.Tensor, attribute_index: torch.Tensor) -> torch.Tensor:
        """Level-scale scores, one per image, from the head of its attribute."""
        features = self.backbone(pixel_values=pixels).pooler_output.flatten(1)
        return self.head(features).gather(1, attribute_index[:, None]).squeeze(1)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(directory)
        torch.save(self.head.state_dict(), directory / "head.pt")
        (directory / "attributes.json").write_text(json.dumps(self.attributes))

    @classmethod
    def load(cls, directory: Path) -> ResNetRegressor:
        from transformers import ResNetModel

        attributes = json.loads((directory / "attributes.json").read_text())
        model = cls(ResNetModel.from_pretrained(directory, local_files_only=True), attributes)
        model.head.load_state_dict(torch.load(directory / "head.pt", weights_only=True))
        return model


def build_backbone(config: TrainConfig) -> torch.nn.Module:
    """Pretrained weights from the local ``model`` directory, else a randomly initialised one."""
    from transformers import ResNetConfig, ResNetModel

    if config.model is None:
        return ResNetModel(ResNetConfig(**config.resnet.model_dump()))
    path = Path(config.model)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(missing_model_message(path))
    model = ResNetModel.from_pretrained(path, local_files_only=True)
    if model.config.model_type != "resnet":
        raise InputError(f"expected a ResNet, found {model.config.model_type}", source=str(path))
    return model


def pixel_batch(paths: list[str], size: int) -> torch.Tensor:
    """Images padded to square with the mean colour (as for the MLLM), ImageNet-normalised."""
    mean = np.array(IMAGENET_MEAN, np.float32)
    std = np.array(IMAGENET_STD, np.float32)
    arrays = [(np.asarray(load_image(p, size)[-1], np.float32) / 255 - mean) / std for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class BaselineTrainer:
    """Trains :class:`ResNetRegressor` with MSE on the level-scale JOD; :meth:`fit` saves it."""

    def __init__(self, config: TrainConfig, data: PreparedData | None = None) -> None:
        from accelerate import Accelerator

        self.config = config
        self.out = Path(config.run.output_dir)
        set_seed(config.run.seed)
        self.accelerator = Accelerator(
            mixed_precision=resolve_precision(config.run.mixed_precision)
        )
        self.data = data or prepare_data(config)
        self.train_rows = self.data.table[self.data.table["split"] == "train"].reset_index(
            drop=True
        )
        if self.train_rows.empty:
            raise InputError("the training split is empty", field="scene")
        attributes = sorted(self.data.rescalings)
        self.regressor = ResNetRegressor(build_backbone(config), attributes)
        optim = config.optim
        self.batch_size = 2 * optim.pairs_per_batch  # as many images per step as the MLLM
        self.steps_per_epoch = max(1, len(self.train_rows) // self.batch_size)
        self.total_steps = optim.max_steps or math.ceil(optim.epochs * self.steps_per_epoch)
        params = [p for p in self.regressor.parameters() if p.requires_grad]
        optimizer, scheduler = build_optimizer(
            [{"params": params, "lr": optim.lr}], optim, self.total_steps
        )
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            self.regressor, optimizer, scheduler
        )

    def batch(self, rows: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pixels, attribute indices and level-scale targets of table rows, on the device."""
        device = self.accelerator.device
        pixels = pixel_batch(rows["image_path"].tolist(), self.config.image.size)
        index = torch.tensor([self.regressor.attributes.index(a) for a in rows["attribute"]])
        target = torch.tensor(rows["mu"].to_numpy(), dtype=torch.float32)
        return pixels.to(device), index.to(device), target.to(device)

    def loss(self, rows: pd.DataFrame) -> torch.Tensor:
        pixels, index, target = self.batch(rows)
        return torch.nn.functional.mse_loss(self.model(pixels, index).float(), target)

    def fit(self) -> Path:
        """Train for ``total_steps`` over reshuffled epochs and save the model directory."""
        acc = self.accelerator
        self.out.mkdir(parents=True, exist_ok=True)
        self.config.to_yaml(self.out / "config.yaml")
        log = MetricsLog(self.out / "metrics.csv", append=False)
        rng = np.random.default_rng(self.config.run.seed)
        self.model.train()
        losses, started = [], time.perf_counter()
        bar = tqdm(
            range(self.total_steps), desc="train resnet", disable=not self.config.run.progress
        )
        for step in bar:
            offset = step % self.steps_per_epoch
            if offset == 0:
                order = rng.permutation(len(self.train_rows))
            chosen = order[offset * self.batch_size : (offset + 1) * self.batch_size]
            with acc.autocast():
                loss = self.loss(self.train_rows.iloc[chosen])
            acc.backward(loss)
            if self.config.optim.max_grad_norm:
                acc.clip_grad_norm_(self.model.parameters(), self.config.optim.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
            losses.append(float(loss.detach()))
            done = step + 1
            if done % self.config.run.log_every == 0 or done == self.total_steps:
                log.write(
                    {
                        "step": done,
                        "epoch": round(done / self.steps_per_epoch, 4),
                        "lr": self.scheduler.get_last_lr()[0],
                        "loss": float(np.mean(losses)),
                        "images_per_s": len(losses)
                        * self.batch_size
                        / (time.perf_counter() - started),
                    }
                )
                losses, started = [], time.perf_counter()
        return self.save_model()

    def save_model(self) -> Path:
        """Backbone, head, attribute order, JOD mappings and the split, like the MLLM's run."""
        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            acc.unwrap_model(self.model).save(self.out / WEIGHTS_DIR)
            write_model_card(self.out, self.data.rescalings, self.config.model, kind="resnet")
            self.data.table.drop(columns=["label"]).to_csv(self.out / "split.csv", index=False)
        return self.out


@torch.no_grad()
def predict_baseline_rows(
    model: ResNetRegressor,
    rescalings: dict[str, JodRescaling],
    rows: pd.DataFrame,
    image_size: int,
    batch_size: int,
    progress: bool = False,
) -> pd.DataFrame:
    """Predictions for ``rows`` with the MLLM's columns ``score`` and ``jod_pred``."""
    unknown = sorted(set(rows["attribute"]) - set(model.attributes))
    if unknown:
        raise InputError(
            f"the model was not trained on attributes {unknown}; it knows {model.attributes}",
            field="attribute",
        )
    model = model.eval()
    device = next(model.parameters()).device
    scores = []
    for start in tqdm(range(0, len(rows), batch_size), desc="predict", disable=not progress):
        chunk = rows.iloc[start : start + batch_size]
        pixels = pixel_batch(chunk["image_path"].tolist(), image_size).to(device)
        index = torch.tensor([model.attributes.index(a) for a in chunk["attribute"]], device=device)
        scores.append(model(pixels, index).float().cpu().numpy())
    out = rows[[c for c in ("image_path", "scene", "attribute") if c in rows.columns]].copy()
    out["score"] = np.concatenate(scores)
    out["jod_pred"] = [
        float(rescalings[a].to_jod(s)) for a, s in zip(out["attribute"], out["score"], strict=True)
    ]
    return out.reset_index(drop=True)
