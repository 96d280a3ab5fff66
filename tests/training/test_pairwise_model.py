"""The comparator on tiny VLMs: loss, a training step, symmetric answers, reload, prediction,
the command line, families and bad input."""

import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from typer.testing import CliRunner  # noqa: E402

from jodkit.cli import app  # noqa: E402
from scaling.errors import InputError  # noqa: E402
from training.comparator import (  # noqa: E402
    PairwiseTask,
    SideBySideWarning,
    compare_images,
    first_probability,
    load_comparator,
    pair_kl,
    predict_pair_rows,
    predict_pairs,
    prepare_pairs,
    resolve_layout,
)
from training.config import TrainConfig  # noqa: E402
from training.modeling import LoadedModel, load_vlm  # noqa: E402
from training.predict import predict_images  # noqa: E402
from training.run import Run  # noqa: E402
from training.tiny import save_tiny_model  # noqa: E402


def pair_config(model, study, out, steps=2, size=56, pairs=None, **sections) -> TrainConfig:
    config = {
        "model": str(model),
        "task": "pairwise",
        "pairs": {
            "trials": [str(study["trials"])],
            "scene_scales": str(study["scale"]),
            "images": str(study["index"]),
            "split_table": str(study["split"]),
            **(pairs or {}),
        },
        "image": {"size": size},
        "adapter": {"rank": 8, "alpha": 16, "dropout": 0.0, "lm_head": "full"},
        "optim": {
            "lr": 3e-3,
            "vision_lr": 1e-4,
            "max_steps": steps,
            "pairs_per_batch": 8,
            "warmup_ratio": 0,
        },
        "run": {
            "output_dir": str(out),
            "gradient_checkpointing": False,
            "progress": False,
            "log_every": 1,
            "eval_every": None,
            "checkpoint_every": None,
            "num_workers": 0,
            "tensorboard": False,
        },
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return TrainConfig.model_validate(config)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("comparator") / "tiny")


@pytest.fixture(scope="module")
def trained(tiny, pair_study, tmp_path_factory):
    """A comparator after a few steps: enough to save, reload and predict (the learning test
    trains one for real)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    config = pair_config(tiny, pair_study, out, steps=4)
    Run(config, PairwiseTask, prepare_pairs(config)).fit()
    return out


# --- loss ---------------------------------------------------------------------------------------


def test_pair_kl_and_probability_against_plain_formulas():
    torch.manual_seed(0)
    vocab = torch.randn(6, 11)
    ids = torch.tensor([7, 3])
    target = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0, 0.35])
    got = pair_kl(vocab, ids, target)
    expected = 0.0
    for row, t in zip(vocab.tolist(), target.tolist(), strict=True):
        p = math.exp(row[7]) / (math.exp(row[7]) + math.exp(row[3]))
        for q, r in ((t, p), (1 - t, 1 - p)):
            expected += q * math.log(q / r) if q > 0 else 0.0
    assert float(got) == pytest.approx(expected / 6, rel=1e-5)
    p_first = first_probability(vocab, ids)
    assert p_first.tolist() == pytest.approx(
        (1 / (1 + torch.exp(vocab[:, 3] - vocab[:, 7]))).tolist(), rel=1e-6
    )


def test_one_step_lowers_the_loss_and_changes_the_adapter(tiny, pair_study, tmp_path):
    config = pair_config(tiny, pair_study, tmp_path / "out")
    data = prepare_pairs(config)
    task = PairwiseTask(config, data, "no")
    units = task.units(0)[:8]
    batch = task.collate(units, list(range(8)), 0)
    assert batch["pixel_values"].shape[0] > 0 and batch["target"].shape == (8,)
    before = {n: p.detach().clone() for n, p in task.model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD(task.param_groups())  # a plain gradient step, the task's rates
    task.model.train()
    first = task.loss(task.model, batch)
    assert set(first) == {"loss", "kl", "ce"}
    first["loss"].backward()
    optimizer.step()
    after = task.loss(task.model, batch)
    assert float(after["loss"]) < float(first["loss"])
    changed = [
        n
        for n, p in task.model.named_parameters()
        if p.requires_grad and not torch.equal(p, before[n])
    ]
    assert any("lora_B" in n for n in changed)


def test_units_hold_every_training_pair_in_both_orders(tiny, pair_study, tmp_path):
    config = pair_config(tiny, pair_study, tmp_path / "out")
    data = prepare_pairs(config)
    task = PairwiseTask(config, data, "no")
    units = task.units(3)
    assert sorted(units) == [(i, o) for i in range(len(task.train_rows)) for o in (0, 1)]
    assert units != task.units(4)  # reshuffled per epoch
    # the two orders of a pair are neighbours, so a batch of an even number of units holds
    # both: their position terms cancel in its gradient (without this the tiny comparator
    # learnt only a position bias on the example study)
    assert [i for i, _ in units[0::2]] == [i for i, _ in units[1::2]]
    assert {o for _, o in units[0::2]} == {0} and {o for _, o in units[1::2]} == {1}
    odd = pair_config(tiny, pair_study, tmp_path / "odd", optim={"pairs_per_batch": 3})
    with pytest.warns(UserWarning, match="pairs_per_batch is 3: .* only when it is even"):
        PairwiseTask(odd, data, "no")
    batch = task.collate([(0, 0), (0, 1)], [0, 1], 0)
    target = task.train_rows["target"].iloc[0]
    assert batch["target"].tolist() == pytest.approx([target, 1 - target])


# --- a trained comparator ------------------------------------------------------------------------


def test_reloaded_predictions_average_both_orders(trained):
    loaded, config, card = load_comparator(trained)
    pairs = pd.read_csv(trained / "split.csv")
    rows = pairs[pairs["split"] == "train"].iloc[:6].reset_index(drop=True)
    pred = predict_pair_rows(loaded, rows, config, card["layout"], batch_size=4)
    assert pred["p_a_better"].tolist() == pytest.approx(
        ((pred["p_ab"] + pred["p_ba"]) / 2).tolist()
    )
    swapped = rows.rename(columns={"image_A": "image_B", "image_B": "image_A"})
    back = predict_pair_rows(loaded, swapped, config, card["layout"], batch_size=6)
    # the same prompts in the other roles: P(A better) turns into 1 - P, whatever the batch
    assert back["p_a_better"].tolist() == pytest.approx((1 - pred["p_a_better"]).tolist(), abs=1e-5)
    assert back["p_ab"].tolist() == pytest.approx((1 - pred["p_ba"]).tolist(), abs=1e-5)


def test_model_card_and_the_other_task_is_refused(trained, pair_study):
    _, _, card = load_comparator(trained)
    assert card["task"] == "pairwise" and card["layout"] == "two_images"
    assert card["answer_words"] == ["First", "Second"] and card["attributes"] == ["noise"]
    with pytest.raises(InputError, match="holds a comparator: ask it with `jod predict --pairs`"):
        predict_images(trained, pair_study["index"].parent, progress=False)


def test_predict_pairs_and_compare(trained, pair_study, tmp_path):
    root = pair_study["index"].parent
    table = pd.DataFrame(
        {
            "image_A": ["chelsea0_0.png", "chelsea0_4.png"],
            "image_B": ["chelsea0_4.png", "chelsea0_0.png"],
            "attribute": "noise",
            "note": ["clean first", "noisy first"],
        }
    )
    table.to_csv(root / "two_pairs.csv", index=False)
    pred = predict_pairs(trained, root / "two_pairs.csv", progress=False)
    assert list(pred["note"]) == ["clean first", "noisy first"]  # other columns are kept
    assert pred["p_a_better"].iloc[0] == pytest.approx(1 - pred["p_a_better"].iloc[1], abs=1e-6)
    p, sentence = compare_images(trained, root / "chelsea0_0.png", root / "chelsea0_4.png")
    assert p == pytest.approx(pred["p_a_better"].iloc[0], abs=1e-6)
    word = "First" if p >= 0.5 else "Second"
    assert sentence.startswith(f"{word}. The {word.lower()} image has better noise")


def test_command_line(trained, pair_study, tmp_path):
    root = pair_study["index"].parent
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "compare",
            str(trained),
            str(root / "coffee0_0.png"),
            str(root / "coffee0_4.png"),
            "--attribute",
            "noise",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "P(first better) = 0." in result.output and "image has better noise" in result.output
    out = tmp_path / "pred.csv"
    result = runner.invoke(
        app,
        [
            "predict",
            str(trained),
            "--pairs",
            str(trained / "split.csv"),
            "--split",
            "test",
            "-o",
            str(out),
            "--trials-out",
            str(tmp_path / "model_trials.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(out)
    pairs = pd.read_csv(trained / "split.csv")
    assert len(pred) == int((pairs["split"] == "test").sum())
    assert pred["p_a_better"].between(0, 1).all()
    trials = pd.read_csv(tmp_path / "model_trials.csv")
    assert set(trials["observer"]) == {"comparator"}
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--task",
            "pairwise",
            str(out),
            str(trained / "split.csv"),
            "--scales",
            str(pair_study["scale"]),
            "-o",
            str(tmp_path / "eval"),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "eval" / "metrics.csv")
    assert {"human scale (ceiling)", "comparator", "chance (P = 1/2)"} <= set(table["model"])
    for name in ("calibration.png", "disagreement.csv", "disagreement.png"):
        assert (tmp_path / "eval" / name).is_file()
    # bad input: one line, exit code 2
    result = runner.invoke(
        app, ["compare", str(trained), str(root / "coffee0_0.png"), str(root / "coffee0_0.png")]
    )
    assert result.exit_code == 2 and "compare two different images" in result.output
    bad = tmp_path / "unknown_image.csv"
    pd.DataFrame(
        {"image_A": [str(root / "coffee0_0.png")], "image_B": ["nope.png"], "attribute": "noise"}
    ).to_csv(bad, index=False)
    result = runner.invoke(app, ["predict", str(trained), "--pairs", str(bad), "-o", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "row 1, field 'image_B'" in result.output and "nope.png" in result.output
    assert len(pd.read_csv(out)) == len(pred)  # the earlier output is left as it was


# --- bad input -----------------------------------------------------------------------------------


def test_pair_table_errors(trained, pair_study, tmp_path):
    root = pair_study["index"].parent
    cases = {
        "missing": (["coffee0_0.png", "nope.png"], "row 2, field 'image_A': image file .*nope.png"),
        "same": (["coffee0_0.png", "coffee0_1.png"], "row 1, field 'image_B': image_A and image_B"),
    }
    for name, (firsts, message) in cases.items():
        seconds = ["coffee0_1.png", "coffee0_2.png"] if name == "missing" else firsts
        if name == "same":
            seconds = ["coffee0_0.png", "coffee0_2.png"]
        path = root / f"bad_{name}.csv"
        pd.DataFrame({"image_A": firsts, "image_B": seconds, "attribute": "noise"}).to_csv(
            path, index=False
        )
        with pytest.raises(InputError, match=message):
            predict_pairs(trained, path, progress=False)
    path = root / "bad_attribute.csv"
    pd.DataFrame(
        {"image_A": ["coffee0_0.png"], "image_B": ["coffee0_1.png"], "attribute": "exposure"}
    ).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"not trained on attributes \['exposure'\]"):
        predict_pairs(trained, path, progress=False)
    with pytest.raises(InputError, match="image file not found"):
        compare_images(trained, root / "coffee0_0.png", root / "nope.png", "noise")


def test_an_answer_word_of_several_tokens_is_refused(tiny, pair_study, tmp_path):
    config = pair_config(
        tiny, pair_study, tmp_path / "out", pairs={"answer_words": ["First", "Secondly"]}
    )
    with pytest.raises(InputError, match=r"the answer word 'Secondly' is [2-9] tokens"):
        PairwiseTask(config, prepare_pairs(config), "no")


def test_trials_naming_images_outside_the_index_are_refused(tiny, pair_study, tmp_path):
    index = pd.read_csv(pair_study["index"]).iloc[1:]
    index.to_csv(tmp_path / "index.csv", index=False)
    index_path = tmp_path / "index.csv"
    index_frame = pd.read_csv(index_path)
    index_frame["image_path"] = [
        str(pair_study["index"].parent / p) for p in index_frame["image_path"]
    ]
    index_frame.to_csv(index_path, index=False)
    config = pair_config(tiny, pair_study, tmp_path / "out", pairs={"images": str(index_path)})
    with pytest.raises(
        InputError,
        match=r"image \(astronaut0, astronaut0_0\) is judged in the trials but not in the "
        "image index",
    ):
        prepare_pairs(config)


# --- layouts and families ------------------------------------------------------------------------


def test_side_by_side_when_the_processor_cannot_take_two_images(tiny):
    loaded = load_vlm(tiny)

    class OneImage:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, text, images):
            if len(images) > 1:
                raise ValueError("this processor takes one image per prompt")
            return self.inner(text=text, images=images)

    single = LoadedModel(
        loaded.model, loaded.tokenizer, OneImage(loaded.processor), loaded.level_ids, tiny
    )
    with pytest.warns(SideBySideWarning, match="side by side"):
        assert resolve_layout("auto", single, 56) == "side_by_side"
    assert resolve_layout("auto", loaded, 56) == "two_images"


@pytest.mark.parametrize(
    ("family", "layout"),
    [("qwen2_5_vl", "auto"), ("idefics3", "auto"), ("qwen2_vl", "side_by_side")],
)
def test_families_and_layouts_train_and_predict(pair_study, tmp_path, family, layout):
    torch.set_num_threads(1)
    model = save_tiny_model(tmp_path / family, family=family)
    config = pair_config(model, pair_study, tmp_path / "out", size=112, pairs={"layout": layout})
    Run(config, PairwiseTask, prepare_pairs(config)).fit()
    loaded, loaded_config, card = load_comparator(tmp_path / "out")
    assert card["layout"] == ("two_images" if layout == "auto" else layout)
    rows = pd.read_csv(tmp_path / "out" / "split.csv").iloc[:3]
    pred = predict_pair_rows(loaded, rows, loaded_config, card["layout"], batch_size=3)
    assert pred["p_a_better"].between(0, 1).all() and np.isfinite(pred["p_ab"]).all()


def test_a_score_model_is_not_a_comparator(trained, tmp_path):
    import json
    import shutil

    score = tmp_path / "score"
    shutil.copytree(trained, score)
    card = json.loads((score / "jodkit_model.json").read_text())
    del card["task"]
    (score / "jodkit_model.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="holds a score model, not a comparator"):
        load_comparator(score)


def test_validation_selects_by_the_held_out_trials_log_likelihood(tiny, pair_study, tmp_path):
    config = pair_config(
        tiny,
        pair_study,
        tmp_path / "out",
        steps=4,
        pairs={"split_table": None},
        data={"val_fraction": 0.2, "test_fraction": 0.2},
        run={"eval_every": 2},
    )
    Run(config, PairwiseTask, prepare_pairs(config)).fit()
    evals = pd.read_csv(tmp_path / "out" / "eval.csv")
    assert list(evals.columns) == [
        *("step", "attribute", "level", "log_likelihood", "accuracy", "brier", "n")
    ]
    assert evals["step"].tolist() == [2, 4] and (evals["log_likelihood"] < 0).all()
    pairs = pd.read_csv(tmp_path / "out" / "split.csv")
    assert evals["n"].iloc[0] == pairs.loc[pairs["split"] == "val", "n_trials"].sum()
    assert (tmp_path / "out" / "checkpoints" / "best").is_dir()
    assert (tmp_path / "out" / "curves.png").is_file()
    with pytest.raises(ValueError, match="'srcc' is not a metric of task 'pairwise'"):
        pair_config(tiny, pair_study, tmp_path / "x", run={"select_metric": "srcc"})


def test_compare_needs_the_attribute_when_the_model_knows_several(trained, pair_study, tmp_path):
    import json
    import shutil

    several = tmp_path / "several"
    shutil.copytree(trained, several)
    card = json.loads((several / "jodkit_model.json").read_text())
    card["attributes"] = ["detail", "noise"]
    (several / "jodkit_model.json").write_text(json.dumps(card))
    root = pair_study["index"].parent
    with pytest.raises(InputError, match=r"name the attribute .*knows \['detail', 'noise'\]"):
        compare_images(several, root / "coffee0_0.png", root / "coffee0_4.png")
