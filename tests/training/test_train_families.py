"""Model families beyond Qwen2-VL load, train a step and predict through the same code path."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from training.config import TrainConfig  # noqa: E402
from training.encoding import HFPromptProcessor, QwenVLPromptProcessor  # noqa: E402
from training.modeling import load_trained  # noqa: E402
from training.predict import PROB_COLUMNS, predict_images  # noqa: E402
from training.tiny import build_tiny_tokenizer, save_tiny_model  # noqa: E402
from training.trainer import train  # noqa: E402


@pytest.mark.parametrize(
    ("family", "processor", "model_class"),
    [
        ("qwen2_5_vl", QwenVLPromptProcessor, "Qwen2_5_VLForConditionalGeneration"),
        ("idefics3", HFPromptProcessor, "Idefics3ForConditionalGeneration"),
    ],
)
def test_family_trains_and_predicts(noise_study, tmp_path, family, processor, model_class):
    torch.set_num_threads(1)
    model_dir = save_tiny_model(tmp_path / family, family=family)
    config = TrainConfig.model_validate(
        {
            "model": str(model_dir),
            "data": {"table": str(noise_study), "split_column": "split"},
            "image": {"size": 112},
            "adapter": {"rank": 4, "alpha": 8, "dropout": 0.0, "vision": "lora"},
            "optim": {"lr": 1e-3, "max_steps": 2, "pairs_per_batch": 2},
            "run": {"output_dir": str(tmp_path / "out"), "progress": False, "log_every": 1},
        }
    )
    out = train(config)
    assert np.isfinite(pd.read_csv(out / "metrics.csv")["loss"]).all()
    loaded, _ = load_trained(out)
    assert isinstance(loaded.processor, processor)
    assert type(loaded.base_model()).__name__ == model_class
    pred = predict_images(out, noise_study.parent / "coffee0_4.png", progress=False)
    assert len(pred) == 1 and np.isfinite(pred["jod_pred"]).all()
    np.testing.assert_allclose(pred[list(PROB_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="family must be one of"):
        build_tiny_tokenizer(family="llava")
