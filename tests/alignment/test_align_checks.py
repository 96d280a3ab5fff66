"""Alignment refuses nonsense: slope and spread checks, for every method and on real data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alignment.align import align
from alignment.checks import MIN_SLOPE, AlignmentRefused, check_alignment, slope_problem
from alignment.formats import AlignmentWarning
from alignment.joint import align_joint
from scaling.formats import image_key

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
VRS = SHARED / "data/real/alsarr_vrs/vrs_exp_data.csv"
needs_vrs = pytest.mark.skipif(not VRS.exists(), reason=f"ALSaRR data not found at {VRS}")


def tables(maps: dict[str, tuple[float, float]], n: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-scene scores 0..n-1 centred; cross scores y = a x + b exactly, for every image."""
    rows, cross = [], []
    for scene, (a, b) in maps.items():
        for i in range(n):
            x = i - (n - 1) / 2
            rows.append({"scene": scene, "condition": f"c{i}", "jod": x})
            cross.append({"condition": image_key(scene, f"c{i}"), "jod": a * x + b})
    return pd.DataFrame(rows), pd.DataFrame(cross)


def test_slope_problems_name_the_reason():
    assert slope_problem(1.0) is None and slope_problem(MIN_SLOPE) is None
    assert slope_problem(-0.5) == (
        "slope a = -0.5 is not positive: the scene's scale would be turned over"
    )
    assert slope_problem(0.0) is not None and slope_problem(np.nan) is not None
    assert slope_problem(0.05) == (
        "slope a = 0.05 is tiny (below 0.1): its images are nearly indistinguishable on the "
        "cross-content scale"
    )


@pytest.mark.parametrize("method", ["paper", "offset"])
def test_sound_alignments_pass_silently(method):
    scenes, cross = tables({"s0": (1.0, 0.0), "s1": (0.7, 1.0), "s2": (1.3, -1.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        out = align(scenes, cross, method=method, strict=True)
    assert out.attrs["jodkit"]["attributes"]["all"]["problems"] == []


def test_a_turned_over_scene_warns_and_strict_refuses():
    scenes, cross = tables({"s0": (1.0, 0.0), "s1": (-0.8, 0.5), "s2": (1.2, 0.0)})
    with pytest.warns(AlignmentWarning) as caught:
        out = align(scenes, cross, reference="s0")
    messages = [str(w.message) for w in caught]
    assert messages == [
        "scene 's1': slope a = -0.8 is not positive: the scene's scale would be turned over"
    ]
    assert out.attrs["jodkit"]["warnings"] == messages
    with pytest.raises(AlignmentRefused) as err:
        align(scenes, cross, reference="s0", strict=True)
    assert str(err.value) == f"alignment refused (strict): {messages[0]}"


def test_a_tiny_reference_slope_blows_up_the_scale_and_is_not_chosen_by_a_rule():
    # s1 has the widest range (the rule 'range' would pick it) but a tiny slope
    scenes, cross = tables({"s0": (1.0, 0.0), "s1": (0.002, 0.1), "s2": (1.1, 0.3)})
    scenes.loc[scenes["scene"] == "s1", "jod"] *= 2
    cross.loc[cross["condition"].str.startswith("s1/"), "jod"] = (
        0.002 * scenes.loc[scenes["scene"] == "s1", "jod"].to_numpy() + 0.1
    )
    with pytest.warns(AlignmentWarning, match="s1"):
        picked = align(scenes, cross, reference="range")
    info = picked.attrs["jodkit"]["attributes"]["all"]
    assert info["reference"] != "s1"
    assert "not eligible (unsound slope): s1" in info["reference_reason"]
    with pytest.warns(AlignmentWarning) as caught:
        forced = align(scenes, cross, reference="s1")
    text = " | ".join(str(w.message) for w in caught)
    assert "scene 's1': slope a = 0.002 is tiny" in text
    assert "it is the reference: every unified score is divided by it" in text
    assert (
        "scene 's0': unified scores reach -1.8e+03 JOD, far outside the per-scene scores "
        "[-7.00, 7.00] JOD" in text
    )
    assert np.abs(forced["jod_unified"]).max() > 1000


@settings(max_examples=200, deadline=None)
@given(
    slopes=st.lists(
        st.floats(-3, 3) | st.floats(0.0, 0.3) | st.sampled_from([0.0999, 0.1, 1.0, 1.001]),
        min_size=2,
        max_size=5,
    ),
    offsets=st.lists(st.floats(-3, 3), min_size=5, max_size=5),
)
def test_check_flags_exactly_the_unsound_slopes_and_scores(slopes, offsets):
    """Independent restatement of the rules over random maps (reference: scene 0)."""
    names = [f"s{j}" for j in range(len(slopes))]
    x = np.tile(np.linspace(-2, 2, 5), len(names))
    scene = np.repeat(names, 5)
    a = np.repeat(slopes, 5)
    b = np.repeat(offsets[: len(names)], 5)
    y = a * x + b
    ref_a, ref_b = slopes[0], offsets[0]
    with np.errstate(all="ignore"):
        u = (y - ref_b) / ref_a
    problems = check_alignment(scene, x, y, u, dict(zip(names, slopes, strict=True)), "s0")
    said = {p.split("'")[1]: p for p in problems}
    margin = max(4.0, float(np.ptp(y)))
    ref_ok = ref_a >= MIN_SLOPE
    for j, name in enumerate(names):
        mine = u[scene == name]
        bad_slope = not slopes[j] >= MIN_SLOPE
        stretched = (
            ref_ok
            and j > 0
            and not bad_slope
            and not (MIN_SLOPE <= slopes[j] / ref_a <= 1 / MIN_SLOPE)
        )
        far = not np.all(np.isfinite(mine)) or np.any(np.abs(mine) > 2 + margin)
        message = said.get(name, "")
        assert ("slope a = " in message) == bad_slope, (name, problems)
        assert ("stretches it" in message) == stretched, (name, problems)
        assert ("far outside" in message) == far, (name, problems)
        assert (name in said) == (bad_slope or stretched or far), (name, problems)


@needs_vrs
def test_joint_on_alsarr_is_finite_and_says_what_the_data_do_not_determine():
    """Regression: each texture has two cross-content images, so its slope is the ratio of two
    small differences. Without the slope prior the joint fit ran to a reference slope of 5e-6
    and unified scores of 2.5e8 JOD, silently."""
    from study.alsarr import trial_tables

    per_scene, cross = trial_tables(VRS)
    with pytest.warns(AlignmentWarning) as caught:
        out = align_joint(per_scene, cross)
    meta = out.attrs["jodkit"]["attributes"]
    assert len(meta) == 9 and np.abs(out["jod_unified"]).max() < 20
    for info in meta.values():
        assert info["fit"]["converged"], info["fit"]
        assert info["scenes"][info["reference"]]["a"] >= MIN_SLOPE
        assert not info["reference_profile"]["determined"]
    texts = [str(w.message) for w in caught]
    assert sum("the reference slope is not determined by the data" in t for t in texts) == 9
    # without the prior, the nonsense is still caught, by name and reason
    v75 = out.attrs["jodkit"]["attributes"]["BlockVR_v75"]
    assert v75["reference"] == "Noise"
    keep = per_scene["attribute"] == "BlockVR_v75"
    with pytest.warns(AlignmentWarning) as caught:
        bare = align_joint(
            per_scene[keep], cross[cross["attribute"] == "BlockVR_v75"], slope_prior=0.0
        )
    texts = " | ".join(str(w.message) for w in caught)
    assert "the joint fit did not converge" in texts  # a slope runs off: no finite optimum
    assert "is tiny" in texts or "is not positive" in texts
    assert "the unified scale stretches it" in texts
    assert bare.attrs["jodkit"]["attributes"]["BlockVR_v75"]["problems"]
    with pytest.raises(AlignmentRefused, match="scene 'Noise'"):
        align_joint(per_scene[keep], cross[cross["attribute"] == "BlockVR_v75"], strict=True)
