"""Training and inference throughput (images/s) and peak GPU memory of jodkit's LoRA setup.

Models have the shape of Qwen2-VL-2B or -7B (random weights, built in memory: no download)
or the tiny test shape; inputs are 448 px images with jodkit's prompt, batches of pairs,
through the code the trainer runs (``training.encoding``, ``training.modeling.apply_adapters``,
``training.trainer.deqa_loss`` and ``build_optimizer``). Each lever is its own flag, so a row
of the table changes one thing at a time.

Reference points (one H100, plain transformers + peft loop, batch 32): 7B shape 8.7 images/s
training and 30 images/s inference; 2B 11.7 images/s training, 63.6 with LoRA on the LM only
and no gradient checkpointing. The table prints ratios against them.

GPU figures are NOT measured yet: this script was written and checked on CPU with
``--shape tiny`` only. Sequence packing is not implemented.

    python benchmarks/train_throughput.py --shape 2b --batch 32 [--attn flash_attention_2]
        [--compile] [--fused-adamw] [--no-grad-ckpt] [--max-pixels 200704] [--vision frozen]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from training.config import AdapterConfig, LossConfig, OptimConfig
from training.encoding import PromptEncoder, QwenVLPromptProcessor, Sample, level_token_ids
from training.modeling import apply_adapters, level_logits
from training.tiny import SPECIAL_TOKENS, build_tiny_model, build_tiny_tokenizer
from training.trainer import build_optimizer, deqa_loss, param_groups

#: Qwen2-VL text shapes (Qwen/Qwen2-VL-2B-Instruct and -7B-Instruct config.json).
TEXT_SHAPES = {
    "2b": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
    ),
    "7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
    ),
}
#: Both sizes share the 675 M-parameter vision tower.
VISION_SHAPE = dict(
    depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, patch_size=14, spatial_merge_size=2
)
#: (shape, setting) -> (training, inference) images/s measured elsewhere; None = not given.
REFERENCE = {
    ("7b", "lm+vision lora, ckpt"): (8.7, 30.0),
    ("2b", "lm+vision lora, ckpt"): (11.7, None),
    ("2b", "lm lora, no ckpt"): (63.6, None),
}
QUESTION = "How would you rate the noise of this image?"
ANSWER = "The noise of the image is fair."


def build_model(shape: str, tokenizer, dtype: torch.dtype, attn: str, device: str):
    """A random model of the given shape on ``device``; special ids come from ``tokenizer``."""
    if shape == "tiny":
        model = build_tiny_model(tokenizer)
        model.config._attn_implementation = attn
        return model.to(device=device, dtype=dtype)
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    text = TEXT_SHAPES[shape]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2VLConfig(
        text_config={
            **text,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1e6,
                "mrope_section": [16, 24, 24],
            },
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": None,
        },
        vision_config={**VISION_SHAPE, "hidden_size": text["hidden_size"]},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=shape == "2b",
    )
    with torch.device(device):
        return Qwen2VLForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation=attn
        )


def make_batch(encoder: PromptEncoder, batch: int, image_size: int, device: str) -> dict:
    """``batch`` rows (``batch // 2`` pairs) of random 448 px images with labels."""
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            [Image.fromarray(rng.integers(0, 255, (image_size, image_size, 3), np.uint8))],
            QUESTION,
            ANSWER,
        )
        for _ in range(batch)
    ]
    tensors = encoder(samples)
    mu = torch.tensor(rng.uniform(1, 5, batch), dtype=torch.float32)
    tensors.update(mu=mu, sigma=torch.full((batch,), 0.3), target=torch.full((batch, 5), 0.2))
    return {k: v.to(device) for k, v in tensors.items()}


def timed(step, n: int, device: str) -> float:
    """Seconds per call of ``step`` over ``n`` calls."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def setting_name(args: argparse.Namespace) -> str:
    lora = "lm lora" if args.vision == "frozen" else f"lm+vision {args.vision}"
    return f"{lora}, {'ckpt' if args.grad_ckpt else 'no ckpt'}"


def run(args: argparse.Namespace) -> dict[str, float | str]:
    """Build, time ``args.steps`` training steps and inference batches; return one table row."""
    from transformers import Qwen2VLImageProcessorPil

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model = build_model(args.shape, tokenizer, dtype, args.attn, device)
    adapter = AdapterConfig(rank=args.rank, alpha=2 * args.rank, vision=args.vision)
    model = apply_adapters(model, adapter)
    if args.grad_ckpt:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
        model.enable_input_require_grads()
    pixels = args.max_pixels or args.image_size**2
    processor = QwenVLPromptProcessor(
        tokenizer, Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=pixels)
    )
    config = model.config
    encoder = PromptEncoder(
        tokenizer,
        processor,
        level_token_ids(tokenizer),
        image_token_id=config.image_token_id,
        add_mm_token_type_ids=True,
    )
    batch = make_batch(encoder, args.batch, args.image_size, device)
    level_ids = torch.tensor(encoder.level_ids, device=device)
    optim = OptimConfig(lr=2e-5, fused_adamw=args.fused_adamw, warmup_ratio=0.0)
    optimizer, _ = build_optimizer(param_groups(model, 2e-5, None), optim, 1000)
    forward = torch.compile(model) if args.compile else model
    loss_config = LossConfig()

    def train_step() -> None:
        deqa_loss(forward, batch, level_ids, loss_config)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    inputs = {k: v for k, v in batch.items() if k not in ("mu", "sigma", "target")}

    @torch.no_grad()
    def infer_step() -> None:
        level_logits(forward, inputs)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    for _ in range(args.warmup):
        train_step()
    train_s = timed(train_step, args.steps, device)
    train_mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    model.eval()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        infer_step()
    infer_s = timed(infer_step, args.steps, device)
    infer_mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    reference = REFERENCE.get((args.shape, setting_name(args)), (None, None))
    row = {
        "shape": args.shape,
        "setting": setting_name(args),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "visual_tokens": int((batch["input_ids"][0] == config.image_token_id).sum()),
        "train_img_s": args.batch / train_s,
        "infer_img_s": args.batch / infer_s,
        "train_peak_gib": train_mem,
        "infer_peak_gib": infer_mem,
    }
    for kind, ref in zip(("train", "infer"), reference, strict=True):
        row[f"{kind}_vs_ref"] = row[f"{kind}_img_s"] / ref if ref else float("nan")
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("tiny", "2b", "7b"), default="2b")
    parser.add_argument("--batch", type=int, default=32, help="images per step (pairs x 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (at least 1)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--max-pixels", type=int, default=None, help="fewer visual tokens")
    parser.add_argument("--rank", type=int, default=128)
    parser.add_argument("--vision", choices=("lora", "full", "frozen"), default="lora")
    parser.add_argument("--attn", default="sdpa", help="sdpa, eager or flash_attention_2")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--fused-adamw", action="store_true")
    parser.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default=None)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be an even number of images (pairs)")
    if args.dtype is None:
        args.dtype = "bf16" if torch.cuda.is_available() else "fp32"
    return args


def main(argv: list[str] | None = None) -> dict[str, float | str]:
    """Run one setting and print it as a table row (with a header)."""
    row = run(parse_args(argv))
    widths = {k: max(len(k), 10) for k in row}
    print("  ".join(k.rjust(w) for k, w in widths.items()))
    print(
        "  ".join(
            (f"{v:.2f}" if isinstance(v, float) else str(v)).rjust(widths[k])
            for k, v in row.items()
        )
    )
    return row


if __name__ == "__main__":
    main()
