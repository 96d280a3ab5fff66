"""``jod align`` end to end on CSV files, through typer's test runner."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import scaling
from alignment.align import align
from jodkit.cli import app
from scaling.formats import TRAINING_COLUMNS, image_key, trial_columns

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["align", *(str(a) for a in args)])


def _write(tmp_path, maps=None):
    maps = maps or {"s0": (1.0, 0.0), "s1": (0.5, 1.0)}
    rows, cross = [], []
    for scene, (a, b) in maps.items():
        for i in range(6):
            x = i - 2.5
            rows.append({"scene": scene, "condition": f"c{i}", "jod": x, "jod_std": 0.2})
            if i % 2 == 0:
                cross.append(
                    {"condition": image_key(scene, f"c{i}"), "jod": a * x + b, "jod_std": 0.3}
                )
    pd.DataFrame(rows).to_csv(tmp_path / "scales.csv", index=False)
    pd.DataFrame(cross).to_csv(tmp_path / "cross.csv", index=False)


def _export_layout(trials: pd.DataFrame, cross: bool) -> pd.DataFrame:
    """``trials`` as ``jod export`` writes them (annotation_app.export): every column of
    the formats contract in its order, plus two training trials and two ties per table
    with the answers the simulated observers did not give (both must be left out)."""
    extra = trials.iloc[:4].copy()
    extra["is_A_selected"] = 1 - extra["is_A_selected"]
    extra["is_training"] = [1, 1, 0, 0]
    extra["tie"] = [0, 0, 1, 1]
    out = pd.concat([extra, trials.assign(is_training=0, tie=0)], ignore_index=True)
    out = out.assign(rt_ms=900, is_gold=0, repeat_of=pd.NA, timestamp="2026-01-01T00:00:00Z")
    return out[list(trial_columns(cross_content=cross))]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small simulated study written as ``jod export`` writes it (``st.csv``, ``ct.csv``),
    the same trials without the export's ties and training trials (``st_plain.csv``,
    ``ct_plain.csv``), and an image manifest."""
    from study.panel import cross_trials, make_truth, per_scene_trials
    from study.renditions import ladder

    folder = tmp_path_factory.mktemp("exported")
    steps = ladder((1.0, 0.5, 0.25), (0.0, 0.05))
    manifest = pd.DataFrame(
        [{"scene": f"s{j}", "condition": f"r{k}"} | p.as_dict() for j in range(3)
         for k, p in enumerate(steps)]
    )  # fmt: skip
    truth = make_truth(manifest, seed=2)
    truth = truth[truth["attribute"] == "detail"]
    st = per_scene_trials(truth, n_observers=6, seed=3)
    chosen = truth[truth["condition"].isin(["r0", "r3", "r5"])]
    ct = cross_trials(truth, chosen, n_observers=6, seed=4)
    st.to_csv(folder / "st_plain.csv", index=False)
    ct.to_csv(folder / "ct_plain.csv", index=False)
    _export_layout(st, cross=False).to_csv(folder / "st.csv", index=False)
    _export_layout(ct, cross=True).to_csv(folder / "ct.csv", index=False)
    manifest.assign(image_path="img/" + manifest["scene"] + "_" + manifest["condition"] + ".png")[
        ["scene", "condition", "image_path"]
    ].to_csv(folder / "manifest.csv", index=False)
    return folder


def test_align_command_writes_table_metadata_and_plots(tmp_path):
    _write(tmp_path)
    out = tmp_path / "unified.csv"
    args = [tmp_path / "scales.csv", "--cross", tmp_path / "cross.csv", "--reference", "s0"]
    res = _invoke(*args, "-o", out, "--plots", tmp_path / "plots")
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    s1 = table[table["scene"] == "s1"]
    assert (s1["jod_unified"] - (0.5 * s1["jod_scene"] + 1.0)).abs().max() < 1e-9
    meta = json.loads((tmp_path / "unified.csv.meta.json").read_text())
    assert meta["attributes"]["all"]["scenes"]["s1"]["a"] == 0.5
    assert (tmp_path / "plots" / "maps.png").exists()
    assert "s1: a = 0.500, b = +1.000" in res.output


def test_align_command_bad_input_writes_nothing(tmp_path):
    _write(tmp_path)
    pd.read_csv(tmp_path / "cross.csv").iloc[:-2].to_csv(tmp_path / "cross.csv", index=False)
    out = tmp_path / "unified.csv"
    res = _invoke(tmp_path / "scales.csv", "--cross", tmp_path / "cross.csv", "-o", out)
    assert res.exit_code == 2
    assert "cross.csv" in res.output and "at least 2" in res.output
    assert not out.exists()


@pytest.mark.parametrize("method", ["paper", "weighted", "eiv", "offset", "joint"])
def test_every_method_runs_from_the_exported_trials(exported, tmp_path, method):
    out, training = tmp_path / "unified.csv", tmp_path / "training.csv"
    spread = ["--bootstrap", "8"] if method == "joint" else ["--scale-bootstrap", "20"]
    res = _invoke(
        "--trials", exported / "st.csv", "--cross-trials", exported / "ct.csv",
        "--method", method, *spread, "-o", out, "--training", training,
        "--images", exported / "manifest.csv", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    unified, train = pd.read_csv(out), pd.read_csv(training)
    assert len(unified) == 18 and unified["jod_unified"].notna().all()
    # the export's ties and training trials are left out: the plain trials give the same
    plain = _invoke(
        "--trials", exported / "st_plain.csv", "--cross-trials", exported / "ct_plain.csv",
        "--method", method, *spread, "-o", tmp_path / "plain.csv", "--quiet",
    )  # fmt: skip
    assert plain.exit_code == 0, plain.output
    np.testing.assert_allclose(
        pd.read_csv(tmp_path / "plain.csv")["jod_unified"], unified["jod_unified"], atol=1e-9
    )
    assert tuple(train.columns) == TRAINING_COLUMNS and len(train) == 18
    np.testing.assert_allclose(train["jod"], unified["jod_unified"])
    assert np.isfinite(train["jod_std"]).all() and (train["jod_std"] > 0).any()
    assert (
        train["image_path"].iloc[0]
        == f"img/{train['scene'].iloc[0]}_" + str(unified["condition"].iloc[0]) + ".png"
    )
    meta = json.loads((tmp_path / "unified.csv.meta.json").read_text())
    assert meta["method"] == method and meta["warnings"] == []
    assert set(meta["attributes"]["detail"]["scenes"]) == {"s0", "s1", "s2"}
    if method == "joint":
        assert "joint fit converged" in res.output and "reference slope profile" in res.output
        assert meta["attributes"]["detail"]["reference_profile"]["determined"]
    else:
        assert meta["scaling"]["per_scene"]["bootstrap_samples"] == 20


def test_paper_from_trials_equals_scaling_then_aligning(exported, tmp_path):
    """The trials route is ``scaling.scale`` of both tables, then ``align``: nothing else."""
    out = tmp_path / "unified.csv"
    args = ["--trials", exported / "st.csv", "--cross-trials", exported / "ct.csv"]
    res = _invoke(*args, "-o", out, "--training", tmp_path / "t.csv", "--quiet")
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "unified.csv.meta.json").read_text())
    assert meta["scaling"]["per_scene"]["bootstrap_samples"] == 200  # --training needs jod_std
    # point estimates do not depend on the bootstrap
    scenes = scaling.scale(str(exported / "st.csv"), progress=False)
    cross = scaling.scale(str(exported / "ct.csv"), progress=False)
    assert sorted(cross["condition"].str.split("/").str[0].unique()) == ["s0", "s1", "s2"]
    expected = align(scenes, cross)
    np.testing.assert_allclose(pd.read_csv(out)["jod_unified"], expected["jod_unified"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["S", "--cross", "C", "--trials", "T", "--cross-trials", "X"],
         "give either scale tables (SCALES and --cross) or trial tables (--trials and "
         "--cross-trials), not both"),
        (["--trials", "T"], "--trials and --cross-trials go together: give both"),
        (["S"], "SCALES and --cross go together: give both"),
        ([], "give --trials and --cross-trials, or SCALES and --cross"),
        (["S", "--cross", "C", "--method", "joint"],
         "method 'joint' fits the trials: give --trials and --cross-trials, not scale tables"),
        (["S", "--cross", "C", "--scale-bootstrap", "5"],
         "--scale-bootstrap applies to --trials, which jod align scales itself"),
        (["--trials", "T", "--cross-trials", "X", "--method", "joint", "--scale-bootstrap", "5"],
         "--scale-bootstrap does not apply to method 'joint' (use --bootstrap)"),
        (["--trials", "T", "--cross-trials", "X", "--slope-prior", "0.5"],
         "--slope-prior applies to method 'joint', not 'paper'"),
        (["--trials", "T", "--cross-trials", "X", "--images", "M"],
         "--images gives the image paths of --training: give --training too"),
    ],
)  # fmt: skip
def test_option_conflicts_are_one_line_errors(tmp_path, args, message):
    res = _invoke(*args, "-o", tmp_path / "u.csv")
    assert res.exit_code == 2
    assert res.output == f"error: {message}\n"
    assert not (tmp_path / "u.csv").exists()


def test_typed_options_refuse_bad_values(exported, tmp_path):
    base = ["--trials", exported / "st.csv", "--cross-trials", exported / "ct.csv"]
    for bad in (["--method", "magic"], ["--slope-prior", "-1"], ["--bootstrap", "-2"]):
        res = _invoke(*base, *bad, "-o", tmp_path / "u.csv")
        assert res.exit_code == 2 and f"Invalid value for '{bad[0]}'" in res.output, res.output
    assert not (tmp_path / "u.csv").exists()


def test_outputs_never_overwrite_inputs_or_each_other(exported, tmp_path):
    base = ["--trials", exported / "st.csv", "--cross-trials", exported / "ct.csv"]
    before = (exported / "st.csv").read_bytes()
    res = _invoke(*base, "-o", exported / "st.csv")
    assert res.exit_code == 2
    assert res.output == (
        f"error: {exported / 'st.csv'}: -o/--output would overwrite the input --trials: write "
        "to another file\n"
    )
    assert (exported / "st.csv").read_bytes() == before
    res = _invoke(*base, "-o", tmp_path / "u.csv", "--training", tmp_path / "u.csv")
    assert res.output == (
        f"error: {tmp_path / 'u.csv'}: --training and -o/--output name the same file: give "
        "them different names\n"
    )


def test_training_needs_stds_and_listed_images(exported, tmp_path):
    base = ["--trials", exported / "st.csv", "--cross-trials", exported / "ct.csv"]
    out, training = tmp_path / "u.csv", tmp_path / "t.csv"
    res = _invoke(*base, "--method", "joint", "-o", out, "--training", training, "--quiet")
    assert res.exit_code == 2
    assert res.output == (
        "error: the training table needs every image's jod_std, and 18 unified score(s) have "
        "none: give --bootstrap N (e.g. 200), or scale tables with jod_std\n"
    )
    manifest = pd.read_csv(exported / "manifest.csv")
    manifest.iloc[1:].to_csv(tmp_path / "m.csv", index=False)
    args = [*base, "--scale-bootstrap", "5", "-o", out, "--training", training, "--quiet"]
    res = _invoke(*args, "--images", tmp_path / "m.csv")
    assert res.exit_code == 2
    assert res.output == (
        f"error: {tmp_path / 'm.csv'}, field 'image_path': no image_path for scene 's0', "
        "condition 'r0'\n"
    )
    pd.concat([manifest, manifest.iloc[[3]]]).to_csv(tmp_path / "m.csv", index=False)
    res = _invoke(*args, "--images", tmp_path / "m.csv")
    assert res.output == (
        f"error: {tmp_path / 'm.csv'}, row 19, field 'condition': image (scene 's0', "
        "condition 'r3') is listed twice\n"
    )
    manifest.drop(columns="image_path").to_csv(tmp_path / "m.csv", index=False)
    res = _invoke(*args, "--images", tmp_path / "m.csv")
    assert res.output == f"error: {tmp_path / 'm.csv'}, field 'image_path': missing column\n"
    assert not out.exists() and not training.exists()


def test_strict_refuses_what_the_default_warns_about(tmp_path):
    _write(tmp_path, {"s0": (1.0, 0.0), "s1": (-0.5, 1.0), "s2": (0.8, 0.0)})
    args = [tmp_path / "scales.csv", "--cross", tmp_path / "cross.csv", "--reference", "s0"]
    res = _invoke(*args, "-o", tmp_path / "u.csv")
    problem = "scene 's1': slope a = -0.5 is not positive: the scene's scale would be turned over"
    assert res.exit_code == 0 and f"warning: {problem}\n" in res.output
    res = _invoke(*args, "-o", tmp_path / "v.csv", "--strict")
    assert res.exit_code == 2
    assert res.output.endswith(f"error: alignment refused (strict): {problem}\n")
    assert not (tmp_path / "v.csv").exists()


def test_bad_trials_name_the_file_row_and_field(exported, tmp_path):
    bad = pd.read_csv(exported / "ct.csv")
    bad.loc[3, "is_A_selected"] = 7
    bad.to_csv(tmp_path / "ct.csv", index=False)
    for method in ("paper", "joint"):
        res = _invoke(
            "--trials", exported / "st.csv", "--cross-trials", tmp_path / "ct.csv",
            "--method", method, "-o", tmp_path / "u.csv",
        )  # fmt: skip
        assert res.exit_code == 2
        assert res.output.startswith(
            f"error: {tmp_path / 'ct.csv'}, row 4, field 'is_A_selected': must be 0 or 1, got "
        )
    st = pd.read_csv(exported / "st.csv")
    st[st["scene"] != "s2"].to_csv(tmp_path / "st.csv", index=False)
    res = _invoke(
        "--trials", tmp_path / "st.csv", "--cross-trials", exported / "ct.csv",
        "-o", tmp_path / "u.csv",
    )  # fmt: skip
    assert res.exit_code == 2
    first = int(np.flatnonzero((bad["scene_A"] == "s2") | (bad["scene_B"] == "s2"))[0])
    side = "A" if bad["scene_A"].iloc[first] == "s2" else "B"
    assert res.output == (
        f"error: {exported / 'ct.csv'}, row {first + 1}, field 'condition_{side}': image "
        f"'s2/{bad[f'condition_{side}'].iloc[first]}' (attribute 'detail') never appears in "
        "the per-scene trials\n"
    )
    assert not (tmp_path / "u.csv").exists()


def test_training_refuses_one_sided_scores(tmp_path):
    _write(tmp_path)
    scales = pd.read_csv(tmp_path / "scales.csv")
    scales.loc[1, "jod_std"] = np.inf  # s0/c1: bounded on one side only
    scales.to_csv(tmp_path / "scales.csv", index=False)
    args = [tmp_path / "scales.csv", "--cross", tmp_path / "cross.csv", "-o", tmp_path / "u.csv"]
    res = _invoke(*args, "--training", tmp_path / "t.csv")
    assert res.exit_code == 2
    assert res.output == (
        "error: the training table needs a finite jod_std, and 1 unified score(s) are bounded "
        "on one side only (infinite jod_std): compare those images more, or leave them out of "
        "the trials\n"
    )
    assert not (tmp_path / "u.csv").exists() and not (tmp_path / "t.csv").exists()
    assert _invoke(*args).exit_code == 0  # the unified table itself keeps the infinite std
    assert np.isinf(pd.read_csv(tmp_path / "u.csv")["jod_unified_std"]).sum() == 1


def _turned_over(exported, tmp_path):
    """The exported cross trials with scene s1's r0 and r5 swapped: the cross-content
    judgments then order s1's images against its own scale."""
    ct = pd.read_csv(exported / "ct.csv")
    swap = {"r0": "r5", "r5": "r0"}
    for side in "AB":
        mine = ct[f"scene_{side}"] == "s1"
        ct.loc[mine, f"condition_{side}"] = ct.loc[mine, f"condition_{side}"].replace(swap)
    ct.to_csv(tmp_path / "ct.csv", index=False)
    return ["--trials", exported / "st.csv", "--cross-trials", tmp_path / "ct.csv", "--quiet"]


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        ("paper", r"slope a = -0\.\d+ is not positive: the scene's scale would be turned over"),
        ("weighted", r"slope a = -0\.\d+ is not positive: the scene's scale would be turned over"),
        ("eiv", r"slope a = -0\.\d+ is not positive: the scene's scale would be turned over"),
        # the joint model's slopes are positive by construction: s1's is stretched instead
        ("joint", r"the unified scale stretches it by a_j / a_ref = \d+\.?\d*; unified scores "
                  r"reach [\d.]+ JOD, far outside the per-scene scores \[-?[\d.]+, -?[\d.]+\] JOD"),
    ],
)  # fmt: skip
def test_each_method_names_a_turned_over_scene_and_strict_refuses(
    exported, tmp_path, method, reason
):
    args = [*_turned_over(exported, tmp_path), "--method", method]
    args += ["--scale-bootstrap", "20"] if method in ("weighted", "eiv") else []
    res = _invoke(*args, "-o", tmp_path / "u.csv")
    assert res.exit_code == 0, res.output
    warned = [line for line in res.output.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 1, res.output
    problem = warned[0].removeprefix("warning: ")
    assert re.fullmatch(rf"attribute detail, scene 's1': {reason}", problem), problem
    meta = json.loads((tmp_path / "u.csv.meta.json").read_text())
    assert meta["warnings"] == [problem]
    res = _invoke(*args, "-o", tmp_path / "v.csv", "--strict")
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == f"error: alignment refused (strict): {problem}"
    assert not (tmp_path / "v.csv").exists()


def test_offset_names_a_scene_far_outside_and_strict_refuses(tmp_path):
    """The offset method has slope 1 everywhere; its check is the unified spread. Here s1's
    offset (b = 10.5 against s0's -10.5) lifts it 21 JOD, beyond the cross range (20) above
    the per-scene scores [-1, 1]."""
    scales = pd.DataFrame(
        {"scene": ["s0"] * 3 + ["s1"] * 3, "condition": ["c0", "c1", "c2"] * 2,
         "jod": [-1.0, 0.0, 1.0] * 2, "jod_std": 0.2}
    )  # fmt: skip
    cross = pd.DataFrame(
        {"condition": ["s0/c1", "s0/c2", "s1/c0", "s1/c1"], "jod": [-10.0, -10.0, 10.0, 10.0],
         "jod_std": 0.3}
    )  # fmt: skip
    scales.to_csv(tmp_path / "scales.csv", index=False)
    cross.to_csv(tmp_path / "cross.csv", index=False)
    args = [tmp_path / "scales.csv", "--cross", tmp_path / "cross.csv", "--method", "offset"]
    args += ["--reference", "s0"]
    res = _invoke(*args, "-o", tmp_path / "u.csv")
    problem = (
        "scene 's1': unified scores reach 22 JOD, far outside the per-scene scores "
        "[-1.00, 1.00] JOD"
    )
    assert res.exit_code == 0 and f"warning: {problem}\n" in res.output, res.output
    res = _invoke(*args, "-o", tmp_path / "v.csv", "--strict")
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == f"error: alignment refused (strict): {problem}"
    assert not (tmp_path / "v.csv").exists()


def _bad_tables(folder, exported):
    """Broken variants of the exported tables: (per-scene, cross) paths and the error line
    (the file that carries the fault first)."""
    st, ct = pd.read_csv(exported / "st.csv"), pd.read_csv(exported / "ct.csv")
    mixed = folder / "mixed.csv"
    pd.concat([st, ct], ignore_index=True).to_csv(mixed, index=False)
    unknown = ct.copy()
    unknown.loc[4, "scene_A"] = "s9"
    unknown.to_csv(folder / "unknown.csv", index=False)
    st.drop(columns="scene").to_csv(folder / "no_scene.csv", index=False)
    ct.drop(columns="scene_B").to_csv(folder / "no_scene_b.csv", index=False)
    st.drop(columns="is_A_selected").to_csv(folder / "no_choice.csv", index=False)
    good_st, good_ct = exported / "st.csv", exported / "ct.csv"
    mix = (
        "mixes per-scene trials (column 'scene') with cross-content trials ('scene_A', "
        "'scene_B'): split it into two tables, the rows with 'scene' and the rows with "
        "'scene_A'/'scene_B', and scale each; or, to scale all images as one graph, give each "
        "per-scene trial scene_A = scene_B = its scene and drop the 'scene' column"
    )
    needs = "the trial format needs observer, condition_A, condition_B, is_A_selected, scene"
    return {
        "mixed per-scene": (mixed, good_ct, f"{mixed}, field 'scene': {mix}"),
        "mixed cross": (good_st, mixed, f"{mixed}, field 'scene': {mix}"),
        "swapped": (
            good_ct, good_st,
            f"{good_ct}, field 'scene_A': per-scene trials carry 'scene', not 'scene_A': give "
            "the cross-content trials as the second table",
        ),
        "unknown scene": (
            good_st, folder / "unknown.csv",
            f"{folder / 'unknown.csv'}, row 5, field 'condition_A': image "
            f"'s9/{ct.loc[4, 'condition_A']}' (attribute 'detail') never appears in the "
            "per-scene trials",
        ),
        "no scene": (
            folder / "no_scene.csv", good_ct,
            f"{folder / 'no_scene.csv'}, field 'scene': missing column(s) 'scene'; {needs} "
            "(see scaling.formats)",
        ),
        "no scene_B": (
            good_st, folder / "no_scene_b.csv",
            f"{folder / 'no_scene_b.csv'}, field 'scene_B': missing column: cross-content "
            "trials carry 'scene_A' and 'scene_B'",
        ),
        "no is_A_selected": (
            folder / "no_choice.csv", good_ct,
            f"{folder / 'no_choice.csv'}, field 'is_A_selected': missing column(s) "
            f"'is_A_selected'; {needs} (see scaling.formats)",
        ),
    }  # fmt: skip


@pytest.mark.parametrize("method", ["paper", "weighted", "eiv", "offset", "joint"])
def test_bad_trial_tables_are_one_line_errors_for_every_method(exported, tmp_path, method):
    for case, (per_scene, cross, message) in _bad_tables(tmp_path, exported).items():
        out = tmp_path / "u.csv"
        res = _invoke("--trials", per_scene, "--cross-trials", cross, "--method", method, "-o", out)
        assert res.exit_code == 2, (case, res.output)
        assert res.output == f"error: {message}\n", case
        assert not out.exists()
    res = _invoke(
        "--trials", exported / "st.csv", "--cross-trials", exported / "ct.csv",
        "--method", method, "--reference", "s9", "-o", tmp_path / "u.csv", "--quiet",
    )  # fmt: skip
    assert res.exit_code == 2
    assert res.output == (
        "error: reference 's9' is neither a rule ('auto', 'range', 'size', 'connected') nor a "
        "scene (['s0', 's1', 's2'])\n"
    )
