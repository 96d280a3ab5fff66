"""Model loading, encoding, a training step, save/reload/merge and prediction on a tiny VLM."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from PIL import Image  # noqa: E402

from scaling.errors import InputError  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import load_image, pad_to_square, read_table, split_scenes  # noqa: E402
from training.encoding import Sample  # noqa: E402
from training.modeling import apply_adapters, load_trained, load_vlm  # noqa: E402
from training.predict import PROB_COLUMNS, predict_images, predict_rows  # noqa: E402
from training.run import Run  # noqa: E402
from training.trainer import ScoreTask  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, flat_workspace):
    """A tiny model and a 6-scene, 2-attribute table of noisy flat images."""
    root = tmp_path_factory.mktemp("train")
    return flat_workspace(root, ("noise", "overall"), (60, 84), seed=0)


def make_config(root, out, **optim):
    return TrainConfig.model_validate(
        {
            "model": str(root / "tiny"),
            "data": {"table": str(root / "table.csv"), "val_fraction": 0.0, "test_fraction": 0.34},
            "image": {"size": 56},
            "adapter": {"rank": 4, "alpha": 8, "dropout": 0.0, "vision": "lora"},
            "optim": {"lr": 2e-3, "max_steps": 2, "pairs_per_batch": 4, "warmup_ratio": 0, **optim},
            "run": {
                "output_dir": str(out),
                "progress": False,
                "log_every": 1,
                "num_workers": 0,
                "tensorboard": False,
                "mixed_precision": "no",
            },
        }
    )


def first_batch(run: Run) -> dict:
    return next(iter(run._loader(0, 0)))


def test_missing_model_directory_says_how_to_provide_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="local directories only"):
        load_vlm(tmp_path / "nope")


def test_tokenizer_without_single_token_level_words_is_rejected(workspace, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(["a b c"], trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if not isinstance(m, str) else tuple(m.split(" ")) for m in state["merges"]]
    model_dir = tmp_path / "model"
    shutil.copytree(workspace / "tiny", model_dir)
    Qwen2Tokenizer(vocab=state["vocab"], merges=merges).save_pretrained(model_dir)
    with pytest.raises(InputError, match=r"level word ' bad' is \d+ tokens") as info:
        load_vlm(model_dir)
    assert str(model_dir) in str(info.value)


def test_pad_to_square_uses_the_mean_colour():
    image = Image.fromarray(np.full((10, 30, 3), (10, 100, 200), np.uint8))
    square = np.asarray(pad_to_square(image))
    assert square.shape == (30, 30, 3)
    assert square[0, 0].tolist() == [10, 100, 200]
    views = load_image_from(image)
    assert [v.size for v in views] == [(28, 28)]


def load_image_from(image, roi=None, tmp=None):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.png"
        image.save(path)
        return load_image(path, 28, roi)


def test_roi_adds_a_second_view():
    image = Image.fromarray(np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3))
    views = load_image_from(image, roi=(0, 0, 20, 10))
    assert len(views) == 2 and all(v.size == (28, 28) for v in views)
    assert not np.array_equal(np.asarray(views[0]), np.asarray(views[1]))


def test_split_keeps_scenes_whole_and_is_seeded(workspace):
    table = read_table(workspace / "table.csv")
    split = split_scenes(table, 0.2, 0.34, seed=3)
    assert split.groupby(table["scene"]).nunique().max() == 1
    assert (split == "test").groupby(table["scene"]).any().sum() == 2
    assert split.equals(split_scenes(table, 0.2, 0.34, seed=3))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.assign(jod=[np.nan, *list(t.jod[1:])]), r"row 1, field 'jod': jod is missing"),
        (
            lambda t: t.assign(image_path=["img/none.png", *list(t.image_path[1:])]),
            "none.png not found",
        ),
        (lambda t: t.drop(columns=["jod_std"]), "missing columns"),
        (lambda t: t.assign(attribute="gloss"), "attribute 'gloss' has no prompt"),
    ],
)
def test_bad_tables_give_clear_errors(workspace, tmp_path, edit, message):
    table = edit(pd.read_csv(workspace / "table.csv"))
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    config = make_config(workspace, tmp_path / "out")
    config.data.table = path
    config.data.image_root = workspace
    with pytest.raises(InputError, match=message):
        Run(config, ScoreTask)


def test_config_round_trip_and_checks(workspace, tmp_path):
    config = make_config(workspace, tmp_path / "out")
    config.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == config
    with pytest.raises(ValueError, match="nothing would train"):
        TrainConfig.model_validate(
            {"model": "m", "adapter": {"language": "frozen", "vision": "frozen"}}
        )
    with pytest.raises(ValueError, match="Extra inputs"):
        TrainConfig.model_validate({"model": "m", "optim": {"learning_rate": 1}})


def test_one_step_changes_lora_weights_and_lowers_the_loss(workspace, tmp_path):
    trainer = Run(make_config(workspace, tmp_path / "out"), ScoreTask)
    batch = first_batch(trainer)
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert lora and all(float(v.abs().max()) == 0 for v in lora.values())
    before = trainer.task.loss(trainer.model, batch)
    before["loss"].backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad()
    with torch.no_grad():
        after = trainer.task.loss(trainer.model, batch)
    changed = [
        n for n, p in trainer.model.named_parameters() if n in lora and not torch.equal(p, lora[n])
    ]
    assert len(changed) == len(lora)
    assert set(before) == {"loss", "kl", "ce", "fidelity"}
    assert after["loss"].item() < before["loss"].item() - 1e-3


def test_loss_terms_switch_off(workspace, tmp_path):
    config = make_config(workspace, tmp_path / "out")
    config.loss.fidelity_weight = 0.0
    config.loss.ce_weight = 0.0
    config.loss.label = "two_level"
    trainer = Run(config, ScoreTask)
    terms = trainer.task.loss(trainer.model, first_batch(trainer))
    assert set(terms) == {"loss", "kl"}
    assert terms["loss"].item() == pytest.approx(0.05 * terms["kl"].item())


def test_train_save_reload_merge_and_predict(workspace, tmp_path, prediction_atol):
    trainer = Run(make_config(workspace, tmp_path / "out", max_steps=3), ScoreTask)
    out = trainer.fit()
    log = pd.read_csv(out / "metrics.csv")
    assert log["step"].tolist() == [1, 2, 3] and log["loss"].notna().all()
    card = json.loads((out / "jodkit_model.json").read_text())
    assert set(card["rescalings"]) == {"noise", "overall"}

    rows = pd.read_csv(out / "split.csv").query("split == 'test'")
    in_memory = predict_rows(trainer.task.loaded, trainer.data.rescalings, rows, trainer.config, 5)
    in_memory_model = trainer.accelerator.unwrap_model(trainer.model)
    assert in_memory_model is trainer.task.loaded.model

    reloaded, rescalings = load_trained(out)
    again = predict_rows(reloaded, rescalings, rows, trainer.config, 3)
    np.testing.assert_allclose(again["jod_pred"], in_memory["jod_pred"], atol=prediction_atol)
    np.testing.assert_allclose(again[list(PROB_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    assert again["jod_pred"].between(-3.0, 0.0).all()

    merged = reloaded.model.merge_and_unload()
    reloaded.model = merged
    merged_pred = predict_rows(reloaded, rescalings, rows, trainer.config, 4)
    np.testing.assert_allclose(
        merged_pred["jod_pred"], in_memory["jod_pred"], atol=max(1e-4, prediction_atol)
    )

    images = predict_images(out, workspace / "img", attributes=["noise"], progress=False)
    assert len(images) == 24 and images["attribute"].eq("noise").all()
    assert math.isfinite(images["jod_std_pred"].sum())


def test_left_and_right_padding_predict_the_same(workspace):
    loaded = load_vlm(workspace / "tiny")
    from training.config import AdapterConfig

    loaded.model = apply_adapters(loaded.model, AdapterConfig(rank=2, dropout=0.0))
    image = load_image(workspace / "img/s0_1.png", 56)
    samples = [
        Sample(image, "Rate the noise of the image.", "The noise of the image is fair."),
        Sample(image, "Rate it.", "The overall quality of the image is good."),
    ]
    from training.losses import level_scores
    from training.modeling import answer_logits

    scores = {}
    for side in ("left", "right"):
        batch = loaded.encoder(side)(samples)
        assert (batch["attention_mask"][:, 0 if side == "left" else -1] == 0).any()
        with torch.no_grad():
            _, _, vocab = answer_logits(loaded.model.eval(), batch)
        scores[side] = level_scores(vocab[:, loaded.level_ids])[0]
    torch.testing.assert_close(scores["left"], scores["right"], atol=1e-5, rtol=0)
    assert abs(scores["left"][0] - scores["left"][1]) > 0
