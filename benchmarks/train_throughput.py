"""Training and inference throughput (images/s), peak memory and FLOPs of jodkit's LoRA setup.

Models have the shape of Qwen2-VL-2B or -7B (random weights, built in memory: no download)
or the tiny test shape; inputs are 448 px images with jodkit's prompt, batches of pairs,
through the code the trainer runs (``training.encoding``, ``training.modeling.apply_adapters``
and ``fp32_master_weights``, ``training.trainer.score_loss``, ``training.run.build_optimizer``,
autocast as accelerate sets it). Each lever is its own flag, so a row of the table changes one
thing at a time: ``--all-logits`` computes the vocabulary logits at every position instead of
the answer's tail only; ``--layers N`` / ``--vision-depth N`` cut the model to N blocks (FLOPs
and activation memory per block are equal, so two cuts extrapolate to the full depth on CPU).
``--task pairwise`` times the comparator instead (``training.comparator``): each prompt holds
two 448 px images (one pair), with its KL-over-answer-words loss; ``--batch`` still counts
images, so a step holds ``batch / 2`` pairs either way and pairs/s is images/s / 2.

Reference points (one H200, today's code before issue 12, batch 32, bf16, LoRA r = 128 and
gradient checkpointing): 7B shape 12.2 images/s training and 43.9 inference; 2B 15.9 / 61.5;
2B with LoRA on the LM only and no checkpointing 73.1 / 116.7. The table prints ratios.

    python benchmarks/train_throughput.py --shape 2b --batch 32 [--attn flash_attention_2]
        [--compile] [--fused-adamw] [--no-grad-ckpt] [--max-pixels 200704] [--vision frozen]
        [--all-logits] [--flops] [--layers 2 --vision-depth 2] [--task pairwise]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.comparator import answer_word_ids, pair_samples, pairwise_loss
from training.config import AdapterConfig, LossConfig, OptimConfig
from training.encoding import PromptEncoder, QwenVLPromptProcessor, Sample, level_token_ids
from training.modeling import (
    answer_logits,
    apply_adapters,
    enable_checkpointing,
    fp32_master_weights,
)
from training.prompts import ANSWER_WORDS, PromptBook
from training.run import build_optimizer
from training.tiny import SPECIAL_TOKENS, build_tiny_model, build_tiny_tokenizer
from training.trainer import param_groups, score_loss

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
#: (shape, setting) -> (training, inference) images/s of the code before issue 12 (one H200).
REFERENCE = {
    ("7b", "lm+vision lora, ckpt"): (12.2, 43.9),
    ("2b", "lm+vision lora, ckpt"): (15.9, 61.5),
    ("2b", "lm lora, no ckpt"): (73.1, 116.7),
}
QUESTION = "How would you rate the noise of this image?"
ANSWER = "The noise of the image is fair."


def build_model(
    shape: str,
    tokenizer,
    dtype: torch.dtype,
    attn: str,
    device: str,
    layers: int | None = None,
    vision_depth: int | None = None,
):
    """A random model of the given shape on ``device``; special ids come from ``tokenizer``;
    ``layers`` / ``vision_depth`` cut the language model / vision tower to that many blocks."""
    if shape == "tiny":
        model = build_tiny_model(tokenizer)
        model.config._attn_implementation = attn
        return model.to(device=device, dtype=dtype)
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    text = dict(TEXT_SHAPES[shape])
    if layers:
        text["num_hidden_layers"] = layers
    vision = dict(VISION_SHAPE, depth=vision_depth or VISION_SHAPE["depth"])
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
        vision_config={**vision, "hidden_size": text["hidden_size"]},
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


def _random_images(n: int, image_size: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (image_size, image_size, 3), np.uint8))
        for _ in range(n)
    ]


def make_batch(encoder: PromptEncoder, batch: int, image_size: int, device: str) -> dict:
    """``batch`` rows (``batch // 2`` pairs) of random 448 px images with labels."""
    samples = [Sample([image], QUESTION, ANSWER) for image in _random_images(batch, image_size)]
    tensors = encoder(samples)
    rng = np.random.default_rng(0)
    mu = torch.tensor(rng.uniform(1, 5, batch), dtype=torch.float32)
    tensors.update(mu=mu, sigma=torch.full((batch,), 0.3), target=torch.full((batch, 5), 0.2))
    return {k: v.to(device) for k, v in tensors.items()}


def make_pair_batch(encoder: PromptEncoder, batch: int, image_size: int, device: str) -> dict:
    """``batch // 2`` comparator prompts of two random images each, built from image files by
    the comparator's own sample code, with soft targets."""
    pairs = batch // 2
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for k, image in enumerate(_random_images(batch, image_size)):
            paths.append(str(Path(folder) / f"{k}.png"))
            image.save(paths[-1])
        samples = pair_samples(
            paths[:pairs],
            paths[pairs:],
            ["noise"] * pairs,
            PromptBook(),
            image_size,
            "two_images",
            ANSWER_WORDS,
        )
    tensors = encoder(samples)
    tensors["target"] = torch.linspace(0.1, 0.9, pairs)
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
    ckpt = {True: "ckpt", False: "no ckpt"}.get(args.grad_ckpt, f"{args.grad_ckpt} ckpt")
    name = f"{lora}, {ckpt}"
    return name + (", all logits" if args.all_logits else "")


def peak_memory_gib(device: str) -> float:
    """Peak allocated GPU memory, or on CPU the process's peak resident set (weights
    included: compare runs of one shape in fresh processes)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def counted_flops(step) -> float:
    """FLOPs of one call of ``step`` as torch's FlopCounterMode counts them (matrix products
    and attention; elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def run(args: argparse.Namespace) -> dict[str, float | str]:
    """Build, time ``args.steps`` training steps and inference batches; return one table row."""
    from transformers import Qwen2VLImageProcessorPil

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model = build_model(
        args.shape, tokenizer, dtype, args.attn, device, args.layers, args.vision_depth
    )
    adapter = AdapterConfig(rank=args.rank, alpha=2 * args.rank, vision=args.vision)
    model = apply_adapters(model, adapter)
    fp32_master_weights(model)  # as the trainer: fp32 masters, bf16 autocast compute
    autocast = (
        torch.autocast(device, dtype=torch.bfloat16) if args.dtype == "bf16" else nullcontext()
    )
    enable_checkpointing(model, args.grad_ckpt)
    pixels = args.max_pixels or args.image_size**2
    processor = QwenVLPromptProcessor(
        tokenizer, Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=pixels)
    )
    config = model.config
    pairwise = args.task == "pairwise"
    decision_ids = answer_word_ids(tokenizer, ANSWER_WORDS) if pairwise else None
    encoder = PromptEncoder(
        tokenizer,
        processor,
        decision_ids or level_token_ids(tokenizer),
        image_token_id=config.image_token_id,
        add_mm_token_type_ids=True,
    )
    build = make_pair_batch if pairwise else make_batch
    batch = build(encoder, args.batch, args.image_size, device)
    level_ids = torch.tensor(encoder.level_ids, device=device)
    optim = OptimConfig(lr=2e-5, fused_adamw=args.fused_adamw, warmup_ratio=0.0)
    optimizer, _ = build_optimizer(param_groups(model, 2e-5, None), optim, 1000)
    forward = torch.compile(model) if args.compile else model
    loss_config = LossConfig()
    tail_only = not args.all_logits

    def train_step() -> None:
        with autocast:
            if pairwise:  # the comparator's default weights (PairsConfig)
                loss = pairwise_loss(forward, batch, level_ids, 1.0, 0.05, tail_only)["loss"]
            else:
                loss = score_loss(forward, batch, level_ids, loss_config, tail_only)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    inputs = {k: v for k, v in batch.items() if k not in ("mu", "sigma", "target")}
    inputs["labels"] = torch.full_like(inputs["labels"], -100)  # prediction reads the level only

    @torch.no_grad()
    def infer_step() -> None:
        with autocast:
            answer_logits(forward, inputs, tail_only)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    flops = {}
    if args.flops:
        flops["train_gflop_per_img"] = counted_flops(train_step) / args.batch / 1e9
    for _ in range(args.warmup):
        train_step()
    train_s = timed(train_step, args.steps, device)
    train_mem = peak_memory_gib(device)
    model.eval()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.flops:
        flops["infer_gflop_per_img"] = counted_flops(infer_step) / args.batch / 1e9
    for _ in range(args.warmup):
        infer_step()
    infer_s = timed(infer_step, args.steps, device)
    infer_mem = peak_memory_gib(device)
    reference = REFERENCE.get((args.shape, setting_name(args)), (None, None))
    row = {
        "shape": args.shape,
        "task": args.task,
        "setting": setting_name(args),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "visual_tokens": int((batch["input_ids"][0] == config.image_token_id).sum()),
        "train_img_s": args.batch / train_s,
        "infer_img_s": args.batch / infer_s,
        "train_peak_gib": train_mem,
        "infer_peak_gib": infer_mem,
        **flops,
    }
    for kind in ("train", "infer"):  # a pair is two images, in one prompt or in two
        row[f"{kind}_pairs_s"] = row[f"{kind}_img_s"] / 2
    if pairwise:
        reference = (None, None)  # the references are the score model's
    for kind, ref in zip(("train", "infer"), reference, strict=True):
        row[f"{kind}_vs_ref"] = row[f"{kind}_img_s"] / ref if ref else float("nan")
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("tiny", "2b", "7b"), default="2b")
    parser.add_argument(
        "--task", choices=("score", "pairwise"), default="score", help="score model or comparator"
    )
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
    parser.add_argument(
        "--ckpt-only",
        choices=("vision", "language"),
        default=None,
        help="checkpoint only this part's blocks (selective checkpointing)",
    )
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default=None)
    parser.add_argument(
        "--all-logits", action="store_true", help="vocabulary logits at every position"
    )
    parser.add_argument("--flops", action="store_true", help="count FLOPs of one step")
    parser.add_argument("--layers", type=int, default=None, help="language-model blocks")
    parser.add_argument("--vision-depth", type=int, default=None, help="vision blocks")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be an even number of images (pairs)")
    if args.ckpt_only:
        args.grad_ckpt = args.ckpt_only
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
