"""Joint maximum-likelihood alignment: all comparisons, one affine map per scene.

Instead of scaling scenes and the cross-content task separately and then fitting lines
between two noisy scales, fit everything at once. Image i of scene j has a latent score
x_i on its scene's scale; its cross-content score is y_i = a_j x_i + b_j. A per-scene trial
between i and k is answered with P = Phi((x_i - x_k) / SIGMA), a cross-content trial with
P = Phi((y_i - y_k) / SIGMA). The unified score is then u = (a_j x + b_j - b_r) / a_r,
exactly as in the paper's method. The objective is scaling's, not a copy: pwcmp's
(``scaling.likelihood.ThurstoneObjective``: ``scaling.thurstone``'s SIGMA and likelihood,
pwcmp's Gaussian distance prior) of every scene's counts on x and of the cross counts on
y, halved (see :class:`JointObjective`); it is minimised by L-BFGS and polished by
scaling's trust-region Newton method; the graph components and the bootstrap's percentile
interval (``scaling.bootstrap.summarise``) are scaling's too.

Gauges: each scene's x has mean 0 (pwcmp's ``mean0`` term), b of the first scene is 0 (the
cross scale's offset; it cancels in u), a_j = exp(alpha_j) > 0. Nothing else is added to
the objective (no ridge): pwcmp's prior keeps images that never lost (or never won) finite,
as in scaling, and a Gaussian prior on alpha_j (:data:`SLOPE_PRIOR`) keeps every slope
finite and positive where the cross-content data do not determine it. Images or scenes
that no chain of comparisons links are refused. The fit reports its convergence and the
profile of the objective around the reference slope (:func:`reference_profile`); both,
and the checks of ``alignment.checks``, give warnings (errors with ``strict``).

Inputs: per-scene trials and cross-content trials (``scaling.formats`` trial layout; cross
trials with ``scene_A/scene_B``). Output: the unified-scale table of
``alignment.formats`` (``jod_scene`` = fitted x, ``jod_cross`` = fitted y for images in
the cross task), metadata as in ``alignment.align``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from tqdm import tqdm

from alignment.checks import check_alignment, eligible_references, report
from alignment.formats import UNIFIED_COLUMNS
from alignment.reference import choose_reference
from alignment.trials import CROSS_TRIALS, SCENE_TRIALS, check_trial_pair
from scaling.bootstrap import summarise
from scaling.errors import InputError
from scaling.formats import split_image_keys
from scaling.likelihood import ThurstoneObjective
from scaling.solvers import _newton as newton
from scaling.threads import single_threaded_blas
from scaling.thurstone import component_labels

SLOPE_PRIOR = 1.0
"""Default standard deviation of the Gaussian prior on each log a_j.

Both scales are JOD scales, so a_j = 1 means "the same unit"; a scene whose cross-content
images the data barely tell apart would otherwise drive a_j to 0 (or infinity) with no
finite optimum, and the unified scale with it (ALSaRR, ``docs/alignment.md``). With
sd 1 a slope of 1/e or e costs half a unit of log-likelihood: slopes the data determine
hardly move."""

MAX_ITERATIONS = 5000
GRADIENT_TOL = 1e-7
NEWTON_ITERATIONS = 200
CONVERGED_GRADIENT = 1e-3
"""Largest gradient component accepted at a solution: a fit that stalls where the
objective is nearly flat (a slope running to 0, a score with no finite optimum) is no
solution."""
PROFILE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Multiples of the fitted reference slope at which its profile is evaluated."""
PROFILE_RISE = 1.92
"""Half the 95% quantile of chi-squared with one degree of freedom (3.84 / 2)."""


@dataclass
class JointData:
    """Every image, and the count matrices of each scene's trials and of the cross trials."""

    images: pd.DataFrame  # scene, condition, in_cross
    scene_idx: np.ndarray  # per image
    n_scenes: int
    scene_members: list[np.ndarray]  # image indices of each scene, in image order
    scene_counts: list[np.ndarray]  # D[i, j] over each scene's members
    cross_members: np.ndarray  # image indices of the images in the cross trials
    cross_counts: np.ndarray  # D[i, j] over the cross members


def _pairs(trials: pd.DataFrame, a_ids: pd.Series, b_ids: pd.Series) -> pd.DataFrame:
    """Trials collapsed to one row per image pair (first < second) with win counts."""
    first_is_a = a_ids < b_ids
    picked_first = np.where(first_is_a, trials["is_A_selected"], 1 - trials["is_A_selected"])
    df = pd.DataFrame(
        {
            "first": np.where(first_is_a, a_ids, b_ids),
            "second": np.where(first_is_a, b_ids, a_ids),
            "wins": picked_first,
            "losses": 1 - picked_first,
        }
    )
    return df.groupby(["first", "second"], as_index=False).sum()


def _counts(pairs: pd.DataFrame, members: np.ndarray, n_images: int) -> np.ndarray:
    """The count matrix of ``pairs`` (global image indices) over ``members``."""
    local = np.full(n_images, -1)
    local[members] = np.arange(members.size)
    counts = np.zeros((members.size, members.size))
    i, j = local[pairs["first"].to_numpy()], local[pairs["second"].to_numpy()]
    np.add.at(counts, (i, j), pairs["wins"].to_numpy(float))
    np.add.at(counts, (j, i), pairs["losses"].to_numpy(float))
    return counts


def _decided(trials: pd.DataFrame) -> pd.DataFrame:
    """Checked trials without ties and training trials."""
    keep = np.ones(len(trials), bool)
    for flag in ("tie", "is_training"):
        if flag in trials.columns:
            keep &= trials[flag].to_numpy() == 0
    return trials[keep]


def build_data(
    scene_trials: pd.DataFrame,
    cross_trials: pd.DataFrame,
    sources: tuple[str, str] = (SCENE_TRIALS, CROSS_TRIALS),
) -> JointData:
    """Index every image and count both trial tables per scene and across scenes.

    Both tables as :func:`alignment.trials.check_trial_pair` returns them (one attribute).
    ``sources``: the two tables' names in error messages.
    """
    st, ct = _decided(scene_trials), _decided(cross_trials)
    sa, sb = st["condition_A"].tolist(), st["condition_B"].tolist()
    ca, cb = ct["condition_A"].tolist(), ct["condition_B"].tolist()
    ids = sorted(set(sa) | set(sb) | set(ca) | set(cb))
    index = {name: i for i, name in enumerate(ids)}
    scene_pairs = _pairs(st, pd.Series(sa).map(index), pd.Series(sb).map(index))
    cross_pairs = _pairs(ct, pd.Series(ca).map(index), pd.Series(cb).map(index))
    images = split_image_keys(pd.Series(ids))
    images["in_cross"] = images.index.isin(np.r_[cross_pairs["first"], cross_pairs["second"]])
    scenes = sorted(images["scene"].unique())
    for s in scenes:
        n = int(images.loc[images["scene"] == s, "in_cross"].sum())
        if n < 2:
            raise InputError(
                f"scene {s!r} has {n} image(s) in the cross-content trials; its map needs 2",
                source=sources[1],
                field="scene_A",
            )
    scene_idx = images["scene"].map({s: j for j, s in enumerate(scenes)}).to_numpy()
    _check_scenes_linked(scenes, scene_idx, cross_pairs, sources[1])
    _check_images_linked(ids, pd.concat([scene_pairs, cross_pairs]), sources[0])
    members = [np.flatnonzero(scene_idx == j) for j in range(len(scenes))]
    cross_members = np.flatnonzero(images["in_cross"].to_numpy())
    return JointData(
        images=images,
        scene_idx=scene_idx,
        n_scenes=len(scenes),
        scene_members=members,
        scene_counts=[_counts(scene_pairs, m, len(ids)) for m in members],
        cross_members=cross_members,
        cross_counts=_counts(cross_pairs, cross_members, len(ids)),
    )


def _check_scenes_linked(
    scenes: list[str], scene_idx: np.ndarray, cross_pairs: pd.DataFrame, source: str
) -> None:
    """Refuse scenes that no chain of cross-content trials links: they share no offset."""
    labels = component_labels(
        len(scenes),
        scene_idx[cross_pairs["first"].to_numpy()],
        scene_idx[cross_pairs["second"].to_numpy()],
    )
    if labels.max() > 0:
        groups = [sorted(np.asarray(scenes)[labels == k].tolist()) for k in range(labels.max() + 1)]
        raise InputError(
            f"the cross-content trials link the scenes into {len(groups)} separate groups "
            f"{groups}: scenes of different groups share no offset; add cross-content trials "
            "between the groups or align each group on its own",
            source=source,
            field="scene_A",
        )


def _check_images_linked(ids: list[str], pairs: pd.DataFrame, source: str) -> None:
    """Refuse images that no chain of comparisons links to the largest group of images."""
    labels = component_labels(len(ids), pairs["first"].to_numpy(), pairs["second"].to_numpy())
    apart = [ids[k] for k in np.flatnonzero(labels > 0)]
    if apart:
        raise InputError(
            f"{len(apart)} image(s) share no chain of comparisons with the others (e.g. "
            f"{apart[0]!r}): their scores have no common offset; compare them with the rest",
            source=source,
            field="condition_A",
        )


class JointObjective:
    """Half of scaling's objective (pwcmp's, :class:`scaling.likelihood.ThurstoneObjective`)
    of every scene's counts on x and of the cross counts on y = a_j x + b_j, plus the slope
    prior, with its gradient.

    Half, because pwcmp counts each compared pair twice (both ordered positions): the sum is
    then the negative log-likelihood of all trials plus half of pwcmp's prior and anchor
    terms, so that likelihood-ratio levels (:data:`PROFILE_RISE`) and the slope prior keep
    their meaning. With a_j and b_j fixed and no cross trials, each scene's x is exactly
    scaling's optimum for that scene.

    Parameter vector: x (one per image), alpha (log a, one per scene), b (one per scene
    but the first). ``slope_prior``: standard deviation of the Gaussian prior on each
    alpha (0: none). ``prior``: scaling's ``gaussian`` (pwcmp's distance prior, default) or
    ``none`` (pure likelihood: images that never lost, or never won, have no finite optimum).
    """

    def __init__(
        self, data: JointData, slope_prior: float = SLOPE_PRIOR, prior: str = "gaussian"
    ) -> None:
        self.d = data
        self.n = len(data.images)
        self.slope_prior = slope_prior
        self.scene_parts = [ThurstoneObjective(c, prior, "mean0") for c in data.scene_counts]
        # fix0: no mean penalty; the cross scale's offset is fixed by b of the first scene.
        self.cross_part = ThurstoneObjective(data.cross_counts, prior, "fix0")

    @property
    def size(self) -> int:
        return self.n + 2 * self.d.n_scenes - 1

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, m = self.n, self.d.n_scenes
        return theta[:n], np.exp(theta[n : n + m]), np.r_[0.0, theta[n + m :]]

    def value(self, theta: np.ndarray) -> float:
        """The objective alone (the trust-region solver's trial points)."""
        return self._evaluate(theta, order=0)[0]

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad, _ = self._evaluate(theta, order=1)
        return value, grad

    def value_grad_hess(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient and exact Hessian (the Newton polish of :func:`fit_joint`)."""
        return self._evaluate(theta, order=2)

    def _evaluate(
        self, theta: np.ndarray, order: int
    ) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """Value (order 0), gradient (1) and Hessian (2) by the chain rule through
        y = a_j x + b_j from the parts' own derivatives."""
        d, n, m = self.d, self.n, self.d.n_scenes
        x, a, b = self.unpack(theta)
        cross, s = d.cross_members, d.scene_idx[d.cross_members]
        y = a[s] * x[cross] + b[s]
        parts = [*zip(d.scene_members, self.scene_parts, strict=True)]
        if order == 0:
            value = sum(part.value(x[members]) for members, part in parts)
            value = 0.5 * (value + self.cross_part.value(y))
            return value + self._slope_prior(theta)[0], None, None
        # dy/dtheta, one row per cross image: x (a_j), alpha (a_j x), b (1; not the first's)
        jac = np.zeros((cross.size, self.size))
        rows = np.arange(cross.size)
        jac[rows, cross] = a[s]
        jac[rows, n + s] = a[s] * x[cross]
        jac[rows[s > 0], n + m + s[s > 0] - 1] = 1.0
        hess = np.zeros((self.size, self.size)) if order == 2 else None
        value, grad = 0.0, np.zeros(self.size)
        for members, part in parts:
            v, g, *h = (part.value_grad_hess if order == 2 else part.value_and_grad)(x[members])
            value += v
            grad[members] += g
            if order == 2:
                hess[np.ix_(members, members)] += h[0]
        if order == 2:
            v, gy, hy = self.cross_part.value_grad_hess(y)
            hess += jac.T @ hy @ jac
            # second derivatives of y: d2y/dx dalpha = a_j, d2y/dalpha2 = a_j x
            np.add.at(hess, (cross, n + s), gy * a[s])
            np.add.at(hess, (n + s, cross), gy * a[s])
            np.add.at(hess, (n + s, n + s), gy * a[s] * x[cross])
            hess *= 0.5
        else:
            v, gy = self.cross_part.value_and_grad(y)
        value, grad = 0.5 * (value + v), 0.5 * (grad + jac.T @ gy)
        prior_value, prior_grad, prior_curvature = self._slope_prior(theta)
        grad[n : n + m] += prior_grad
        if order == 2:
            hess[np.arange(n, n + m), np.arange(n, n + m)] += prior_curvature
        return float(value + prior_value), grad, hess

    def _slope_prior(self, theta: np.ndarray) -> tuple[float, np.ndarray, float]:
        """The Gaussian prior on each alpha: value, gradient, curvature (0 when off)."""
        alpha = theta[self.n : self.n + self.d.n_scenes]
        if not self.slope_prior:
            return 0.0, np.zeros_like(alpha), 0.0
        precision = 1.0 / self.slope_prior**2
        return 0.5 * precision * float(alpha @ alpha), precision * alpha, precision


@dataclass(frozen=True)
class JointFit:
    """The optimiser's answer and how it got there."""

    theta: np.ndarray
    objective: float
    converged: bool
    iterations: int
    max_gradient: float
    message: str

    def report(self) -> dict:
        """Convergence facts for the metadata."""
        return {
            "converged": self.converged,
            "iterations": self.iterations,
            "objective": self.objective,
            "max_gradient": self.max_gradient,
            "message": self.message,
        }


def fit_joint(
    obj: JointObjective,
    start: np.ndarray | None = None,
    fixed: tuple[int, float] | None = None,
) -> JointFit:
    """Minimise the objective: L-BFGS with the analytic gradient, then scaling's
    trust-region Newton method with the exact Hessian (``scaling.solvers``) until no
    parameter moves by more than its step tolerance.

    ``fixed``: ``(index, value)`` of one parameter held at ``value`` (the profile).
    """
    theta0 = np.zeros(obj.size) if start is None else np.array(start, float)
    free = np.ones(obj.size, bool)
    if fixed is not None:
        free[fixed[0]] = False
        theta0[fixed[0]] = fixed[1]

    def value_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        theta0[free] = z
        value, grad = obj.value_and_grad(theta0)
        return value, grad[free]

    with single_threaded_blas():  # tiny problem: BLAS threads only cost (scaling.threads)
        res = minimize(
            value_and_grad,
            theta0[free],
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": MAX_ITERATIONS, "gtol": GRADIENT_TOL},
        )
        theta0[free] = res.x
        theta, steps, stopped, (value, grad) = newton(obj, theta0, free, NEWTON_ITERATIONS)
    max_gradient = float(np.max(np.abs(grad[free]), initial=0.0))
    return JointFit(
        theta=theta,
        objective=float(value),
        converged=stopped and max_gradient <= CONVERGED_GRADIENT,
        iterations=int(res.nit) + steps,
        max_gradient=max_gradient,
        message=f"L-BFGS: {res.message}; Newton: {'stopped' if stopped else 'did not stop'} "
        f"after {steps} steps",
    )


def _unified(obj: JointObjective, theta: np.ndarray, ref: int) -> np.ndarray:
    x, a, b = obj.unpack(theta)
    j = obj.d.scene_idx
    return (a[j] * x + b[j] - b[ref]) / a[ref]


def reference_profile(obj: JointObjective, fit: JointFit, ref: int) -> dict:
    """The objective re-minimised with the reference slope held at multiples of its fit.

    Returns the factors, the slopes and the rise of the objective over the optimum at each;
    ``determined`` is False when halving or doubling the reference slope costs less than
    :data:`PROFILE_RISE` (the 95% level of a likelihood-ratio test): then the data do not
    fix the unit that every unified score is divided by.
    """
    alpha = fit.theta[obj.n + ref]
    rise = []
    for factor in PROFILE_FACTORS:
        if factor == 1.0:
            rise.append(0.0)
            continue
        held = fit_joint(obj, fit.theta, fixed=(obj.n + ref, alpha + np.log(factor)))
        rise.append(max(held.objective - fit.objective, 0.0))
    by_factor = dict(zip(PROFILE_FACTORS, rise, strict=True))
    return {
        "factors": list(PROFILE_FACTORS),
        "slopes": [float(np.exp(alpha) * f) for f in PROFILE_FACTORS],
        "objective_rise": rise,
        "determined": bool(min(by_factor[0.5], by_factor[2.0]) >= PROFILE_RISE),
    }


def align_joint(
    scene_trials: pd.DataFrame,
    cross_trials: pd.DataFrame,
    reference: str = "auto",
    bootstrap: int = 0,
    seed: int = 0,
    progress: bool = False,
    sources: tuple[str, str] = (SCENE_TRIALS, CROSS_TRIALS),
    slope_prior: float = SLOPE_PRIOR,
    strict: bool = False,
) -> pd.DataFrame:
    """Unified scale from the raw trials (see the module docstring), one fit per attribute.

    With an ``attribute`` column in both tables each attribute is aligned on its own and the
    output starts with ``attribute``, as in ``alignment.align.align``.
    ``bootstrap`` resamples observers (per-scene and cross-content alike) with replacement.
    ``sources``: names of the two tables in error messages.
    ``slope_prior``: standard deviation of the prior on each log a_j (0: none).
    ``strict``: raise :class:`alignment.checks.AlignmentRefused` instead of warning where
    the fit did not converge, the reference slope is not determined, or the slopes or the
    unified scores make no sense (``alignment.checks``).
    """
    if not (np.isfinite(slope_prior) and slope_prior >= 0):
        raise ValueError(f"slope_prior must be a number >= 0, not {slope_prior!r}")
    scene_trials, cross_trials = check_trial_pair(scene_trials, cross_trials, sources)
    by_attr = "attribute" in scene_trials.columns and "attribute" in cross_trials.columns
    options = (reference, bootstrap, seed, progress, sources, slope_prior)
    problems = []
    if not by_attr:
        out, info = _align_joint_one(scene_trials, cross_trials, *options)
        infos = {"all": info}
        problems += info["problems"]
    else:
        parts, infos = [], {}
        for attr, st in scene_trials.groupby(scene_trials["attribute"].astype(str), sort=True):
            ct = cross_trials[cross_trials["attribute"].astype(str) == attr]
            part, infos[attr] = _align_joint_one(st, ct, *options)
            parts.append(part.assign(attribute=attr))
            problems += [f"attribute {attr}, {p}" for p in infos[attr]["problems"]]
        out = pd.concat(parts, ignore_index=True)[["attribute", *UNIFIED_COLUMNS]]
    out.attrs["jodkit"] = {
        "stage": "alignment",
        "method": "joint",
        "bootstrap": bootstrap,
        "seed": seed,
        "slope_prior": slope_prior,
        "attributes": infos,
        "warnings": report(problems, strict),
    }
    return out


def _fit_problems(fit: JointFit, profile: dict, reference: str) -> list[str]:
    """Convergence and reference-profile problems of one joint fit."""
    problems = []
    if not fit.converged:
        problems.append(
            f"the joint fit did not converge ({fit.iterations} iterations, largest gradient "
            f"{fit.max_gradient:.2g}: {fit.message})"
        )
    if not profile["determined"]:
        rise = dict(zip(profile["factors"], profile["objective_rise"], strict=True))
        problems.append(
            f"scene {reference!r}: the reference slope is not determined by the data: "
            f"halving it raises the objective by {rise[0.5]:.2f}, doubling it by "
            f"{rise[2.0]:.2f} (95% needs {PROFILE_RISE})"
        )
    return problems


def _align_joint_one(
    scene_trials: pd.DataFrame,
    cross_trials: pd.DataFrame,
    reference: str,
    bootstrap: int,
    seed: int,
    progress: bool,
    sources: tuple[str, str],
    slope_prior: float,
) -> tuple[pd.DataFrame, dict]:
    """The unified table of one attribute (checked trials) and its metadata entry."""
    data = build_data(scene_trials, cross_trials, sources)
    obj = JointObjective(data, slope_prior)
    fit = fit_joint(obj)
    x, a, b = obj.unpack(fit.theta)
    images = data.images
    scenes = sorted(images["scene"].unique())
    slopes = {s: float(a[j]) for j, s in enumerate(scenes)}
    scale = images.assign(jod=x)
    cross = scale[images["in_cross"]]
    ref_scene, reason = choose_reference(scale, cross, reference, eligible_references(slopes))
    ref = scenes.index(ref_scene)
    u = _unified(obj, fit.theta, ref)
    u_std = lo = hi = np.full(len(u), np.nan)
    if bootstrap:
        u_std, lo, hi = _bootstrap(
            scene_trials, cross_trials, obj, fit.theta, ref, bootstrap, seed, progress
        )
    y = np.where(images["in_cross"], a[data.scene_idx] * x + b[data.scene_idx], np.nan)
    out = pd.DataFrame(
        {
            "scene": images["scene"],
            "condition": images["condition"],
            "jod_scene": x,
            "jod_scene_std": np.nan,
            "jod_cross": y,
            "jod_unified": u,
            "jod_unified_std": u_std,
            "ci_low": lo,
            "ci_high": hi,
        }
    )[list(UNIFIED_COLUMNS)]
    profile = reference_profile(obj, fit, ref)
    problems = _fit_problems(fit, profile, ref_scene)
    problems += check_alignment(images["scene"].to_numpy(), x, y, u, slopes, ref_scene)
    info = {
        "reference": ref_scene,
        "reference_reason": reason,
        "fit": fit.report(),
        "reference_profile": profile,
        "problems": problems,
        "scenes": {
            s: {
                "a": slopes[s],
                "b": float(b[j]),
                "n_cross": int(images.loc[images["scene"] == s, "in_cross"].sum()),
            }
            for j, s in enumerate(scenes)
        },
    }
    return out, info


def _bootstrap(
    scene_trials: pd.DataFrame,
    cross_trials: pd.DataFrame,
    obj: JointObjective,
    theta: np.ndarray,
    ref: int,
    n: int,
    seed: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observer bootstrap of the unified scores, warm-started at the full-data fit."""
    rng = np.random.default_rng(seed)
    observers = np.union1d(
        scene_trials["observer"].astype(str), cross_trials["observer"].astype(str)
    )
    s_groups = scene_trials.groupby(scene_trials["observer"].astype(str)).indices
    c_groups = cross_trials.groupby(cross_trials["observer"].astype(str)).indices
    samples = np.full((n, obj.n), np.nan)
    for k in tqdm(range(n), desc="joint bootstrap", disable=not progress):
        pick = rng.choice(observers, len(observers))
        st = scene_trials.iloc[np.concatenate([s_groups.get(o, []) for o in pick]).astype(int)]
        ct = cross_trials.iloc[np.concatenate([c_groups.get(o, []) for o in pick]).astype(int)]
        try:
            rep = build_data(st, ct)
        except InputError:
            continue  # a resample that lost a scene's cross images: skip it
        if len(rep.images) != obj.n:
            continue
        rep_obj = JointObjective(rep, obj.slope_prior)
        samples[k] = _unified(rep_obj, fit_joint(rep_obj, theta).theta, ref)
    summary = summarise(samples)
    return summary.std, summary.ci_low, summary.ci_high
