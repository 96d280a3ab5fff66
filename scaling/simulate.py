"""Simulated pairwise-comparison experiments (pwcmp's ``pw_simulate_exp``, extended).

Simulated observers answer from known true scores with Thurstone Case V noise, so that the
number of observers, the design and the analysis can be chosen before running a real
experiment, and so that every scaling feature can be checked against a known truth.
Observers may carry a left-side bias or a compressed scale, and a fraction of them may
answer at random. The output is an ordinary trial table (``scaling.formats``); the
simulation settings and the truth about who is an outlier go in ``attrs["jodkit"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.errors import InputError
from scaling.thurstone import SIGMA, preference_probability

DESIGNS = ("full", "random", "neighbour")
TRUTH_GROUP_KEYS = ("scene", "attribute")


def make_true_scores(
    n_conditions: int,
    *,
    n_scenes: int = 1,
    jod_range: float = 8.0,
    attribute: str = "quality",
    seed: int = 0,
) -> pd.DataFrame:
    """Draw random true scores, laid out like a scale table.

    Parameters
    ----------
    n_conditions : int
        Conditions per scene (at least 2).
    n_scenes : int
        Number of scenes, each with its own independent scores.
    jod_range : float
        Scores are uniform on ``[-jod_range / 2, jod_range / 2]`` (PIQ23 scenes span 6 to
        10.6 JOD).
    attribute : str
        Value of the ``attribute`` column.
    seed : int
        Seed of the numpy Generator.

    Returns
    -------
    pandas.DataFrame
        Columns ``scene, attribute, condition, jod``; ``jod`` has mean 0 per scene.
    """
    if n_conditions < 2:
        raise ValueError(f"n_conditions must be at least 2, not {n_conditions}")
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be at least 1, not {n_scenes}")
    if not jod_range > 0:
        raise ValueError(f"jod_range must be positive, not {jod_range}")
    rng = np.random.default_rng(seed)
    scores = rng.uniform(-jod_range / 2, jod_range / 2, size=(n_scenes, n_conditions))
    scores -= scores.mean(axis=1, keepdims=True)
    width = len(str(n_conditions - 1))
    return pd.DataFrame(
        {
            "scene": np.repeat([f"s{s:02d}" for s in range(n_scenes)], n_conditions),
            "attribute": attribute,
            "condition": np.tile([f"c{c:0{width}d}" for c in range(n_conditions)], n_scenes),
            "jod": scores.ravel(),
        }
    )


def design_pairs(
    true_jod: np.ndarray,
    design: str,
    *,
    neighbours: int = 2,
) -> np.ndarray:
    """Unordered pairs ``(i, j)``, ``i < j``, that a design compares.

    ``full`` compares every pair; ``random`` starts from every pair too (the trials then
    take a random subset); ``neighbour`` sorts the conditions by true score and compares
    each with its ``neighbours`` nearest successors, so close conditions get the trials.

    Returns
    -------
    numpy.ndarray
        Integer array of shape (P, 2).
    """
    n = len(true_jod)
    if design in ("full", "random"):
        i, j = np.triu_indices(n, k=1)
        return np.column_stack([i, j])
    if design == "neighbour":
        if neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, not {neighbours}")
        order = np.argsort(true_jod, kind="stable")
        rank_a = np.concatenate([np.arange(n - d) for d in range(1, min(neighbours, n - 1) + 1)])
        rank_b = np.concatenate([np.arange(d, n) for d in range(1, min(neighbours, n - 1) + 1)])
        a, b = order[rank_a], order[rank_b]
        return np.column_stack([np.minimum(a, b), np.maximum(a, b)])
    raise ValueError(f"design must be one of {DESIGNS}, not {design!r}")


def _trial_pairs_and_observers(
    pairs: np.ndarray, n_observers: int, n_comparisons: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Expand a design's pairs into trials, each given to an observer.

    Without ``n_comparisons`` every observer judges every pair once (pwcmp's simulation).
    With it, the trials walk through the pairs in a random order, again and again, so that
    pair counts differ by at most one; trials are dealt to observers as evenly.
    """
    n_pairs = len(pairs)
    if n_comparisons is None:
        trial_pair = np.tile(np.arange(n_pairs), n_observers)
        observer = np.repeat(np.arange(n_observers), n_pairs)
        return pairs[trial_pair], observer
    rounds = -(-n_comparisons // n_pairs)
    trial_pair = np.concatenate([rng.permutation(n_pairs) for _ in range(rounds)])
    trial_pair = trial_pair[:n_comparisons]
    observer = rng.permutation(np.arange(n_comparisons) % n_observers)
    return pairs[trial_pair], observer


@dataclass(frozen=True)
class ObserverPanel:
    """Simulated observers: who answers at random, each one's left bias (JOD) and scale.

    Observer ``o`` picks A with probability ``Phi((s_o (q_A - q_B) + b_o x) / 1.4826)``,
    ``x`` = +1 when A is on the left and -1 otherwise; random answerers pick A half the time.
    Experiments that choose their pairs as they go (active sampling) draw one panel and ask
    it batch after batch.
    """

    names: np.ndarray
    is_random: np.ndarray
    left_bias: np.ndarray
    scale: np.ndarray

    @classmethod
    def draw(
        cls,
        n_observers: int,
        *,
        outlier_fraction: float = 0.0,
        left_bias: float = 0.0,
        left_bias_sd: float = 0.0,
        compression: float = 0.0,
        rng: np.random.Generator,
    ) -> ObserverPanel:
        """A panel with the settings of :func:`simulate_trials`."""
        n_outliers = round(outlier_fraction * n_observers)
        is_random = np.zeros(n_observers, dtype=bool)
        is_random[rng.choice(n_observers, size=n_outliers, replace=False)] = True
        bias = rng.normal(left_bias, left_bias_sd, size=n_observers) if left_bias_sd else None
        bias = np.full(n_observers, float(left_bias)) if bias is None else bias
        scale = rng.uniform(1.0 - compression, 1.0, size=n_observers)
        width = len(str(n_observers))
        names = np.array([f"O{o + 1:0{width}d}" for o in range(n_observers)])
        return cls(names, is_random, bias, scale)

    def choose_a(
        self,
        jod_a: np.ndarray,
        jod_b: np.ndarray,
        observer: np.ndarray,
        a_left: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Whether each observer picks A (booleans), by the model above."""
        drift = self.scale[observer] * (jod_a - jod_b)
        drift = drift + self.left_bias[observer] * np.where(a_left, 1, -1)
        p_a = np.where(self.is_random[observer], 0.5, preference_probability(drift))
        return rng.random(len(p_a)) < p_a


def simulate_trials(
    true_scores: pd.DataFrame,
    *,
    n_observers: int = 15,
    design: str = "full",
    n_comparisons: int | None = None,
    neighbours: int = 2,
    outlier_fraction: float = 0.0,
    left_bias: float = 0.0,
    left_bias_sd: float = 0.0,
    compression: float = 0.0,
    attribute: str = "quality",
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate a pairwise-comparison experiment from known true scores.

    Each trial shows conditions A and B of one scene, on random sides, and observer ``o``
    picks A with probability ``Phi((s_o (q_A - q_B) + b_o x) / 1.4826)``, where ``x`` is
    +1 when A is on the left and -1 otherwise. Random answerers pick A with probability 0.5.

    Parameters
    ----------
    true_scores : pandas.DataFrame
        Columns ``condition, jod`` and optionally ``scene`` and ``attribute`` (e.g. a scale
        table or :func:`make_true_scores`); each (scene, attribute) group is one experiment.
    n_observers : int
        Observers; the same observers take part in every group.
    design : {"full", "random", "neighbour"}
        Which pairs are compared (see :func:`design_pairs`).
    n_comparisons : int, optional
        Trials per group. Default: every observer judges every pair of the design once.
    neighbours : int
        For ``neighbour``: how many nearest conditions (by true score) each is compared with.
    outlier_fraction : float
        Fraction of observers, rounded to the nearest whole observer, answering at random.
    left_bias : float
        Mean, over observers, of the bias ``b_o`` towards the left stimulus, in JOD.
    left_bias_sd : float
        Spread of ``b_o`` across observers (normal), in JOD.
    compression : float
        Each observer's scale factor ``s_o`` is uniform on ``[1 - compression, 1]``: such
        observers see differences as smaller than they are.
    attribute : str
        ``attribute`` value when ``true_scores`` has no such column.
    seed : int
        Seed of the numpy Generator; the same seed gives the same trials.

    Returns
    -------
    pandas.DataFrame
        Trial table: ``observer, session, scene, attribute, condition_A, condition_B,
        is_A_selected, left_shown``. ``attrs["jodkit"]["simulation"]`` records the settings
        and the observers that answered at random.
    """
    truth = _validate_truth(true_scores)
    _validate_settings(n_observers, design, n_comparisons, outlier_fraction, compression)
    if "attribute" not in truth.columns:
        truth = truth.assign(attribute=attribute)
    if "scene" not in truth.columns:
        truth = truth.assign(scene="scene")

    rng = np.random.default_rng(seed)
    panel = ObserverPanel.draw(
        n_observers,
        outlier_fraction=outlier_fraction,
        left_bias=left_bias,
        left_bias_sd=left_bias_sd,
        compression=compression,
        rng=rng,
    )

    parts = []
    for (scene, attr), group in truth.groupby(["scene", "attribute"], sort=False):
        jod = group["jod"].to_numpy(dtype=float)
        names = group["condition"].astype(str).to_numpy()
        pairs = design_pairs(jod, design, neighbours=neighbours)
        trial_pairs, observer = _trial_pairs_and_observers(pairs, n_observers, n_comparisons, rng)
        swap = rng.random(len(trial_pairs)) < 0.5
        a = np.where(swap, trial_pairs[:, 1], trial_pairs[:, 0])
        b = np.where(swap, trial_pairs[:, 0], trial_pairs[:, 1])
        a_left = rng.random(len(a)) < 0.5
        chose_a = panel.choose_a(jod[a], jod[b], observer, a_left, rng)
        parts.append(
            pd.DataFrame(
                {
                    "observer": panel.names[observer],
                    "session": panel.names[observer],
                    "scene": scene,
                    "attribute": attr,
                    "condition_A": names[a],
                    "condition_B": names[b],
                    "is_A_selected": chose_a.astype(np.int8),
                    "left_shown": np.where(a_left, "A", "B"),
                }
            )
        )
    trials = pd.concat(parts, ignore_index=True)
    trials.attrs["jodkit"] = {
        "simulation": {
            "n_observers": n_observers,
            "design": design,
            "n_comparisons": n_comparisons,
            "neighbours": neighbours,
            "outlier_fraction": outlier_fraction,
            "left_bias": left_bias,
            "left_bias_sd": left_bias_sd,
            "compression": compression,
            "seed": seed,
            "sigma": SIGMA,
            "random_observers": panel.names[panel.is_random].tolist(),
        }
    }
    return trials


def _validate_truth(true_scores: pd.DataFrame) -> pd.DataFrame:
    """Check the truth table once, so the simulation can trust it."""
    if not isinstance(true_scores, pd.DataFrame):
        raise InputError("true_scores must be a DataFrame with columns 'condition' and 'jod'")
    for column in ("condition", "jod"):
        if column not in true_scores.columns:
            raise InputError("missing column", source="true_scores", field=column)
    jod = pd.to_numeric(true_scores["jod"], errors="coerce")
    bad = np.flatnonzero(~np.isfinite(jod.to_numpy(dtype=float)))
    if len(bad):
        raise InputError("not a finite number", source="true_scores", row=int(bad[0]), field="jod")
    truth = true_scores.assign(jod=jod)
    keys = [k for k in TRUTH_GROUP_KEYS if k in truth.columns] + ["condition"]
    dup = np.flatnonzero(truth.duplicated(keys).to_numpy())
    if len(dup):
        raise InputError(
            "condition listed twice in its group",
            source="true_scores",
            row=int(dup[0]),
            field="condition",
        )
    group_keys = keys[:-1]
    sizes = truth.groupby(group_keys).size() if group_keys else pd.Series([len(truth)])
    if (sizes < 2).any():
        raise InputError("every group needs at least 2 conditions", source="true_scores")
    return truth


def _validate_settings(
    n_observers: int,
    design: str,
    n_comparisons: int | None,
    outlier_fraction: float,
    compression: float,
) -> None:
    """Reject settings that would simulate nonsense."""
    if n_observers < 1:
        raise ValueError(f"n_observers must be at least 1, not {n_observers}")
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, not {design!r}")
    if n_comparisons is not None and n_comparisons < 1:
        raise ValueError(f"n_comparisons must be at least 1, not {n_comparisons}")
    if not 0.0 <= outlier_fraction <= 1.0:
        raise ValueError(f"outlier_fraction must be in [0, 1], not {outlier_fraction}")
    if not 0.0 <= compression < 1.0:
        raise ValueError(f"compression must be in [0, 1), not {compression}")


def simulate_observer_counts(
    true_jod: np.ndarray, n_observers: int, *, repeats: int = 1, seed: int = 0
) -> np.ndarray:
    """Per-observer count matrices of a full design, drawn straight from the model.

    The fast path for studies that need only counts (bootstrap coverage, screening): every
    observer compares every pair ``repeats`` times, with the same Thurstone model as
    :func:`simulate_trials`.

    Returns
    -------
    numpy.ndarray
        Shape (n_observers, N, N); entry (o, i, j) = times observer o chose i over j.
    """
    q = np.asarray(true_jod, dtype=float)
    if q.ndim != 1 or len(q) < 2 or not np.all(np.isfinite(q)):
        raise ValueError("true_jod must be a 1-D array of at least 2 finite scores")
    if n_observers < 1 or repeats < 1:
        raise ValueError(f"n_observers and repeats must be at least 1: {n_observers}, {repeats}")
    i, j = np.triu_indices(len(q), k=1)
    rng = np.random.default_rng(seed)
    i_wins = rng.binomial(repeats, preference_probability(q[i] - q[j]), size=(n_observers, len(i)))
    counts = np.zeros((n_observers, len(q), len(q)))
    counts[:, i, j] = i_wins
    counts[:, j, i] = repeats - i_wins
    return counts
