"""The training configuration: one pydantic object, read from YAML and saved with every run.

A run is reproducible from the ``config.yaml`` it writes next to its weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scaling.errors import InputError, from_validation, from_yaml
from scaling.io import read_text
from training.labels import LabelKind
from training.prompts import DEFAULT_ATTRIBUTES, DEFAULT_QUESTIONS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """Where the labels come from and how scenes are split."""

    table: Path | None = None
    image_root: Path | None = None
    attributes: list[str] | None = None
    split_column: str | None = None
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    pair_scope: Literal["scene", "dataset"] = "scene"


class ImageConfig(_Section):
    """Image preprocessing: pad to square with the mean colour, resize, optional ROI view."""

    size: int = Field(448, ge=28)
    roi_column: str | None = None


class PromptConfig(_Section):
    attributes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    questions: list[str] = Field(default_factory=lambda: list(DEFAULT_QUESTIONS))
    sample_paraphrases: bool = True


class AdapterConfig(_Section):
    """LoRA on the language model and/or the vision tower, or the vision tower fully trained."""

    language: Literal["lora", "frozen"] = "lora"
    vision: Literal["lora", "full", "frozen"] = "full"
    # A pretrained head already separates the level words; a random (tiny) one cannot.
    lm_head: Literal["frozen", "full"] = "frozen"
    rank: int = Field(128, ge=1)
    alpha: float = 256.0
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    language_targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    vision_targets: list[str] | None = None


class LossConfig(_Section):
    """DeQA-Score's defaults: L = fidelity + 0.05 [(CE_A + KL_A) + (CE_B + KL_B)]; each term
    can be switched off. Labels: ``soft_pdf`` (DeQA on KonIQ/KADID), ``soft_interval`` (DeQA's
    "cdf", on SPAQ), ``two_level`` (DeQA's fallback), ``one_hot`` (Q-Align's five bins)."""

    label: LabelKind = "soft_pdf"
    kl_weight: float = Field(0.05, ge=0.0)
    ce_weight: float = Field(0.05, ge=0.0)
    fidelity_weight: float = Field(1.0, ge=0.0)


class OptimConfig(_Section):
    """AdamW with a cosine schedule; ``vision_lr`` sets the vision tower's own rate (default
    ``lr``): a fully trained tower collapses at rates that suit LoRA.

    ``pairs_per_batch`` is the GLOBAL batch of one optimiser step, whatever the number of
    processes: each of P processes takes pairs_per_batch / (P x grad_accum) pairs per
    micro-batch, so the schedule, the data order and the results do not depend on P (DeQA's
    16 pairs per device on 8 GPUs is ``pairs_per_batch: 128``)."""

    lr: float = Field(2e-5, gt=0.0)
    vision_lr: float | None = Field(None, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    epochs: float = Field(3.0, gt=0.0)
    max_steps: int | None = Field(None, ge=1)
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    pairs_per_batch: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_grad_norm: float | None = 1.0
    fused_adamw: bool = False


class RunConfig(_Section):
    """Hardware and bookkeeping.

    ``gradient_checkpointing``: ``true`` recomputes every block's activations in the backward
    pass, ``vision`` / ``language`` only those of the vision tower / the language model.
    ``mixed_precision``: bf16/fp16 autocast with fp32 master weights for every trainable
    parameter (frozen ones are stored in the autocast type); ``no`` is fp32 throughout;
    ``auto`` is bf16 on a GPU that has it. ``eval_every`` steps the validation split is scored
    (score model: SRCC, PLCC, KRCC, MAE; comparator: log-likelihood, accuracy and Brier score
    of the validation trials); the best ``select_metric`` (default: SRCC, or the comparator's
    log-likelihood) is kept in ``checkpoints/best`` and,
    with ``keep: best``, becomes the saved model; ``early_stopping`` stops after that many
    evaluations without improvement. ``keep_checkpoints`` rotates ``checkpoints/step_*``.
    """

    output_dir: Path = Path("out/train")
    seed: int = 0
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool | Literal["vision", "language"] = True
    attn_implementation: str | None = None
    hub_kernels: bool = False
    checkpoint_every: int | None = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_every: int | None = Field(500, ge=1)
    select_metric: (
        Literal["srcc", "plcc", "krcc", "mae_jod", "log_likelihood", "accuracy", "brier"] | None
    ) = None
    early_stopping: int | None = Field(None, ge=1)
    keep: Literal["best", "last"] = "best"
    log_every: int = Field(10, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    num_workers: int = Field(2, ge=0)
    prefetch_factor: int = Field(2, ge=1)
    tensorboard: bool = True
    resume: bool = True
    progress: bool = True
    merge_adapters: bool = False


class PairsConfig(_Section):
    """The comparator's data and answer (``task: pairwise``; see ``training.comparator``).

    ``trials``: trial tables (``jod export``: per-scene and cross-content); ``scene_scales`` /
    ``cross_scales``: their scale tables (the Thurstone target); ``images``: the image index
    (a ``scene, condition, image_path`` table or a ``<scene>/<condition>.<ext>`` folder);
    ``target``: P(first better) from the observed proportion (ties split), the Thurstone
    probability of the scale, or ``blend`` x proportion + (1 - ``blend``) x Thurstone;
    ``screening``: ``auto`` (pwcmp's screening here), a ``jod scale --screen`` table, or
    none; ``split_table``: a score model's ``split.csv`` to share its split exactly;
    ``layout``: two images in one prompt, or side by side (``auto``: two when the processor
    takes them)."""

    trials: list[Path] = Field(default_factory=list)
    scene_scales: Path | None = None
    cross_scales: Path | None = None
    images: Path | None = None
    target: Literal["proportion", "thurstone", "blend"] = "thurstone"
    blend: float = Field(0.5, ge=0.0, le=1.0)
    screening: str | None = None
    drop_gold: bool = True
    split_table: Path | None = None
    layout: Literal["auto", "two_images", "side_by_side"] = "auto"
    answer_words: list[str] = Field(default_factory=lambda: ["First", "Second"])
    kl_weight: float = Field(1.0, gt=0.0)
    ce_weight: float = Field(0.05, ge=0.0)


class ResNetConfig(_Section):
    """The baseline's architecture when no weights are given (defaults: ResNet-50)."""

    hidden_sizes: list[int] = Field(default_factory=lambda: [256, 512, 1024, 2048])
    depths: list[int] = Field(default_factory=lambda: [3, 4, 6, 3])
    embedding_size: int = Field(64, ge=1)
    layer_type: Literal["bottleneck", "basic"] = "bottleneck"


class TrainConfig(_Section):
    """Everything a training run needs besides the data itself.

    ``kind: vlm`` trains a multimodal LLM from the local directory ``model`` (``task: score``
    on the training table of ``data``, or ``task: pairwise``, the comparator, on the trials of
    ``pairs``); ``kind: resnet``
    trains the CNN baseline, from ``model`` (a local transformers ResNet) or from scratch with
    the ``resnet`` architecture. The baseline ignores ``adapter``, ``loss`` and ``prompts``.
    """

    kind: Literal["vlm", "resnet"] = "vlm"
    task: Literal["score", "pairwise"] = "score"
    model: Path | None = None
    resnet: ResNetConfig = Field(default_factory=ResNetConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.kind == "vlm" and self.model is None:
            raise ValueError("model: a local model directory is required for kind 'vlm'")
        pairwise_metrics = ("log_likelihood", "accuracy", "brier")
        if self.run.select_metric and (self.task == "pairwise") != (
            self.run.select_metric in pairwise_metrics
        ):
            raise ValueError(
                f"run.select_metric {self.run.select_metric!r} is not a metric of task "
                f"{self.task!r}"
            )
        if self.task == "pairwise":
            if self.kind != "vlm":
                raise ValueError("task 'pairwise' (the comparator) needs kind 'vlm'")
            if not self.pairs.trials or self.pairs.images is None:
                raise ValueError("task 'pairwise' needs pairs.trials and pairs.images")
            if len(self.pairs.answer_words) != 2:
                raise ValueError("pairs.answer_words: the comparator needs two answer words")
        if len(self.resnet.hidden_sizes) != len(self.resnet.depths):
            raise ValueError("resnet: hidden_sizes and depths must have the same length")
        if self.data.val_fraction + self.data.test_fraction >= 1.0:
            raise ValueError("data.val_fraction + data.test_fraction must be below 1")
        if self.adapter.language == "frozen" and self.adapter.vision == "frozen":
            raise ValueError("adapter: language and vision are both frozen; nothing would train")
        if self.loss.kl_weight + self.loss.ce_weight + self.loss.fidelity_weight == 0:
            raise ValueError("loss: every weight is 0; nothing would train")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a config file; relative paths in it are resolved against the file's folder."""
        path = Path(path)
        try:
            raw = yaml.safe_load(read_text(path)) or {}
        except yaml.YAMLError as err:
            raise from_yaml(err, str(path)) from err
        if not isinstance(raw, dict):
            raise InputError(
                f"the config must be a mapping, not {type(raw).__name__}", source=str(path)
            )
        try:
            config = cls.model_validate(raw)
        except ValidationError as err:
            raise from_validation(err, str(path)) from err
        return config.resolved(path.parent)

    def resolved(self, base: Path) -> TrainConfig:
        """Copy with relative paths made absolute against ``base``."""

        def fix(p: Path | None) -> Path | None:
            return None if p is None or p.is_absolute() else (base / p).resolve()

        update = self.model_copy(deep=True)
        update.model = fix(self.model) or self.model
        update.data.table = fix(self.data.table) or self.data.table
        update.data.image_root = fix(self.data.image_root) or self.data.image_root
        update.run.output_dir = fix(self.run.output_dir) or self.run.output_dir
        pairs = update.pairs
        pairs.trials = [fix(p) or p for p in self.pairs.trials]
        for name in ("scene_scales", "cross_scales", "images", "split_table"):
            setattr(pairs, name, fix(getattr(self.pairs, name)) or getattr(self.pairs, name))
        if self.pairs.screening not in (None, "auto"):
            pairs.screening = str(fix(Path(self.pairs.screening)))
        return update

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
