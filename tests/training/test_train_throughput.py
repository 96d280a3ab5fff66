"""benchmarks/train_throughput.py runs end to end on the tiny shape (CPU, one step)."""

import importlib.util
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_shape_trains_and_infers_one_step(capsys):
    torch.set_num_threads(1)
    bench = load_script()
    argv = ["--shape", "tiny", "--batch", "2", "--steps", "1", "--warmup", "0"]
    row = bench.main([*argv, "--max-pixels", str(112 * 112), "--no-grad-ckpt", "--fused-adamw"])
    assert row["visual_tokens"] == 16  # 112 px: 8 x 8 patches, merged 2 x 2
    assert row["train_img_s"] > 0 and row["infer_img_s"] > 0
    assert row["setting"] == "lm+vision lora, no ckpt" and math.isnan(row["train_vs_ref"])
    assert "train_img_s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch", "3"])


def test_tiny_shape_comparator_one_step():
    torch.set_num_threads(1)
    bench = load_script()
    argv = ["--shape", "tiny", "--batch", "4", "--steps", "1", "--warmup", "0", "--task"]
    row = bench.main([*argv, "pairwise", "--max-pixels", str(112 * 112), "--no-grad-ckpt"])
    assert row["task"] == "pairwise"
    assert row["visual_tokens"] == 32  # both images of the pair in one prompt
    assert row["train_pairs_s"] == row["train_img_s"] / 2 > 0
    assert row["infer_pairs_s"] == row["infer_img_s"] / 2 > 0
