"""Loading a local image-text-to-text model, attaching adapters, and reading level logits.

Only local directories are loaded, with the hub's kernels off (transformers >= 5.25 would
fetch them on CUDA): nothing here reaches the network. The vision tower and the language model
are found by their attribute names, so LoRA targets work across Qwen2/2.5/3-VL and Idefics3.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from scaling.errors import InputError
from training.config import AdapterConfig
from training.encoding import (
    HFPromptProcessor,
    PromptEncoder,
    QwenVLPromptProcessor,
    level_token_ids,
)
from training.labels import JodRescaling

VISION_NAMES = ("visual", "vision_tower", "vision_model")
LANGUAGE_NAMES = ("language_model", "text_model")
MODEL_CARD = "jodkit_model.json"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"


@dataclass
class LoadedModel:
    """A model with what is needed to feed it: tokenizer, prompt processor, level ids."""

    model: torch.nn.Module
    tokenizer: object
    processor: object
    level_ids: list[int]
    source: Path

    def encoder(
        self, padding_side: str = "left", decision_ids: Sequence[int] | None = None
    ) -> PromptEncoder:
        """Batches whose answers are read at the level token, or at one of ``decision_ids``
        (the comparator's answer words)."""
        config = self.model.config
        forward = inspect.signature(self.base_model().forward).parameters
        return PromptEncoder(
            self.tokenizer,
            self.processor,
            self.level_ids if decision_ids is None else decision_ids,
            image_token_id=getattr(config, "image_token_id", None),
            add_mm_token_type_ids="mm_token_type_ids" in forward,
            padding_side=padding_side,
        )

    def save(self, directory: str | Path) -> None:
        """Weights, tokenizer and processor, loadable again with :func:`load_vlm`."""
        self.model.save_pretrained(directory)
        self.processor.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def with_model(self, model: torch.nn.Module) -> LoadedModel:
        """The same tokenizer, processor and level ids around another model (e.g. the one
        being trained, for validation)."""
        return replace(self, model=model)

    def base_model(self) -> torch.nn.Module:
        model = self.model
        return model.get_base_model() if hasattr(model, "get_base_model") else model


def missing_model_message(path: Path) -> str:
    return (
        f"model directory {path} does not exist or holds no config.json. jodkit loads models "
        "from local directories only (no hub access): download one on a machine with network, "
        "e.g. `hf download Qwen/Qwen2-VL-2B-Instruct --local-dir models/qwen2-vl-2b`, copy it "
        "here and point 'model' at it; or build a tiny smoke-test model with "
        "`python -m training.tiny DIR`."
    )


def load_vlm(
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str | None = None,
    hub_kernels: bool = False,
) -> LoadedModel:
    """Model, tokenizer and prompt processor from a local directory, with level ids checked.

    ``dtype`` is explicit (a bf16-saved checkpoint loads in fp32 unless asked otherwise);
    ``hub_kernels`` turns on transformers' hub kernels, which must then be in the local cache.
    """
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(missing_model_message(path))
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    level_ids = level_token_ids(tokenizer, path)
    kwargs = {"local_files_only": True, "dtype": dtype, "use_kernels": hub_kernels}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    return LoadedModel(model, tokenizer, _prompt_processor(path, tokenizer), level_ids, path)


def fp32_master_weights(model: torch.nn.Module) -> int:
    """Trainable parameters in fp32 (frozen ones keep the load dtype); returns how many.

    bf16 weights cannot take lr 2e-5 steps (0.02 + 2e-5 rounds back to 0.02): the optimiser
    updates fp32 masters and autocast runs the matrix products in bf16.
    """
    count = 0
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
            count += 1
    return count


def _prompt_processor(path: Path, tokenizer):
    from transformers import AutoImageProcessor, AutoProcessor

    image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
    if hasattr(image_processor, "merge_size") and "<|image_pad|>" in tokenizer.get_vocab():
        # Qwen-VL family: the full processor needs torchvision for its video half.
        return QwenVLPromptProcessor(tokenizer, image_processor)
    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ImportError, ValueError) as error:
        raise InputError(
            f"cannot build the processor of this model ({error}); jodkit needs a processor "
            "that expands image placeholders in the prompt",
            source=str(path),
        ) from error
    return HFPromptProcessor(processor)


def find_submodule(model: torch.nn.Module, names: tuple[str, ...]) -> str:
    """Full name of the first module whose last name part is one of ``names``."""
    for name, _ in model.named_modules():
        if name.rsplit(".", 1)[-1] in names:
            return name
    raise InputError(f"model has no submodule named any of {names}", field="model")


def lora_target_regex(model: torch.nn.Module, adapter: AdapterConfig) -> str | None:
    """Regex over full module names: LLM projections and/or every vision-tower Linear."""
    patterns = []
    if adapter.language == "lora":
        prefix = re.escape(find_submodule(model, LANGUAGE_NAMES))
        leaves = "|".join(map(re.escape, adapter.language_targets))
        patterns.append(rf"{prefix}\..*\.({leaves})")
    if adapter.vision == "lora":
        prefix = re.escape(find_submodule(model, VISION_NAMES))
        if adapter.vision_targets:
            leaves = "|".join(map(re.escape, adapter.vision_targets))
            patterns.append(rf"{prefix}\..*\.({leaves})")
        else:
            linear = [
                re.escape(name)
                for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear) and re.match(prefix + r"\.", name)
            ]
            patterns.append("|".join(linear))
    return "|".join(f"(?:{p})" for p in patterns) if patterns else None


def apply_adapters(model: torch.nn.Module, adapter: AdapterConfig) -> torch.nn.Module:
    """Wrap with peft LoRA; a fully trained vision tower is saved with the adapter."""
    from peft import LoraConfig, get_peft_model

    targets = lora_target_regex(model, adapter)
    if targets is None:
        raise ValueError(
            "adapter: vision 'full' with language 'frozen' has no LoRA target; use "
            "language 'lora' or vision 'lora'"
        )
    modules_to_save = []
    if adapter.vision == "full":
        modules_to_save.append(find_submodule(model, VISION_NAMES).rsplit(".", 1)[-1])
    if adapter.lm_head == "full":
        head = model.get_output_embeddings()
        modules_to_save.append(next(n for n, m in model.named_modules() if m is head))
    config = LoraConfig(
        r=adapter.rank,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=targets,
        modules_to_save=modules_to_save or None,
    )
    return get_peft_model(model, config)


def enable_checkpointing(model: torch.nn.Module, part: bool | str) -> None:
    """Activation checkpointing (non-reentrant) on every block (``True``) or only on the
    vision tower's or the language model's blocks (``"vision"`` / ``"language"``): the
    vision tower's 1,024 patches per 448 px image hold most of the activations."""
    if part is False:
        return
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    if part is True:
        return
    keep = find_submodule(model, VISION_NAMES if part == "vision" else LANGUAGE_NAMES) + "."
    for name, module in model.named_modules():
        if getattr(module, "gradient_checkpointing", False) is True and not name.startswith(keep):
            module.gradient_checkpointing = False


def answer_logits(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], tail_only: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward pass computing vocabulary logits only where the losses read them.

    Returns (logits over the kept tail of the sequence, the labels cut the same way, the
    vocabulary logits at each row's level position). The tail starts at the earliest level
    position or labelled token's predecessor of any row (the answer, with left padding), so
    the 152 k-wide logits are not computed at the hundreds of image and prompt positions.
    ``tail_only=False`` computes them everywhere (the throughput benchmark's comparison).
    """
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "level_positions")}
    labels, positions = batch["labels"], batch["level_positions"]
    width = labels.shape[1]
    labelled = (labels != -100).float().argmax(dim=1) - 1  # first labelled token's predecessor
    has_label = (labels != -100).any(dim=1)
    first = torch.where(has_label, torch.minimum(labelled, positions), positions)
    offset = int(first.min()) if tail_only else 0
    logits = model(**inputs, use_cache=False, logits_to_keep=width - offset).logits
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits, labels[:, offset:], logits[rows, positions - offset]


def write_model_card(
    directory: Path,
    rescalings: dict[str, JodRescaling],
    base_model: Path | None,
    merged: bool = False,
    kind: str = "vlm",
    extra: dict | None = None,
) -> None:
    """The JOD mapping per attribute and where the weights are: all prediction needs.

    The base model's path is stored relative to the run directory (absolute paths of the
    training machine would not travel with the run).
    """
    base = None
    if base_model is not None:
        base = Path(base_model)
        if base.is_absolute():
            base = Path(os.path.relpath(base, Path(directory).resolve()))
    card = {
        "kind": kind,
        "rescalings": {a: r.model_dump() for a, r in rescalings.items()},
        "base_model": None if base is None else base.as_posix(),
        "weights": MERGED_DIR if merged else ADAPTER_DIR,
        **(extra or {}),
    }
    (directory / MODEL_CARD).write_text(json.dumps(card, indent=2))


def read_model_card(directory: Path) -> tuple[dict, dict[str, JodRescaling]]:
    """The card of a trained model directory and its JOD mappings."""
    card_path = directory / MODEL_CARD
    if not card_path.is_file():
        raise InputError(
            f"not a trained jodkit model (no {MODEL_CARD}); pass the output folder of "
            "`jod train config.yaml`",
            source=str(directory),
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        rescalings = {a: JodRescaling.model_validate(r) for a, r in card["rescalings"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(
            f"unreadable model card ({type(err).__name__}); re-export the model with `jod train`",
            source=str(card_path),
        ) from None
    return card, rescalings


def load_trained(
    directory: str | Path, dtype: torch.dtype = torch.float32, hub_kernels: bool = False
) -> tuple[LoadedModel, dict[str, JodRescaling]]:
    """A trained jodkit MLLM (merged, or base + adapter) and its JOD mappings."""
    directory = Path(directory)
    card, rescalings = read_model_card(directory)
    if card.get("kind", "vlm") != "vlm":
        raise InputError(f"{directory} holds a {card['kind']} model, not a multimodal LLM")
    if card["weights"] == MERGED_DIR:
        return load_vlm(directory / MERGED_DIR, dtype, hub_kernels=hub_kernels), rescalings
    from peft import PeftModel

    base = Path(card["base_model"])
    loaded = load_vlm(
        base if base.is_absolute() else directory / base, dtype, hub_kernels=hub_kernels
    )
    loaded.model = PeftModel.from_pretrained(loaded.model, directory / ADAPTER_DIR)
    return loaded, rescalings
