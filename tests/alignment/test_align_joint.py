"""Joint maximum-likelihood alignment on the simulated panel (truth known)."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import spearmanr

from scaling.errors import InputError
from study.panel import cross_trials, make_truth, per_scene_trials
from study.renditions import ladder

pytest.importorskip("scaling.likelihood", reason="scaling.likelihood is not committed yet")

from alignment.joint import JointObjective, align_joint, build_data
from alignment.trials import check_trial_pair


@pytest.fixture(scope="module")
def panel():
    steps = ladder((1.0, 0.6, 0.35), (0.0, 0.04, 0.08))
    manifest = pd.DataFrame(
        [
            {"scene": f"s{j}", "condition": f"r{k}"} | p.as_dict()
            for j in range(4)
            for k, p in enumerate(steps)
        ]
    )
    truth = make_truth(manifest, seed=4)
    truth = truth[truth["attribute"] == "detail"].reset_index(drop=True)
    st = per_scene_trials(truth, n_observers=12, seed=5)
    sel = truth[truth["condition"].isin(["r0", "r4", "r8", "r6"])]
    ct = cross_trials(truth, sel, n_observers=12, seed=6)
    return truth, st, ct


@pytest.mark.parametrize("slope_prior", [0.0, 0.7])
def test_gradient_matches_finite_differences(panel, slope_prior):
    _, st, ct = panel
    obj = JointObjective(build_data(*check_trial_pair(st, ct)), slope_prior)
    theta = np.random.default_rng(0).normal(0, 0.5, obj.size)
    grad = obj.value_and_grad(theta)[1]
    num = approx_fprime(theta, lambda z: obj.value_and_grad(z)[0], 1e-7)
    assert np.allclose(grad, num, rtol=1e-4, atol=1e-3 * np.abs(grad).max())
    value, grad2, hess = obj.value_grad_hess(theta)
    assert value == obj.value(theta) and np.array_equal(grad2, grad)
    num_hess = approx_fprime(theta, lambda z: obj.value_and_grad(z)[1], 1e-6)
    assert np.allclose(hess, hess.T)
    assert np.allclose(hess, num_hess, rtol=1e-3, atol=1e-3 * np.abs(hess).max())


def test_joint_recovers_the_global_truth(panel):
    truth, st, ct = panel
    out = align_joint(st, ct, reference="s1")
    merged = truth.merge(out, on=["scene", "condition"])
    assert spearmanr(merged["q_true"], merged["jod_unified"])[0] > 0.95
    # the reference keeps its own per-scene scale: u = x there
    ref = out[out["scene"] == "s1"]
    assert np.allclose(ref["jod_unified"], ref["jod_scene"])
    # u is affine in the truth; after the best affine map, error well under 1 JOD
    A = np.c_[merged["jod_unified"], np.ones(len(merged))]
    coef = np.linalg.lstsq(A, merged["q_true"], rcond=None)[0]
    assert np.sqrt(np.mean((A @ coef - merged["q_true"]) ** 2)) < 0.6
    # the slopes undo the hidden spreads: a_j = c / spread_j with c ~ 0.8 / 0.9, the mean
    # compressions of the cross-content and per-scene observers (careless ones aside)
    spreads = truth.groupby("scene")["spread"].first()
    scenes = out.attrs["jodkit"]["attributes"]["detail"]["scenes"]
    c = np.array([scenes[s]["a"] * spreads[s] for s in spreads.index])
    assert np.all((c > 0.4) & (c < 1.4)), c
    assert abs(c.mean() - 0.89) < 0.2, c


def test_joint_bootstrap_gives_cis(panel):
    _, st, ct = panel
    out = align_joint(st, ct, reference="s0", bootstrap=8, seed=1)
    assert np.isfinite(out["jod_unified_std"]).all()
    assert (out["ci_low"] <= out["ci_high"]).all()
    other = out[out["scene"] != "s0"]
    assert (other["jod_unified_std"] > 0).all()


def test_joint_bad_input(panel):
    _, st, ct = panel
    with pytest.raises(InputError, match="never appears") as err:
        align_joint(st[st["scene"] != "s3"], ct)
    assert err.value.source == "cross-content trials"
    one = ct[
        ~((ct["scene_A"] == "s2") & (ct["condition_A"] != "r0"))
        & ~((ct["scene_B"] == "s2") & (ct["condition_B"] != "r0"))
    ]
    with pytest.raises(InputError, match="'s2' has 1 image"):
        align_joint(st, one)
    bad = st.copy()
    bad.loc[5, "is_A_selected"] = 2
    with pytest.raises(InputError, match="0 or 1") as err:
        align_joint(bad, ct)
    assert err.value.row == 6 and err.value.field == "is_A_selected"
    with pytest.raises(InputError, match="scene_A"):
        align_joint(st, ct.drop(columns="scene_A"))


def test_reference_profile_matches_an_independent_constrained_fit(panel):
    """The profile's rise at 2 a_ref, against the objective minimised with scipy's SLSQP under
    an equality constraint on the reference's log slope (no code shared with fit_joint)."""
    from alignment.joint import fit_joint, reference_profile

    _, st, ct = panel
    obj = JointObjective(build_data(*check_trial_pair(st, ct)), slope_prior=1.0)
    fit = fit_joint(obj)
    ref = 2
    profile = reference_profile(obj, fit, ref)
    target = fit.theta[obj.n + ref] + np.log(2.0)
    start = fit.theta.copy()
    start[obj.n + ref] = target
    with np.errstate(all="ignore"):  # SLSQP's line search tries extreme points
        held = _slsqp(obj, start, ref, target)
    rise = dict(zip(profile["factors"], profile["objective_rise"], strict=True))
    assert rise[2.0] == pytest.approx(held.fun - fit.objective, abs=2e-3)
    assert rise[2.0] > 1.92 and profile["determined"]
    assert rise[4.0] > rise[2.0] and rise[0.25] > rise[0.5] > 0


def _slsqp(obj, start, ref, target):
    from scipy.optimize import minimize

    return minimize(
        lambda z: obj.value_and_grad(z)[0],
        start,
        jac=lambda z: obj.value_and_grad(z)[1],
        method="SLSQP",
        constraints=[{"type": "eq", "fun": lambda z: z[obj.n + ref] - target}],
        options={"maxiter": 500, "ftol": 1e-12},
    )


def test_slope_prior_leaves_determined_slopes_alone(panel):
    """docs/alignment.md: on this panel the prior moves the slopes by at most 0.004."""
    _, st, ct = panel
    slopes = [
        {s: v["a"] for s, v in align_joint(st, ct, slope_prior=sd).attrs["jodkit"]["attributes"][
            "detail"]["scenes"].items()}
        for sd in (0.0, 1.0)
    ]  # fmt: skip
    moved = max(abs(slopes[0][s] - slopes[1][s]) for s in slopes[0])
    assert 0 < moved < 0.006
    with pytest.raises(ValueError, match="slope_prior must be a number >= 0"):
        align_joint(st, ct, slope_prior=-1.0)


def test_scenes_and_images_without_a_chain_of_comparisons_are_refused(panel):
    _, st, ct = panel
    halves = ct["scene_A"].isin(["s0", "s1"]) == ct["scene_B"].isin(["s0", "s1"])
    with pytest.raises(InputError) as err:
        align_joint(st, ct[halves])
    assert str(err.value) == (
        "cross-content trials, field 'scene_A': the cross-content trials link the scenes into "
        "2 separate groups [['s0', 's1'], ['s2', 's3']]: scenes of different groups share no "
        "offset; add cross-content trials between the groups or align each group on its own"
    )
    island = st.iloc[:4].assign(condition_A="x1", condition_B="x2", scene="s0")
    with pytest.raises(InputError) as err:
        align_joint(pd.concat([st, island], ignore_index=True), ct)
    assert str(err.value) == (
        "per-scene trials, field 'condition_A': 2 image(s) share no chain of comparisons "
        "with the others (e.g. 's0/x1'): their scores have no common offset; compare them "
        "with the rest"
    )
