"""The run skeleton on a tiny VLM: mixed precision with fp32 masters, offline loading,
validation-driven runs (evaluation, best weights, early stopping, logs, rotation), resume
(exact, after an interrupt, past a corrupt checkpoint), config changes and empty splits."""

import json
import shutil
import socket

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


from scaling.errors import InputError  # noqa: E402
from training.checkpoints import BEST, CHECKPOINTS, WEIGHTS_FILE  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.modeling import load_trained, load_vlm  # noqa: E402
from training.predict import predict_images  # noqa: E402
from training.run import Run, TrainingInterrupted  # noqa: E402
from training.tiny import build_tiny_model, build_tiny_tokenizer  # noqa: E402
from training.trainer import ScoreTask, train  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, flat_workspace):
    """A tiny model and a 6-scene table of noisy flat images (noise falls with JOD)."""
    return flat_workspace(tmp_path_factory.mktemp("run"), ("noise",), (56, 56), seed=1)


def config_for(root, out, run=None, **optim) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "model": str(root / "tiny"),
            "data": {"table": str(root / "table.csv"), "val_fraction": 0.2, "test_fraction": 0.2},
            "image": {"size": 56},
            "adapter": {"rank": 4, "alpha": 8, "dropout": 0.0, "vision": "lora"},
            "optim": {"lr": 2e-3, "max_steps": 4, "pairs_per_batch": 4, "warmup_ratio": 0, **optim},
            "run": {
                "output_dir": str(out),
                "progress": False,
                "log_every": 1,
                "num_workers": 0,
                "tensorboard": False,
                "eval_every": None,
                "checkpoint_every": None,
                "gradient_checkpointing": False,
                "mixed_precision": "no",
                **(run or {}),
            },
        }
    )


# --- precision --------------------------------------------------------------------------


def test_bf16_autocast_keeps_fp32_masters_and_every_trainable_weight_moves(workspace, tmp_path):
    """At lr 2e-5, bf16 weights would round most updates away (0.02 + 2e-5 == 0.02 in bf16):
    with fp32 masters every element that has a gradient changes after one step."""
    config = config_for(
        workspace, tmp_path / "out", {"mixed_precision": "bf16"}, lr=2e-5, max_grad_norm=None
    )
    config.adapter.vision = "full"
    config.adapter.lm_head = "full"
    run = Run(config, ScoreTask)
    model = run.accelerator.unwrap_model(run.model)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert {p.dtype for p in trainable.values()} == {torch.float32}
    assert frozen and {p.dtype for p in frozen} == {torch.bfloat16}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    batch = next(iter(run._loader(0, 0)))
    with run.accelerator.autocast():
        loss = run.task.loss(run.model, batch)["loss"]
    run.accelerator.backward(loss)
    grads = {n: p.grad.detach().clone() for n, p in trainable.items()}
    run.optimizer.step()
    moved = 0
    for name, param in trainable.items():
        has_grad = grads[name] != 0
        if "lora_A" in name:  # B starts at 0, so A's first gradient is exactly 0
            assert not has_grad.any()
            continue
        assert has_grad.any(), name
        changed = param.detach() != before[name]
        assert changed[has_grad].all(), f"{name}: {(~changed[has_grad]).sum()} stuck elements"
        moved += 1
    assert moved >= 10  # vision tower, lm_head and LoRA B tensors


def test_no_mixed_precision_trains_a_bf16_checkpoint_in_fp32(workspace, tmp_path):
    tokenizer = build_tiny_tokenizer()
    model_dir = tmp_path / "bf16"
    shutil.copytree(workspace / "tiny", model_dir)
    build_tiny_model(tokenizer).to(torch.bfloat16).save_pretrained(model_dir)
    config = config_for(workspace, tmp_path / "out", {"mixed_precision": "no"})
    config.model = model_dir
    run = Run(config, ScoreTask)
    assert {p.dtype for p in run.model.parameters()} == {torch.float32}


# --- offline ------------------------------------------------------------------------------


def test_models_load_with_hub_kernels_off(workspace):
    loaded = load_vlm(workspace / "tiny")
    assert loaded.model.use_kernels is False


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_train_predict_evaluate_make_no_network_access(workspace, tmp_path, no_network):
    from typer.testing import CliRunner

    from jodkit.cli import app

    config = config_for(workspace, tmp_path / "out", {"eval_every": 2, "tensorboard": True})
    config.to_yaml(tmp_path / "config.yaml")
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    predictions = tmp_path / "pred.csv"
    result = runner.invoke(
        app, ["predict", str(out), str(workspace / "img"), "-o", str(predictions)]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["evaluate", str(predictions), str(out / "split.csv"), "-o", str(tmp_path / "ev")]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "ev" / "metrics.csv")
    assert table.loc[table["level"] == "global", "n"].item() == 4  # 1 test scene x 4 images


# --- validation-driven runs ---------------------------------------------------------------


def test_validation_best_weights_logs_curves_and_rotation(workspace, tmp_path):
    out = tmp_path / "out"
    run_settings = {
        "eval_every": 2,
        "checkpoint_every": 1,
        "keep_checkpoints": 2,
        "tensorboard": True,
        "num_workers": 1,
    }
    run = Run(config_for(workspace, out, run_settings), ScoreTask)
    run.fit()
    evals = pd.read_csv(out / "eval.csv")
    assert sorted(evals["step"].unique()) == [2, 4]
    assert set(evals["level"]) == {"global", "per_scene_mean"}
    assert evals[["srcc", "plcc", "krcc", "mae_jod"]].notna().all().all()
    assert (evals.loc[evals["level"] == "global", "n"] == 4).all()  # one val scene
    steps = sorted(p.name for p in (out / CHECKPOINTS).iterdir())
    assert steps == [BEST, "step_00000003", "step_00000004"]
    best = json.loads((out / CHECKPOINTS / BEST / "state.json").read_text())
    global_srcc = evals[evals["level"] == "global"].set_index("step")["srcc"]
    assert best["best_value"] == pytest.approx(global_srcc.max())
    assert best["best_step"] == int(global_srcc.idxmax())
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "curves.png").stat().st_size > 10_000
    assert pd.read_csv(out / "metrics.csv")["step"].tolist() == [1, 2, 3, 4]
    # the saved model is the best evaluation's weights (run.keep: best)
    from safetensors.torch import load_file

    best_weights = load_file(out / CHECKPOINTS / BEST / WEIGHTS_FILE)
    reloaded, _ = load_trained(out)
    saved = dict(reloaded.model.named_parameters())
    for name, tensor in best_weights.items():
        if "lora_B" in name:
            torch.testing.assert_close(saved[name].detach(), tensor)


def test_dataloader_workers_build_the_same_batches(workspace, tmp_path):
    batches = {}
    for workers in (0, 2):
        run = Run(
            config_for(workspace, tmp_path / f"w{workers}", {"num_workers": workers}), ScoreTask
        )
        batches[workers] = list(run._loader(0, 0))
    assert len(batches[0]) == len(batches[2]) == 4
    for a, b in zip(batches[0], batches[2], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_early_stopping_stops_when_validation_stalls(workspace, tmp_path):
    out = tmp_path / "out"
    config = config_for(
        workspace, out, {"eval_every": 1, "early_stopping": 1}, lr=1e-12, max_steps=10
    )
    Run(config, ScoreTask).fit()
    assert pd.read_csv(out / "metrics.csv")["step"].max() == 2  # eval 2 did not beat eval 1
    assert (out / "adapter").is_dir()


# --- resume, interrupts, config changes, corrupt checkpoints -----------------------------


def test_interrupt_says_how_to_resume_and_resume_is_exact(workspace, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    Run(config_for(workspace, straight, {"checkpoint_every": 2}), ScoreTask).fit()

    broken = tmp_path / "broken"
    config = config_for(workspace, broken, {"checkpoint_every": 2})
    run = Run(config, ScoreTask)
    calls = {"n": 0}
    original = run.task.loss

    def interrupt_at_step_three(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(model, batch)

    monkeypatch.setattr(run.task, "loss", interrupt_at_step_three)
    with pytest.raises(
        TrainingInterrupted, match=r"interrupted at step 2 of 4.*step_00000002.*resume"
    ):
        run.fit()
    Run(config, ScoreTask).fit()  # the same command again
    a, b = pd.read_csv(straight / "metrics.csv"), pd.read_csv(broken / "metrics.csv")
    assert b["step"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-6)
    np.testing.assert_allclose(b["lr"], a["lr"], rtol=0)


def test_the_train_command_exits_130_with_the_resume_hint(workspace, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from jodkit.cli import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ScoreTask, "loss", interrupted)
    config = config_for(workspace, tmp_path / "out")
    config.to_yaml(tmp_path / "c.yaml")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml")])
    assert result.exit_code == 130
    assert "interrupted at step 0 of 4" in result.output
    assert "no checkpoint was written yet" in result.output


def test_a_changed_config_is_refused_unless_forced(workspace, tmp_path):
    out = tmp_path / "out"
    Run(config_for(workspace, out, {"checkpoint_every": 2}), ScoreTask).fit()
    first = pd.read_csv(out / "metrics.csv")
    changed = config_for(workspace, out, {"checkpoint_every": 2}, lr=1e-3)
    with pytest.raises(InputError, match=r"optim\.lr: 0\.002 -> 0\.001.*--force") as error:
        Run(changed, ScoreTask).fit()
    assert str(out / "config.yaml") in str(error.value)
    assert TrainConfig.from_yaml(out / "config.yaml").optim.lr == 2e-3  # left intact
    # settings that change nothing of the result may differ
    Run(config_for(workspace, out, {"checkpoint_every": 2, "log_every": 2}), ScoreTask).fit()
    Run(changed, ScoreTask).fit(force=True)
    assert TrainConfig.from_yaml(out / "config.yaml").optim.lr == 1e-3
    again = pd.read_csv(out / "metrics.csv")
    assert again["step"].tolist() == [1, 2, 3, 4]
    assert not np.allclose(again["loss"].iloc[1:], first["loss"].iloc[1:])


def test_a_corrupt_checkpoint_is_named_and_skipped(workspace, tmp_path):
    out = tmp_path / "out"
    config = config_for(workspace, out, {"checkpoint_every": 1, "keep_checkpoints": 3})
    Run(config, ScoreTask).fit()
    newest = out / CHECKPOINTS / "step_00000004" / WEIGHTS_FILE
    newest.write_bytes(newest.read_bytes()[:100])
    run = Run(config, ScoreTask)
    with pytest.warns(UserWarning, match=r"step_00000004 is corrupt.*skipping"):
        run.fit()
    assert pd.read_csv(out / "metrics.csv")["step"].tolist() == [1, 2, 3, 4]


def test_splits_left_empty_are_an_error(workspace, tmp_path):
    table = pd.read_csv(workspace / "table.csv")
    one_scene = table[table["scene"] == "s0"]
    one_scene.to_csv(tmp_path / "one.csv", index=False)
    config = config_for(workspace, tmp_path / "out")
    config.data.table = tmp_path / "one.csv"
    config.data.image_root = workspace
    with pytest.raises(InputError, match=r"val and test split would be empty"):
        train(config)
    config.data.val_fraction = config.data.test_fraction = 0.0
    assert (train(config) / "adapter").is_dir()  # explicitly without: allowed


def test_global_batch_must_split_over_accumulation(workspace, tmp_path):
    config = config_for(workspace, tmp_path / "out", grad_accum=3)
    with pytest.raises(InputError, match=r"multiple of 3"):
        Run(config, ScoreTask)


def test_model_card_base_path_travels_with_the_run(workspace, tmp_path):
    out = tmp_path / "site" / "runs" / "a"
    shutil.copytree(workspace / "tiny", tmp_path / "site" / "models" / "tiny")
    config = config_for(workspace, out)
    config.model = tmp_path / "site" / "models" / "tiny"
    train(config)
    card = json.loads((out / "jodkit_model.json").read_text())
    assert card["base_model"] == "../../models/tiny"
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "site", moved)
    pred = predict_images(moved / "runs" / "a", workspace / "img" / "s0_0.png", progress=False)
    assert np.isfinite(pred["jod_pred"]).all()


@pytest.mark.parametrize("part", ["vision", "language"])
def test_selective_checkpointing_recomputes_one_part_and_changes_no_gradient(
    workspace, tmp_path, part
):
    grads, flags = {}, {}
    for setting in (False, part):
        config = config_for(workspace, tmp_path / str(setting), {"gradient_checkpointing": setting})
        run = Run(config, ScoreTask)
        model = run.accelerator.unwrap_model(run.model)
        flags[setting] = [
            n for n, m in model.named_modules() if getattr(m, "gradient_checkpointing", False)
        ]
        run.task.loss(run.model, next(iter(run._loader(0, 0))))["loss"].backward()
        grads[setting] = {
            n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
        }
    tower = "visual" if part == "vision" else "language_model"
    assert not flags[False]
    assert flags[part] and all(f".{tower}." in n or n.endswith(tower) for n in flags[part])
    assert grads[part].keys() == grads[False].keys()
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[part][name], grad, rtol=1e-5, atol=1e-7)


def test_a_bf16_run_validates_under_autocast_and_reloads_in_fp32(workspace, tmp_path):
    out = tmp_path / "out"
    settings = {"mixed_precision": "bf16", "eval_every": 1, "checkpoint_every": 1}
    Run(config_for(workspace, out, settings, max_steps=2), ScoreTask).fit()
    evals = pd.read_csv(out / "eval.csv")
    assert sorted(evals["step"].unique()) == [1, 2] and evals["srcc"].notna().all()
    pred = predict_images(out, workspace / "img" / "s1_2.png", progress=False)
    assert np.isfinite(pred["jod_pred"]).all()
