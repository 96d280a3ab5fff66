"""The CNN baseline of the industrial portrait paper: a ResNet regressing JOD with MSE.

Same table, split, JOD rescaling and evaluation as the multimodal LLM, so that reports show
both side by side. The backbone is transformers' ``ResNetModel`` (torchvision is not needed):
ResNet-50 by default, loaded from a local directory (``from_pretrained``) when ``model`` is set.
The head regresses the 1..5 level-scale score (an affine map of the JOD per attribute, so MSE
on it is MSE on the JOD up to a constant factor), one output per attribute.
"""

from __future__ import annotations

import json
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
from training.run import PreparedData, ScoreValidation

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


class ResNetTask(ScoreValidation):
    """The baseline for :class:`training.run.Run`: units are images, MSE on the level scale."""

    loss_terms = ("loss",)
    images_per_unit = 1

    def __init__(self, config: TrainConfig, data: PreparedData, precision: str) -> None:
        self.config = config
        self.rescalings = data.rescalings
        self.train_rows = data.rows("train")
        self.model = ResNetRegressor(build_backbone(config), sorted(data.rescalings))
        self.units_per_step = 2 * config.optim.pairs_per_batch  # as many images as the MLLM

    def units(self, epoch: int) -> list[int]:
        order = np.random.default_rng((self.config.run.seed, epoch))
        return order.permutation(len(self.train_rows)).tolist()

    def collate(self, units: list[int], positions: list[int], epoch: int) -> dict:
        rows = self.train_rows.iloc[units]
        attributes = self.model.attributes
        return {
            "pixels": pixel_batch(rows["image_path"].tolist(), self.config.image.size),
            "attribute_index": torch.tensor([attributes.index(a) for a in rows["attribute"]]),
            "target": torch.tensor(rows["mu"].to_numpy(), dtype=torch.float32),
        }

    def loss(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        score = model(batch["pixels"], batch["attribute_index"]).float()
        return {"loss": torch.nn.functional.mse_loss(score, batch["target"])}

    def param_groups(self) -> list[dict]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return [{"params": params, "lr": self.config.optim.lr}]

    def predict(self, model: torch.nn.Module, rows: pd.DataFrame, batch_size: int):
        size = self.config.image.size
        return predict_baseline_rows(model, self.rescalings, rows, size, batch_size)

    def save(self, model: torch.nn.Module, out: Path) -> None:
        """Backbone, head, attribute order and the card (JOD mappings)."""
        model.save(out / WEIGHTS_DIR)
        write_model_card(out, self.rescalings, self.config.model, kind="resnet")


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
