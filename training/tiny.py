"""Tiny, randomly initialised VLMs built offline: for tests and ``jod`` smoke runs.

Families: Qwen2-VL (the default), Qwen2.5-VL and Idefics3 (the SmolVLM architecture). Each has
the file layout of a real checkpoint (model, tokenizer with chat template, image processor or
processor), so every code path that loads a real model loads these too.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.prompts import (
    ANSWER_WORDS,
    DEFAULT_ATTRIBUTES,
    DEFAULT_QUESTIONS,
    LEVEL_WORDS,
    PAIR_IMAGE_LABELS,
    PromptBook,
)

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Qwen2-VL's chat layout, reduced to what jodkit sends (images and text in user turns).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


#: Idefics3/SmolVLM's image and turn markers.
IDEFICS3_TOKENS = (
    "<|endoftext|>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    "<end_of_utterance>",
)

#: Idefics3's chat layout ("User:<image>question<end_of_utterance>\nAssistant:").
IDEFICS3_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "idefics3")
IDEFICS3_SIDE = 112


def _corpus() -> list[str]:
    lines = []
    prompts = PromptBook()
    for attribute in DEFAULT_ATTRIBUTES:  # the comparator's question and answers
        lines.append(" ".join(PAIR_IMAGE_LABELS) + prompts.pair_question(attribute))
        lines += [prompts.pair_answer(attribute, first) for first in (True, False)]
    for words in DEFAULT_ATTRIBUTES.values():
        for question in DEFAULT_QUESTIONS:
            lines.append(question.format(attribute=words))
        for level in LEVEL_WORDS:
            lines.append(f"The {words} of the image is {level}.")
    lines.extend(["user", "assistant", "system", "User:", "Assistant:", "\n"])
    return lines


def build_tiny_tokenizer(vocab_size: int = 400, family: str = "qwen2_vl"):
    """Byte-level BPE trained in-process on jodkit's prompts; level words are single tokens."""
    idefics = _check_family(family) == "idefics3"
    specials = IDEFICS3_TOKENS if idefics else SPECIAL_TOKENS
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # repeat the level and answer words so that each becomes one merged token
    corpus = _corpus() + ([f" {w}" for w in LEVEL_WORDS] + list(ANSWER_WORDS)) * 50
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=state["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(specials[1:])})
    tokenizer.chat_template = IDEFICS3_CHAT_TEMPLATE if idefics else CHAT_TEMPLATE
    return tokenizer


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    return family


def _vision_config(family: str, hidden_size: int, depth: int) -> dict:
    """The vision tower's config; its output width must equal the text hidden size."""
    shared = {"depth": depth, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2}
    shared["temporal_patch_size"] = 2
    if family == "qwen2_5_vl":  # windowed attention, full attention in the last block
        return {
            **shared,
            "hidden_size": 32,
            "intermediate_size": 64,
            "out_hidden_size": hidden_size,
            "window_size": 56,
            "fullatt_block_indexes": [depth - 1],
        }
    return {**shared, "embed_dim": 32, "mlp_ratio": 2, "hidden_size": hidden_size}


def build_tiny_model(
    tokenizer,
    seed: int = 0,
    hidden_size: int = 64,
    vision_depth: int = 2,
    family: str = "qwen2_vl",
):
    """A 2-layer LLM with a small vision tower (about 200 k parameters at the defaults)."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )

    torch.manual_seed(seed)
    if _check_family(family) == "idefics3":
        return _tiny_idefics3(tokenizer, hidden_size, vision_depth)
    config_class, model_class = {
        "qwen2_vl": (Qwen2VLConfig, Qwen2VLForConditionalGeneration),
        "qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration),
    }[family]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    heads = 4
    head_dim = hidden_size // heads
    quarter = head_dim // 2 // 4
    config = config_class(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter],
            },
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": None,
        },
        vision_config=_vision_config(family, hidden_size, vision_depth),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return model_class(config)


def _tiny_idefics3(tokenizer, hidden_size: int, vision_depth: int):
    """Idefics3: a SigLIP-like tower on 112 px images, pixel shuffle by 2, a Llama LLM."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in IDEFICS3_TOKENS}
    config = Idefics3Config(
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "pad_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<end_of_utterance>"],
            "bos_token_id": None,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": vision_depth,
            "num_attention_heads": 2,
            "patch_size": 14,
            "image_size": IDEFICS3_SIDE,
        },
        image_token_id=ids["<image>"],
        scale_factor=2,
    )
    return Idefics3ForConditionalGeneration(config)


def build_tiny_image_processor(max_side: int = 112):
    """Qwen2-VL's PIL image processor limited to small images (no torchvision needed)."""
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=max_side * max_side)


def build_tiny_idefics3_processor(tokenizer):
    """Idefics3's processor on one global 112 px view (no splitting; no torchvision needed)."""
    from transformers import Idefics3ImageProcessorPil, Idefics3Processor

    side = {"longest_edge": IDEFICS3_SIDE}
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size=side, max_image_size=side)
    tokens = (IDEFICS3_SIDE // 14) ** 2 // 4  # patches, pixel-shuffled by 2 x 2
    return Idefics3Processor(
        image_processor=images,
        tokenizer=tokenizer,
        image_seq_len=tokens,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )


def save_tiny_model(
    directory: str | Path, seed: int = 0, max_side: int = 112, family: str = "qwen2_vl"
) -> Path:
    """Write a complete tiny checkpoint to ``directory`` and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(family=family)
    build_tiny_model(tokenizer, seed=seed, family=family).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    if family == "idefics3":
        build_tiny_idefics3_processor(tokenizer).save_pretrained(directory)
    else:
        build_tiny_image_processor(max_side).save_pretrained(directory)
    return directory


if __name__ == "__main__":
    import sys

    if len(sys.argv) not in (2, 3):
        raise SystemExit(f"usage: python -m training.tiny DIR [{'|'.join(FAMILIES)}]")
    family = sys.argv[2] if len(sys.argv) == 3 else "qwen2_vl"
    print(f"tiny {family} model written to {save_tiny_model(sys.argv[1], family=family)}")
