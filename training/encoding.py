"""Turning (images, question, answer) into model inputs, the same way for training and prediction.

Each sample's prompt goes through the model's chat template and its processor (which expands
the image placeholders); the answer ids are appended, so the level token's position is known
exactly. Batches are padded on either side; nothing downstream assumes a side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from scaling.errors import InputError
from training.prompts import LEVEL_WORDS


@dataclass
class Sample:
    """One prompt: its images (one view, ROI + full image, or a pair), question and full
    answer; ``image_labels`` (one text per image, e.g. "First image:") precede the images."""

    images: list[Image.Image]
    question: str
    answer: str
    image_labels: list[str] | None = None


def level_token_ids(tokenizer, source: str | Path = "tokenizer") -> list[int]:
    """Ids of " bad" .. " excellent" (ascending); each level word must be exactly one token."""
    return single_token_ids(tokenizer, [f" {w}" for w in LEVEL_WORDS], "level word", source)


def single_token_ids(
    tokenizer, texts: Sequence[str], what: str, source: str | Path = "tokenizer"
) -> list[int]:
    """The one token id of each text (a level word, a comparator's answer word), in order;
    a text that is several tokens, or two texts sharing an id, is an error."""
    ids = []
    for text in texts:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) != 1:
            raise InputError(
                f"the {what} {text!r} is {len(encoded)} tokens {encoded} in this tokenizer; "
                f"jodkit needs each of {', '.join(repr(t) for t in texts)} to be a single token",
                source=str(source),
                field="tokenizer",
            )
        ids.append(encoded[0])
    if len(set(ids)) != len(ids):
        raise InputError(f"{what}s share a token id", source=str(source), field="tokenizer")
    return ids


class QwenVLPromptProcessor:
    """What ``Qwen2VLProcessor`` does for images, without its torchvision-only video half.

    Each ``<|image_pad|>`` is expanded to one token per merged patch of its image.
    """

    def __init__(self, tokenizer, image_processor, image_token: str = "<|image_pad|>") -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token = image_token

    def save_pretrained(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(directory)
        self.image_processor.save_pretrained(directory)

    def __call__(self, text: str, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        pixels = self.image_processor(images=images, return_tensors="pt")
        merge = self.image_processor.merge_size**2
        parts = text.split(self.image_token)
        if len(parts) - 1 != len(images):
            raise ValueError(f"prompt has {len(parts) - 1} image slots for {len(images)} images")
        expanded = parts[0]
        for grid, part in zip(pixels["image_grid_thw"], parts[1:], strict=True):
            expanded += self.image_token * int(grid.prod() // merge) + part
        ids = self.tokenizer(expanded, add_special_tokens=False, return_tensors="pt")["input_ids"]
        return {"input_ids": ids, **pixels}


class HFPromptProcessor:
    """A model's own processor (e.g. Idefics3) called one prompt at a time."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def save_pretrained(self, directory: str | Path) -> None:
        self.processor.save_pretrained(directory)

    def __call__(self, text: str, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        return dict(self.processor(text=text, images=[images], return_tensors="pt"))


class PromptEncoder:
    """Builds padded batches with the level position and CE labels of every row.

    ``processor``: a callable ``(text, images) -> dict`` returning ``input_ids`` of shape
    (1, L) plus the image tensors (a Hugging Face processor or :class:`QwenVLPromptProcessor`).
    """

    def __init__(
        self,
        tokenizer,
        processor,
        level_ids: Sequence[int],
        image_token_id: int | None = None,
        add_mm_token_type_ids: bool = False,
        padding_side: str = "left",
    ) -> None:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        self.tokenizer = tokenizer
        self.processor = processor
        self.level_ids = list(level_ids)
        self.image_token_id = image_token_id
        self.add_mm_token_type_ids = add_mm_token_type_ids
        self.padding_side = padding_side
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.eos_token_id

    def prompt_text(self, sample: Sample) -> str:
        content = []
        for k in range(len(sample.images)):
            if sample.image_labels:
                content.append({"type": "text", "text": sample.image_labels[k]})
            content.append({"type": "image"})
        content.append({"type": "text", "text": sample.question})
        messages = [{"role": "user", "content": content}]
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _encode_one(self, sample: Sample) -> tuple[list[int], list[int], int, dict]:
        out = self.processor(text=self.prompt_text(sample), images=sample.images)
        prompt_ids = out.pop("input_ids")[0].tolist()
        out.pop("attention_mask", None)
        out.pop("mm_token_type_ids", None)
        answer_ids = self.tokenizer.encode(sample.answer, add_special_tokens=False)
        hits = [i for i, t in enumerate(answer_ids) if t in self.level_ids]
        if len(hits) != 1:
            raise InputError(
                f"answer {sample.answer!r} must contain exactly one of the tokens "
                f"{self.level_ids} (level or answer words), found {len(hits)}",
                field="answer",
            )
        ids = prompt_ids + answer_ids
        level_pos = len(prompt_ids) + hits[0]
        labels = [-100] * len(prompt_ids) + answer_ids
        labels[level_pos] = -100  # the level token is supervised by the KL term
        return ids, labels, level_pos, out

    def __call__(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """Batch tensors; ``level_positions`` index the logits that predict the level token."""
        encoded = [self._encode_one(s) for s in samples]
        width = max(len(ids) for ids, *_ in encoded)
        input_ids, labels, mask, positions = [], [], [], []
        for ids, lab, level_pos, _ in encoded:
            pad = width - len(ids)
            left = pad if self.padding_side == "left" else 0
            right = pad - left
            input_ids.append([self.pad_id] * left + ids + [self.pad_id] * right)
            labels.append([-100] * left + lab + [-100] * right)
            mask.append([0] * left + [1] * len(ids) + [0] * right)
            positions.append(left + level_pos - 1)
        batch = {
            "input_ids": torch.tensor(input_ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels),
            "level_positions": torch.tensor(positions),
        }
        for key in encoded[0][3]:
            batch[key] = torch.cat([extra[key] for *_, extra in encoded], dim=0)
        if self.add_mm_token_type_ids:
            batch["mm_token_type_ids"] = (batch["input_ids"] == self.image_token_id).long()
        return batch
