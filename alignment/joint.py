"""Joint maximum-likelihood alignment: all comparisons, one affine map per scene.

Instead of scaling scenes and the cross-content task separately and then fitting lines
between two noisy scales, fit everything at once. Image i of scene j has a latent score
x_i on its scene's scale; its cross-content score is y_i = a_j x_i + b_j. A per-scene trial
between i and k is answered with P = Phi((x_i - x_k) / SIGMA), a cross-content trial with
P = Phi((y_i - y_k) / SIGMA) (Thurstone Case V, ``scaling.likelihood.SIGMA``). The unified
score is then u = (a_j x + b_j - b_r) / a_r, exactly as in the paper's method.

Gauges: each scene's x has mean 0 (pwcmp's ``mean0`` penalty), b of the first scene is 0
(the cross scale's offset; it cancels in u), a_j = exp(alpha_j) > 0. A ridge of
``scaling.likelihood.NO_PRIOR_RIDGE`` keeps never-losing images finite.

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
from scipy.special import log_ndtr
from tqdm import tqdm

from alignment.formats import UNIFIED_COLUMNS, cross_id
from alignment.reference import choose_reference
from scaling.errors import InputError
from scaling.io import validate_trials
from scaling.likelihood import MEAN0_WEIGHT, NO_PRIOR_RIDGE, SIGMA

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
SCENE_TRIALS = "per-scene trials"
CROSS_TRIALS = "cross-content trials"


def _mills(u: np.ndarray) -> np.ndarray:
    """phi(u) / Phi(u), stable for very negative u."""
    return np.exp(-0.5 * u**2 - _LOG_SQRT_2PI - log_ndtr(u))


@dataclass
class JointData:
    """Pairs of global image indices with their counts, and which pairs are cross."""

    images: pd.DataFrame  # scene, condition, in_cross
    first: np.ndarray
    second: np.ndarray
    wins: np.ndarray  # times first chosen over second
    losses: np.ndarray
    cross: np.ndarray  # bool per pair
    scene_idx: np.ndarray  # per image
    n_scenes: int


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


def _decided(trials: pd.DataFrame, source: str, by: tuple[str, ...]) -> pd.DataFrame:
    """Validated trials (``scaling.io.validate_trials``) without ties and training trials."""
    frame = validate_trials(trials, by=by, source=source)
    keep = np.ones(len(frame), bool)
    for flag in ("tie", "is_training"):
        if flag in frame.columns:
            keep &= frame[flag].to_numpy() == 0
    return frame[keep]


def build_data(
    scene_trials: pd.DataFrame,
    cross_trials: pd.DataFrame,
    sources: tuple[str, str] = (SCENE_TRIALS, CROSS_TRIALS),
) -> JointData:
    """Index every image and collapse both trial tables into pair counts.

    ``sources``: names of the two tables in error messages (e.g. their file names).
    """
    st = _decided(scene_trials, sources[0], ("scene",))
    ct = _decided(cross_trials, sources[1], ("scene_A", "scene_B"))
    sa = [cross_id(s, c) for s, c in zip(st["scene"], st["condition_A"], strict=True)]
    sb = [cross_id(s, c) for s, c in zip(st["scene"], st["condition_B"], strict=True)]
    ca = [cross_id(s, c) for s, c in zip(ct["scene_A"], ct["condition_A"], strict=True)]
    cb = [cross_id(s, c) for s, c in zip(ct["scene_B"], ct["condition_B"], strict=True)]
    ids = sorted(set(sa) | set(sb))
    unknown = sorted((set(ca) | set(cb)) - set(ids))
    if unknown:
        row = next(i for i, (x, y) in enumerate(zip(ca, cb, strict=True)) if unknown[0] in (x, y))
        raise InputError(
            f"image {unknown[0]!r} of the cross-content trials never appears in a per-scene trial",
            source=sources[1],
            row=int(ct.index[row]) + 1,
            field="condition_A",
        )
    index = {name: i for i, name in enumerate(ids)}
    scene_pairs = _pairs(st, pd.Series(sa).map(index), pd.Series(sb).map(index))
    cross_pairs = _pairs(ct, pd.Series(ca).map(index), pd.Series(cb).map(index))
    images = pd.DataFrame([i.split("/", 1) for i in ids], columns=["scene", "condition"])
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
    both = pd.concat([scene_pairs, cross_pairs], ignore_index=True)
    return JointData(
        images=images,
        first=both["first"].to_numpy(),
        second=both["second"].to_numpy(),
        wins=both["wins"].to_numpy(float),
        losses=both["losses"].to_numpy(float),
        cross=np.r_[np.zeros(len(scene_pairs), bool), np.ones(len(cross_pairs), bool)],
        scene_idx=images["scene"].map({s: j for j, s in enumerate(scenes)}).to_numpy(),
        n_scenes=len(scenes),
    )


class JointObjective:
    """Negative log-likelihood of all comparisons and its gradient.

    Parameter vector: x (one per image), alpha (log a, one per scene), b (one per scene
    but the first).
    """

    def __init__(self, data: JointData) -> None:
        self.d = data
        self.n = len(data.images)
        self.counts = np.bincount(data.scene_idx, minlength=data.n_scenes).astype(float)

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, m = self.n, self.d.n_scenes
        return theta[:n], np.exp(theta[n : n + m]), np.r_[0.0, theta[n + m :]]

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        d, n, m = self.d, self.n, self.d.n_scenes
        x, a, b = self.unpack(theta)
        sa, sb = d.scene_idx[d.first], d.scene_idx[d.second]
        scale_f = np.where(d.cross, a[sa], 1.0)
        scale_s = np.where(d.cross, a[sb], 1.0)
        diff = scale_f * x[d.first] - scale_s * x[d.second]
        diff = diff + np.where(d.cross, b[sa] - b[sb], 0.0)
        u = diff / SIGMA
        value = -np.sum(d.wins * log_ndtr(u) + d.losses * log_ndtr(-u))
        g = -(d.wins * _mills(u) - d.losses * _mills(-u)) / SIGMA  # d value / d diff
        gx = np.bincount(d.first, g * scale_f, n) - np.bincount(d.second, g * scale_s, n)
        ga = np.bincount(sa, np.where(d.cross, g * a[sa] * x[d.first], 0.0), m)
        ga -= np.bincount(sb, np.where(d.cross, g * a[sb] * x[d.second], 0.0), m)
        gb = np.bincount(sa, np.where(d.cross, g, 0.0), m) - np.bincount(
            sb, np.where(d.cross, g, 0.0), m
        )
        means = np.bincount(d.scene_idx, x, m) / self.counts
        value += MEAN0_WEIGHT * np.sum(means**2) + NO_PRIOR_RIDGE * np.sum(x**2)
        gx += 2 * MEAN0_WEIGHT * means[d.scene_idx] / self.counts[d.scene_idx]
        gx += 2 * NO_PRIOR_RIDGE * x
        return float(value), np.r_[gx, ga, gb[1:]]


def fit_joint(data: JointData, start: np.ndarray | None = None) -> np.ndarray:
    """Maximum-likelihood parameters (L-BFGS with the analytic gradient)."""
    obj = JointObjective(data)
    theta0 = np.zeros(obj.n + 2 * data.n_scenes - 1) if start is None else start
    res = minimize(
        obj.value_and_grad,
        theta0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-7},
    )
    return res.x


def _unified(obj: JointObjective, theta: np.ndarray, ref: int) -> np.ndarray:
    x, a, b = obj.unpack(theta)
    j = obj.d.scene_idx
    return (a[j] * x + b[j] - b[ref]) / a[ref]


def align_joint(
    scene_trials: pd.DataFrame,
    cross_trials: pd.DataFrame,
    reference: str = "auto",
    bootstrap: int = 0,
    seed: int = 0,
    progress: bool = False,
    sources: tuple[str, str] = (SCENE_TRIALS, CROSS_TRIALS),
) -> pd.DataFrame:
    """Unified scale from the raw trials (see the module docstring), one fit per attribute.

    With an ``attribute`` column in both tables each attribute is aligned on its own and the
    output starts with ``attribute``, as in ``alignment.align.align``.
    ``bootstrap`` resamples observers (per-scene and cross-content alike) with replacement.
    ``sources``: names of the two tables in error messages.
    """
    by_attr = "attribute" in scene_trials.columns and "attribute" in cross_trials.columns
    if not by_attr:
        out, info = _align_joint_one(
            scene_trials, cross_trials, reference, bootstrap, seed, progress, sources
        )
        infos = {"all": info}
    else:
        parts, infos = [], {}
        for attr, st in scene_trials.groupby(scene_trials["attribute"].astype(str), sort=True):
            ct = cross_trials[cross_trials["attribute"].astype(str) == attr]
            part, infos[attr] = _align_joint_one(
                st, ct, reference, bootstrap, seed, progress, sources
            )
            parts.append(part.assign(attribute=attr))
        out = pd.concat(parts, ignore_index=True)[["attribute", *UNIFIED_COLUMNS]]
    out.attrs["jodkit"] = {
        "stage": "alignment",
        "method": "joint",
        "bootstrap": bootstrap,
        "seed": seed,
        "attributes": infos,
        "warnings": [],
    }
    return out


def _align_joint_one(
    scene_trials: pd.DataFrame,
    cross_trials: pd.DataFrame,
    reference: str,
    bootstrap: int,
    seed: int,
    progress: bool,
    sources: tuple[str, str],
) -> tuple[pd.DataFrame, dict]:
    """The unified table of one attribute and its metadata entry."""
    data = build_data(scene_trials, cross_trials, sources)
    obj = JointObjective(data)
    theta = fit_joint(data)
    x, a, b = obj.unpack(theta)
    images = data.images
    scenes = sorted(images["scene"].unique())
    scale = images.assign(jod=x)
    cross = scale[images["in_cross"]]
    ref_scene, reason = choose_reference(scale, cross, reference)
    ref = scenes.index(ref_scene)
    u = _unified(obj, theta, ref)
    u_std = lo = hi = np.full(len(u), np.nan)
    if bootstrap:
        u_std, lo, hi = _bootstrap(
            scene_trials, cross_trials, data, theta, ref, bootstrap, seed, progress
        )
    y = a[data.scene_idx] * x + b[data.scene_idx]
    out = pd.DataFrame(
        {
            "scene": images["scene"],
            "condition": images["condition"],
            "jod_scene": x,
            "jod_scene_std": np.nan,
            "jod_cross": np.where(images["in_cross"], y, np.nan),
            "jod_unified": u,
            "jod_unified_std": u_std,
            "ci_low": lo,
            "ci_high": hi,
        }
    )[list(UNIFIED_COLUMNS)]
    info = {
        "reference": ref_scene,
        "reference_reason": reason,
        "scenes": {
            s: {
                "a": float(a[j]),
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
    data: JointData,
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
    names = data.images["scene"] + "/" + data.images["condition"]
    samples = np.full((n, len(names)), np.nan)
    for k in tqdm(range(n), desc="joint bootstrap", disable=not progress):
        pick = rng.choice(observers, len(observers))
        st = scene_trials.iloc[np.concatenate([s_groups.get(o, []) for o in pick]).astype(int)]
        ct = cross_trials.iloc[np.concatenate([c_groups.get(o, []) for o in pick]).astype(int)]
        try:
            rep = build_data(st, ct)
        except InputError:
            continue  # a resample that lost a scene's cross images: skip it
        if len(rep.images) != len(names):
            continue
        obj = JointObjective(rep)
        samples[k] = _unified(obj, fit_joint(rep, theta), ref)
    u_std = np.nanstd(samples, axis=0, ddof=1)
    lo, hi = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    return u_std, lo, hi
