"""The ResNet baseline: a tiny ResNet learns the synthetic noise ranking on unseen scenes,
predicts the same after save/reload, and bad inputs fail clearly."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from scaling.errors import InputError  # noqa: E402
from training.baseline import WEIGHTS_DIR, ResNetRegressor, predict_baseline_rows  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.evaluate import evaluate  # noqa: E402
from training.modeling import load_trained, read_model_card  # noqa: E402
from training.predict import predict_images  # noqa: E402
from training.trainer import train  # noqa: E402

TINY_RESNET = {
    "hidden_sizes": [16, 32],
    "depths": [1, 1],
    "embedding_size": 16,
    "layer_type": "basic",
}


def resnet_config(table, out, model=None, **optim) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "kind": "resnet",
            "model": None if model is None else str(model),
            "resnet": TINY_RESNET,
            "data": {"table": str(table), "split_column": "split"},
            "image": {"size": 112},
            "optim": {"lr": 3e-3, "max_steps": 100, "pairs_per_batch": 8, **optim},
            "run": {"output_dir": str(out), "progress": False, "log_every": 20},
        }
    )


@pytest.mark.slow
def test_tiny_resnet_ranks_unseen_scenes_and_reloads(noise_study, tmp_path, prediction_atol):
    torch.set_num_threads(1)
    out = train(resnet_config(noise_study, tmp_path / "run"))
    log = pd.read_csv(out / "metrics.csv")
    assert log["loss"].iloc[-1] < 0.3 * log["loss"].iloc[0]

    rows = pd.read_csv(out / "split.csv").query("split == 'test'")
    model = ResNetRegressor.load(out / WEIGHTS_DIR)
    _, rescalings = read_model_card(out)
    pred = predict_baseline_rows(model, rescalings, rows, 112, batch_size=16)
    pred["jod"] = rows["jod"].to_numpy()
    table = evaluate(pred).set_index("level")
    print(table)
    assert table.loc["global", "n"] == 30 and table.loc["global", "srcc"] >= 0.8

    again = predict_images(out, noise_study.parent / "chelsea0_3.png", progress=False)
    first = pred.loc[pred["image_path"].str.endswith("chelsea0_3.png"), "jod_pred"].item()
    assert again["jod_pred"].item() == pytest.approx(first, abs=prediction_atol)
    with pytest.raises(InputError, match="holds a resnet model"):
        load_trained(out)


def test_pretrained_weights_load_from_a_local_directory(noise_study, tmp_path):
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    weights = tmp_path / "weights"
    ResNetModel(ResNetConfig(**TINY_RESNET)).save_pretrained(weights)
    out = train(resnet_config(noise_study, tmp_path / "run", model=weights, max_steps=1))
    saved = ResNetRegressor.load(out / WEIGHTS_DIR)
    assert saved.backbone.config.hidden_sizes == [16, 32]
    assert np.isfinite(pd.read_csv(out / "metrics.csv")["loss"]).all()


def test_bad_inputs_fail_clearly(noise_study, tmp_path):
    with pytest.raises(FileNotFoundError, match="local directories only"):
        train(resnet_config(noise_study, tmp_path / "a", model=tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="same length"):
        TrainConfig.model_validate({"kind": "resnet", "resnet": {"depths": [1]}})
    with pytest.raises(ValueError, match="required for kind 'vlm'"):
        TrainConfig.model_validate({})
    bad = pd.read_csv(noise_study, dtype={"jod": str})
    bad.loc[3, "jod"] = "high"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    config = resnet_config(tmp_path / "bad.csv", tmp_path / "b")
    config.data.image_root = noise_study.parent
    with pytest.raises(InputError, match=r"bad.csv, row 4, field 'jod'"):
        train(config)

    from transformers import ResNetConfig, ResNetModel

    model = ResNetRegressor(ResNetModel(ResNetConfig(**TINY_RESNET)), ["noise"])
    rows = pd.DataFrame({"image_path": [str(noise_study.parent / "coffee0_0.png")]})
    with pytest.raises(InputError, match=r"not trained on attributes \['texture'\]"):
        predict_baseline_rows(model, {}, rows.assign(attribute="texture"), 112, 4)
