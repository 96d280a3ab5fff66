"""How well a model predicts held-out human comparisons.

Every model is reduced to one number per pair of images, P(A better than B), and judged on
the same pairs (``training.pairwise_data.pair_table`` of the held-out scenes' trials):

* accuracy against the human majority, on all pairs with a majority and on the pairs whose
  majority is clear (a two-sided sign test on the decided trials, p < ``clear_alpha``);
* log-likelihood (nats per trial) and Brier score of the held-out trials, a tie counting as
  half a win each way (the outcome y is 1, 0 or 0.5);
* a calibration curve: trials binned by predicted P, observed proportion per bin.

The models compared in ``docs/training.md``: the human Thurstone scale itself (fitted on the
same trials: the ceiling), the score model's predicted JOD difference through the same
Thurstone link, and the comparator (both orders averaged). Light module: no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom

import scaling
from scaling.errors import InputError
from scaling.thurstone import preference_probability
from training.pairwise_data import pair_table, soft_target

PAIR_METRICS = (
    "accuracy",
    "accuracy_clear",
    "log_likelihood",
    "brier",
    "n_pairs",
    "n_clear",
    "n_trials",
)
CLEAR_ALPHA = 0.05
PROBABILITY_FLOOR = 1e-12
"""Predicted probabilities are clipped to [floor, 1 - floor] for the log-likelihood only."""


def sign_test_p(wins: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided exact sign test of ``wins`` out of ``n`` against 1/2 (``binomtest``'s value:
    for p = 1/2 the distribution is symmetric, so it is 2 P(X <= min(k, n - k)), at most 1)."""
    wins, n = np.asarray(wins, float), np.asarray(n, float)
    tail = binom.cdf(np.minimum(wins, n - wins), n, 0.5)
    return np.where(n > 0, np.minimum(1.0, 2.0 * tail), 1.0)


def pair_metrics(
    pairs: pd.DataFrame, p_a: np.ndarray, clear_alpha: float = CLEAR_ALPHA
) -> dict[str, float]:
    """Accuracy (all / clear-majority pairs), log-likelihood and Brier score per trial.

    ``pairs``: ``n_trials, n_ties, wins_A`` per pair (ties split); ``p_a``: predicted
    P(A better) per pair. A prediction of exactly 1/2 counts as half right.
    """
    p = np.asarray(p_a, dtype=float)
    if p.shape != (len(pairs),) or not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_a must hold one probability in [0, 1] per pair")
    n = pairs["n_trials"].to_numpy(float)
    wins = pairs["wins_A"].to_numpy(float)
    ties = pairs["n_ties"].to_numpy(float)
    majority = np.sign(wins - n / 2)  # +1: A preferred by most, -1: B, 0: no majority
    said = np.sign(p - 0.5)
    right = np.where(said == 0, 0.5, (said == majority).astype(float))
    has_majority = majority != 0
    decided_wins = wins - ties / 2
    clear = has_majority & (sign_test_p(decided_wins, n - ties) < clear_alpha)
    clipped = np.clip(p, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    log_lik = wins * np.log(clipped) + (n - wins) * np.log1p(-clipped)
    # sum over trials of (p - y)^2 with y in {1, 0, 1/2}: sum y^2 = decided wins + ties / 4
    squares = n * p**2 - 2 * p * wins + decided_wins + ties / 4
    total = n.sum()
    return {
        "accuracy": float(right[has_majority].mean()) if has_majority.any() else np.nan,
        "accuracy_clear": float(right[clear].mean()) if clear.any() else np.nan,
        "log_likelihood": float(log_lik.sum() / total),
        "brier": float(squares.sum() / total),
        "n_pairs": int(has_majority.sum()),
        "n_clear": int(clear.sum()),
        "n_trials": round(float(total)),
    }


def calibration_bins(pairs: pd.DataFrame, p_a: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Trials binned by predicted probability: ``bin_low, bin_high, predicted`` (trial-weighted
    mean), ``observed`` (proportion of wins, ties split), ``n_trials``. Each pair enters in
    both orientations, so the curve does not depend on which image is called A."""
    p = np.asarray(p_a, dtype=float)
    n = pairs["n_trials"].to_numpy(float)
    wins = pairs["wins_A"].to_numpy(float)
    both_p = np.concatenate([p, 1 - p])
    both_n = np.concatenate([n, n])
    both_wins = np.concatenate([wins, n - wins])
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, both_p, side="right") - 1, 0, bins - 1)
    weight = np.bincount(which, both_n, bins)
    predicted = np.bincount(which, both_p * both_n, bins)
    observed = np.bincount(which, both_wins, bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame(
            {
                "bin_low": edges[:-1],
                "bin_high": edges[1:],
                "predicted": predicted / weight,
                "observed": observed / weight,
                "n_trials": weight,
            }
        )
    return frame[frame["n_trials"] > 0].reset_index(drop=True)


def plot_calibration(curves: dict[str, pd.DataFrame], path: Path, title: str = "") -> Path:
    """Reliability diagram: observed proportion against predicted P, one line per model,
    marker area proportional to the trials in the bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    largest = max(float(c["n_trials"].max()) for c in curves.values() if len(c)) or 1.0
    for name, curve in curves.items():
        (line,) = ax.plot(curve["predicted"], curve["observed"], "-", lw=1, label=name)
        ax.scatter(
            curve["predicted"],
            curve["observed"],
            s=10 + 120 * curve["n_trials"] / largest,
            color=line.get_color(),
            alpha=0.8,
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="predicted P(image preferred)",
        ylabel="observed proportion of trials",
        title=title or "calibration on held-out trials",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    from scaling.outputs import output_file

    with output_file(path) as temporary:
        fig.savefig(temporary, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


# --- each model's P(A better) -----------------------------------------------------------------


def human_scale_probability(pairs: pd.DataFrame) -> np.ndarray:
    """The human Thurstone scale's own prediction (``p_thurstone``): the ceiling when the
    scale was fitted on the evaluated trials."""
    if "p_thurstone" not in pairs.columns:
        raise InputError("the human-scale row needs the scale tables (p_thurstone)")
    return pairs["p_thurstone"].to_numpy(float)


def score_model_probability(pairs: pd.DataFrame, predictions: pd.DataFrame) -> np.ndarray:
    """Phi((JOD_A - JOD_B) / SIGMA) from a score model's ``jod predict`` output
    (``image_path, attribute, jod_pred``), matched on resolved image paths."""
    missing = [c for c in ("image_path", "attribute", "jod_pred") if c not in predictions.columns]
    if missing:
        raise InputError(f"score predictions lack columns {missing}", field=missing[0])
    jod = {
        (_resolved(path), str(attribute)): float(value)
        for path, attribute, value in zip(
            predictions["image_path"],
            predictions["attribute"],
            predictions["jod_pred"],
            strict=True,
        )
    }
    sides = []
    for side in ("A", "B"):
        keys = [
            (_resolved(p), str(a))
            for p, a in zip(pairs[f"image_{side}"], pairs["attribute"], strict=True)
        ]
        absent = [k for k in keys if k not in jod]
        if absent:
            raise InputError(
                f"no score prediction for image {absent[0][0]} and attribute {absent[0][1]!r}"
                + (f" ({len(set(absent))} like this)" if len(set(absent)) > 1 else ""),
                field="image_path",
            )
        sides.append(np.array([jod[k] for k in keys]))
    return preference_probability(sides[0] - sides[1])


def comparator_probability(pairs: pd.DataFrame, predictions: pd.DataFrame) -> np.ndarray:
    """P(A better) from ``jod predict --pairs`` output (``image_A, image_B, attribute,
    p_a_better``); a prediction made for (B, A) counts as 1 - its value."""
    need = ["image_A", "image_B", "attribute", "p_a_better"]
    missing = [c for c in need if c not in predictions.columns]
    if missing:
        raise InputError(f"pair predictions lack columns {missing}", field=missing[0])
    found: dict[tuple[str, str, str], list[float]] = {}
    for a, b, attribute, p in zip(*(predictions[c] for c in need), strict=True):
        a, b, attribute = _resolved(a), _resolved(b), str(attribute)
        found.setdefault((a, b, attribute), []).append(float(p))
        found.setdefault((b, a, attribute), []).append(1.0 - float(p))
    keys = [
        (_resolved(a), _resolved(b), str(t))
        for a, b, t in zip(pairs["image_A"], pairs["image_B"], pairs["attribute"], strict=True)
    ]
    absent = [k for k in keys if k not in found]
    if absent:
        raise InputError(
            f"no comparator prediction for the pair {absent[0][0]} / {absent[0][1]} "
            f"({absent[0][2]})" + (f" ({len(absent)} pairs like this)" if len(absent) > 1 else ""),
            field="image_A",
        )
    return np.array([np.mean(found[k]) for k in keys])


def _resolved(path: object) -> str:
    return str(Path(str(path)).resolve())


def validation_table(pairs: pd.DataFrame, p_a: np.ndarray) -> pd.DataFrame:
    """Per attribute (level ``global``): log-likelihood, accuracy and Brier score of the
    pairs' trials, and ``n`` trials; the layout of the run's ``eval.csv``."""
    rows = []
    p_a = np.asarray(p_a, dtype=float)
    for attribute in sorted(pairs["attribute"].unique()):
        mask = (pairs["attribute"] == attribute).to_numpy()
        metrics = pair_metrics(pairs[mask], p_a[mask])
        rows.append(
            {
                "attribute": attribute,
                "level": "global",
                **{k: metrics[k] for k in ("log_likelihood", "accuracy", "brier")},
                "n": metrics["n_trials"],
            }
        )
    return pd.DataFrame(rows)


# --- the comparison table ---------------------------------------------------------------------


def evaluate_pairwise(
    pairs: pd.DataFrame,
    probabilities: dict[str, np.ndarray],
    clear_alpha: float = CLEAR_ALPHA,
    bins: int = 10,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """One row per model and task (``per_scene``, ``cross_content``, ``all``) with
    :data:`PAIR_METRICS`, and each model's calibration curve over all pairs. A chance row
    (P = 1/2 everywhere) is added as the floor."""
    models = {**probabilities, "chance (P = 1/2)": np.full(len(pairs), 0.5)}
    rows = []
    tasks = [("all", np.ones(len(pairs), bool))]
    if "task" in pairs.columns and pairs["task"].nunique() > 1:
        tasks += [(t, (pairs["task"] == t).to_numpy()) for t in sorted(pairs["task"].unique())]
    for name, p in models.items():
        p = np.asarray(p, float)
        for task, mask in tasks:
            metrics = pair_metrics(pairs[mask], p[mask], clear_alpha)
            rows.append({"model": name, "task": task, **metrics})
    curves = {name: calibration_bins(pairs, p, bins) for name, p in probabilities.items()}
    return pd.DataFrame(rows, columns=["model", "task", *PAIR_METRICS]), curves


def evaluate_pairwise_files(
    predictions: Path,
    pairs: Path,
    out_dir: Path,
    split: str | None = None,
    score_predictions: Path | None = None,
    scales: Path | None = None,
) -> pd.DataFrame:
    """``jod evaluate --task pairwise``: the comparator's ``jod predict --pairs`` output (and a
    score model's ``jod predict`` output) on the pairs of one split of ``pairs`` (a comparator
    run's ``split.csv``: image paths, trial counts, the human scale's ``p_thurstone``).

    Writes ``metrics.csv`` and ``calibration.png``; with ``scales`` (the experts' per-scene
    scale table) also ``comparator_scales.csv`` (the comparator's answers scaled as one
    observer's trials), ``disagreement.csv`` and ``disagreement.png``.
    """
    from scaling.io import read_any_table, read_table
    from scaling.outputs import output_file, staged
    from training.evaluate import select_split
    from training.pairwise_scale import comparator_scale, plot_disagreement, scale_disagreement

    table = read_any_table(pairs)
    need = ["attribute", "image_A", "image_B", "n_trials", "n_ties", "wins_A"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise InputError(
            f"lacks columns {missing}: pass the pairs of a comparator run (its split.csv)",
            source=str(pairs),
            field=missing[0],
        )
    table = select_split(table, split, str(pairs)).reset_index(drop=True)
    split = split or ("test" if "split" in table.columns else "all")
    probabilities = {}
    if "p_thurstone" in table.columns:
        probabilities["human scale (ceiling)"] = human_scale_probability(table)
    if score_predictions is not None:
        probabilities["score model"] = score_model_probability(
            table, read_any_table(score_predictions)
        )
    comparator = comparator_probability(table, read_any_table(predictions))
    probabilities["comparator"] = comparator
    metrics, curves = evaluate_pairwise(table, probabilities)
    title = f"held-out pairs ({split})"
    with staged():  # every output, or none
        with output_file(out_dir / "metrics.csv") as path:
            metrics.to_csv(path, index=False)
        plot_calibration(curves, out_dir / "calibration.png", title)
        if scales is not None:
            within = table.assign(p_a_better=comparator)
            within = within[within["scene_A"] == within["scene_B"]]
            model_scale = comparator_scale(within.assign(scene=within["scene_A"]))
            disagreement = scale_disagreement(model_scale, read_table(scales))
            with output_file(out_dir / "comparator_scales.csv") as path:
                model_scale.to_csv(path, index=False)
            with output_file(out_dir / "disagreement.csv") as path:
                disagreement.to_csv(path, index=False)
            plot_disagreement(disagreement, out_dir / "disagreement.png")
    return metrics


# --- which soft target predicts unseen observers best ------------------------------------------


def target_holdout(
    trials: pd.DataFrame,
    folds: int = 5,
    blends: tuple[float, ...] = (0.25, 0.5, 0.75),
    seed: int = 0,
) -> pd.DataFrame:
    """Each soft target, estimated from the other observers, scored on held-out observers.

    Observers are split into ``folds`` groups; for each, the targets are computed from the
    remaining observers' trials (proportions; Thurstone probabilities from a fresh
    ``scaling.scale`` of those trials; blends) and scored with :func:`pair_metrics` on the
    held-out observers' trials of the pairs both halves judged. Returns one row per target
    with the trial-weighted means over folds.
    """
    observers = np.array(sorted(trials["observer"].unique()))
    if len(observers) < folds or folds < 2:
        raise ValueError(f"{len(observers)} observers cannot make {folds} folds")
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(observers), np.arange(len(observers)) % folds, strict=True))
    names = [("proportion", 0.0), ("thurstone", 0.0)] + [("blend", b) for b in blends]
    totals: dict[str, list[tuple[dict, int]]] = {}
    for fold in range(folds):
        held = trials["observer"].map(fold_of) == fold
        fit, test = trials[~held], trials[held]
        scene_scales, cross_scales = scale_trials(fit)
        train_pairs = pair_table(fit, scene_scales, cross_scales)
        test_pairs = pair_table(test)
        keys = ["attribute", "scene_A", "condition_A", "scene_B", "condition_B"]
        joined = test_pairs.merge(
            train_pairs[[*keys, "p_observed", "p_thurstone"]], on=keys, suffixes=("", "_fit")
        )
        estimated = joined.assign(p_observed=joined["p_observed_fit"])
        for kind, blend in names:
            label = kind if kind != "blend" else f"blend {blend:g}"
            metrics = pair_metrics(joined, soft_target(estimated, kind, blend))
            totals.setdefault(label, []).append((metrics, metrics["n_trials"]))
    rows = []
    for label, results in totals.items():
        weights = np.array([w for _, w in results], float)
        row = {"target": label}
        for metric in ("accuracy", "log_likelihood", "brier"):
            values = np.array([m[metric] for m, _ in results], float)
            row[metric] = float(np.average(values, weights=weights))
        row["n_trials"] = int(weights.sum())
        rows.append(row)
    return pd.DataFrame(rows)


def scale_trials(trials: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Scale tables of normalised trials (``read_pair_trials``) with ``scaling.scale``:
    per-scene by scene and attribute, cross-content as one graph of image keys per
    attribute. Either is None when there are no such trials."""
    from scaling.formats import image_key

    out = []
    for task in ("per_scene", "cross_content"):
        part = trials[trials["task"] == task]
        if part.empty:
            out.append(None)
            continue
        frame = part[["observer", "attribute", "is_A_selected", "tie"]].copy()
        if task == "per_scene":
            frame["scene"] = part["scene_A"]
            frame["condition_A"], frame["condition_B"] = part["condition_A"], part["condition_B"]
            by = ["scene", "attribute"]
        else:
            for side in ("A", "B"):
                frame[f"condition_{side}"] = [
                    image_key(s, c)
                    for s, c in zip(part[f"scene_{side}"], part[f"condition_{side}"], strict=True)
                ]
            by = ["attribute"]
        out.append(scaling.scale(frame, by=by, ties="split", progress=False))
    return out[0], out[1]
