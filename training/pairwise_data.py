"""Pair samples for the comparator: which of two images is better for an attribute.

From the trial tables that ``jod export`` writes (per-scene trials with ``scene``,
cross-content trials with ``scene_A``/``scene_B``), this module

1. leaves out training trials (as ``scaling.scale`` does), golden trials, and the observers
   that pwcmp's screening flags (``scaling.screen_observers``, or a screening table from
   ``jod scale --screen``);
2. counts every unordered pair of images once, ties split (``scaling.counts_from_trials``),
   and attaches the Thurstone probability from the scale tables;
3. turns each pair into two samples, one per order, with a soft target P(first better):
   the observed proportion, the Thurstone probability, or a blend of both;
4. assigns whole scenes to train/val/test with the score model's own split
   (``training.data.split_scenes``), so the two models are tested on the same scenes.

Images are found through an image index: ``(scene, condition) -> file``. Light module: no
torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image

import scaling
from scaling.errors import InputError
from scaling.formats import image_key, split_image_keys
from scaling.io import read_any_table
from scaling.thurstone import preference_probability
from training.data import SPLITS, resolve_images, split_scenes

INDEX_COLUMNS = ("scene", "condition", "image_path")
SIDES = ("A", "B")
IMAGE_COLUMNS = ("scene_A", "condition_A", "scene_B", "condition_B")
PAIR_KEYS = ("attribute", *IMAGE_COLUMNS)
TARGETS = ("proportion", "thurstone", "blend")
Target = Literal["proportion", "thurstone", "blend"]
MIXED = "mixed"
"""Split of a cross-content pair whose scenes lie in different splits: used nowhere."""

QUESTION = "Which of the two images has better {attribute}? Answer First or Second."
ANSWER_WORDS = ("First", "Second")


# --- the image index ----------------------------------------------------------------------


def read_image_index(source: str | Path) -> pd.DataFrame:
    """``scene, condition, image_path`` (absolute) for every image, from a table or a folder.

    A table (CSV/Parquet; ``jod example``'s ``manifest.csv`` is one) has the columns
    ``scene, condition, image_path``, paths relative to the table's folder. A folder holds
    ``<scene>/<condition>.<ext>`` (the layout of ``jod example`` and of campaign folders).
    """
    source = Path(source)
    if source.is_dir():
        return _index_from_folder(source)
    table = read_image_table(source, INDEX_COLUMNS, ["image_path"], "an image index")
    return _unique(table[list(INDEX_COLUMNS)], str(source))


def read_image_table(
    source: Path, columns: Sequence[str], image_columns: Sequence[str], what: str
) -> pd.DataFrame:
    """A CSV/Parquet table with ``columns`` (other columns kept), none of them empty, whose
    ``image_columns`` are made absolute against the table's folder and must exist."""
    table = read_any_table(source)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(
            f"missing columns {missing}; {what} has {list(columns)}",
            source=str(source),
            field=missing[0],
        )
    if table.empty:
        raise InputError("has no rows", source=str(source))
    table = table.reset_index(drop=True)
    for column in columns:
        empty = np.flatnonzero(table[column].isna().to_numpy())
        if len(empty):
            raise InputError("is empty", source=str(source), row=int(empty[0]) + 1, field=column)
        table[column] = table[column].astype(str)
    root = source.parent.resolve()
    for column in image_columns:
        table[column] = resolve_images(table[column], root, str(source), column)
    return table


def _index_from_folder(folder: Path) -> pd.DataFrame:
    suffixes = set(Image.registered_extensions())
    rows = [
        (scene.name, file.stem, str(file.resolve()))
        for scene in sorted(p for p in folder.iterdir() if p.is_dir())
        for file in sorted(scene.iterdir())
        if file.is_file() and file.suffix.lower() in suffixes
    ]
    if not rows:
        raise InputError(
            "no images found: an image folder holds <scene>/<condition>.<ext>", source=str(folder)
        )
    return _unique(pd.DataFrame(rows, columns=list(INDEX_COLUMNS)), str(folder))


def _unique(index: pd.DataFrame, source: str) -> pd.DataFrame:
    twice = index.duplicated(["scene", "condition"], keep="first").to_numpy()
    if twice.any():
        row = int(np.flatnonzero(twice)[0])
        scene, condition = index.iloc[row][["scene", "condition"]]
        raise InputError(
            f"image ({scene}, {condition}) is listed twice",
            source=source,
            row=row + 1,
            field="condition",
        )
    return index


# --- trials ---------------------------------------------------------------------------------


def read_pair_trials(
    tables: Sequence[str | Path | pd.DataFrame],
    *,
    screening: str | Path | pd.DataFrame | None = None,
    drop_gold: bool = True,
) -> pd.DataFrame:
    """The judgments the comparator learns from, from one or more trial tables.

    Returns one row per kept trial: ``observer, attribute, scene_A, condition_A, scene_B,
    condition_B, is_A_selected, tie, task`` (``task`` = ``per_scene`` or ``cross_content``).
    Left out: training trials (``is_training`` = 1, as ``scaling.scale`` leaves them out),
    golden trials (``is_gold`` = 1; their answer is known in advance) unless ``drop_gold`` is
    False, and flagged observers: ``screening`` is a table from ``jod scale --screen`` /
    ``scaling.screen_observers`` (columns ``observer, flagged``) or ``"auto"`` to screen here
    with ``scaling.screen_observers`` (per-scene and cross-content trials apart). What was
    left out is counted in ``attrs["jodkit"]["excluded"]``.
    """
    if not tables:
        raise InputError("no trial table given")
    frames = [_normalised(table) for table in tables]
    trials = pd.concat(frames, ignore_index=True)
    excluded = {"training": 0, "gold": 0, "flagged_observers": [], "flagged_trials": 0}
    for flag, name in (("is_training", "training"), ("is_gold", "gold")):
        if flag in trials.columns and (name == "training" or drop_gold):
            hit = trials[flag].fillna(0).astype(int) == 1
            excluded[name] = int(hit.sum())
            trials = trials[~hit]
    flagged = _flagged(trials, screening)
    hit = [
        trials["observer"].isin(flagged.get(task, ())) & (trials["task"] == task)
        for task in ("per_scene", "cross_content")
    ]
    hit = hit[0] | hit[1]
    excluded["flagged_observers"] = sorted({o for names in flagged.values() for o in names})
    excluded["flagged_trials"] = int(hit.sum())
    trials = trials[~hit]
    if trials.empty:
        raise InputError("no trials are left after leaving out training, gold and flagged ones")
    trials = trials[["observer", *PAIR_KEYS, "is_A_selected", "tie", "task"]]
    trials = trials.reset_index(drop=True)
    trials.attrs["jodkit"] = {"excluded": excluded}
    return trials


def _normalised(table: str | Path | pd.DataFrame) -> pd.DataFrame:
    """One validated trial table with ``scene_A``/``scene_B`` on every row."""
    name = "DataFrame" if isinstance(table, pd.DataFrame) else str(table)
    raw = table if isinstance(table, pd.DataFrame) else read_any_table(table)
    cross = "scene_A" in raw.columns or "scene_B" in raw.columns
    if not cross and "scene" not in raw.columns:
        raise InputError(
            "needs a 'scene' column (per-scene trials) or 'scene_A' and 'scene_B' "
            "(cross-content trials)",
            source=name,
            field="scene",
        )
    if "attribute" not in raw.columns:
        raise InputError(
            "needs an 'attribute' column: the comparator's question names the attribute",
            source=name,
            field="attribute",
        )
    by = ["scene_A", "scene_B", "attribute"] if cross else ["scene", "attribute"]
    frame = scaling.read_trials(raw, by=by, name=name)
    if cross:  # read_trials keys each image "<scene>/<condition>": keep the condition alone
        for side in SIDES:
            keys = split_image_keys(frame[f"condition_{side}"])
            frame[f"condition_{side}"] = keys["condition"].to_numpy()
    if not cross:
        frame["scene_A"] = frame["scene_B"] = frame["scene"]
    for column in ("tie", "is_training", "is_gold"):
        if column not in frame.columns:
            frame[column] = 0
    frame["task"] = "cross_content" if cross else "per_scene"
    return frame


def _flagged(
    trials: pd.DataFrame, screening: str | Path | pd.DataFrame | None
) -> dict[str, list[str]]:
    """Flagged observers per task, from a screening table or screened here."""
    if screening is None:
        return {}
    if isinstance(screening, str) and screening == "auto":
        out = {}
        for task, part in trials.groupby("task"):
            if part["observer"].nunique() < 3:
                continue
            table = scaling.screen_observers(_keyed(part), by=("scene", "attribute"))
            out[str(task)] = table.loc[table["flagged"], "observer"].astype(str).tolist()
        return out
    name = "DataFrame" if isinstance(screening, pd.DataFrame) else str(screening)
    table = screening if isinstance(screening, pd.DataFrame) else read_any_table(screening)
    for column in ("observer", "flagged"):
        if column not in table.columns:
            raise InputError(
                "missing column: a screening table (jod scale --screen) has observer, flagged",
                source=name,
                field=column,
            )
    names = table.loc[table["flagged"].astype(bool), "observer"].astype(str).tolist()
    return {"per_scene": names, "cross_content": names}


def _keyed(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials as ordinary trials over image keys: per-scene ones grouped by scene, cross-content
    ones as one graph (``scene`` = ``"*"``) per attribute."""
    out = trials[["observer", "attribute", "is_A_selected", "tie"]].copy()
    cross = trials["task"] == "cross_content"
    out["scene"] = np.where(cross, "*", trials["scene_A"])
    for side in SIDES:
        out[f"condition_{side}"] = [
            image_key(s, c)
            for s, c in zip(trials[f"scene_{side}"], trials[f"condition_{side}"], strict=True)
        ]
    return out


# --- pairs ----------------------------------------------------------------------------------


def pair_table(
    trials: pd.DataFrame,
    scene_scales: pd.DataFrame | None = None,
    cross_scales: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per unordered pair of images judged for an attribute.

    Columns: ``attribute, scene_A, condition_A, scene_B, condition_B, task, n_trials,
    n_ties, wins_A`` (ties split: half a win each way), ``p_observed`` (= wins_A / n_trials)
    and, with scale tables, ``jod_A, jod_B, p_thurstone`` = Phi((jod_A - jod_B) / SIGMA).
    ``scene_scales``: per-scene scale table (``scene, attribute, condition, jod``);
    ``cross_scales``: the cross-content one (``attribute``, ``condition`` =
    ``"<scene>/<condition>"``). A, B are in sorted key order.
    """
    keyed = _keyed(trials)
    images = {}
    for side in SIDES:
        images.update(
            zip(
                keyed[f"condition_{side}"],
                zip(trials[f"scene_{side}"], trials[f"condition_{side}"], strict=True),
                strict=True,
            )
        )
    rows = []
    for (task, attribute, _), group in keyed.assign(task=trials["task"]).groupby(
        ["task", "attribute", "scene"], sort=True
    ):
        keys = sorted(set(group["condition_A"]) | set(group["condition_B"]))
        counts = scaling.counts_from_trials(group, keys, ties="split")
        ties = scaling.counts_from_trials(group[group["tie"] == 1], keys, ties="split")
        totals = counts + counts.T
        i, j = np.nonzero(np.triu(totals > 0, k=1))
        first = [images[keys[k]] for k in i]
        second = [images[keys[k]] for k in j]
        rows.append(
            pd.DataFrame(
                {
                    "attribute": attribute,
                    "scene_A": [s for s, _ in first],
                    "condition_A": [c for _, c in first],
                    "scene_B": [s for s, _ in second],
                    "condition_B": [c for _, c in second],
                    "task": task,
                    "n_trials": totals[i, j],
                    "n_ties": 2 * ties[i, j],
                    "wins_A": counts[i, j],
                }
            )
        )
    pairs = pd.concat(rows, ignore_index=True)
    pairs["p_observed"] = pairs["wins_A"] / pairs["n_trials"]
    pairs = pairs[[*PAIR_KEYS, "task", "n_trials", "n_ties", "wins_A", "p_observed"]]
    if scene_scales is not None or cross_scales is not None:
        pairs = attach_scale(pairs, scene_scales, cross_scales)
    return pairs


def attach_scale(
    pairs: pd.DataFrame,
    scene_scales: pd.DataFrame | None,
    cross_scales: pd.DataFrame | None,
    prefix: str = "jod",
) -> pd.DataFrame:
    """``<prefix>_A``, ``<prefix>_B`` from the scale tables, and ``p_thurstone`` when
    ``prefix`` is ``jod``; every image of every pair must have a score."""
    lookup = {}
    for task, table, name in (
        ("per_scene", scene_scales, "per-scene scale table"),
        ("cross_content", cross_scales, "cross-content scale table"),
    ):
        if not (pairs["task"] == task).any():
            continue
        if table is None:
            raise InputError(f"the pairs include {task} trials: a {name} is needed")
        lookup[task] = _scores(table, cross=task == "cross_content", name=name)
    out = pairs.copy()
    for side in SIDES:
        values = np.full(len(out), np.nan)
        for task, scores in lookup.items():
            mask = (out["task"] == task).to_numpy()
            keys = list(
                zip(
                    out.loc[mask, "attribute"],
                    out.loc[mask, f"scene_{side}"],
                    out.loc[mask, f"condition_{side}"],
                    strict=True,
                )
            )
            values[mask] = [scores.get(k, np.nan) for k in keys]
        missing = np.flatnonzero(np.isnan(values))
        if len(missing):
            row = out.iloc[missing[0]]
            raise InputError(
                f"image ({row[f'scene_{side}']}, {row[f'condition_{side}']}) of attribute "
                f"{row['attribute']!r} has no score in the {row['task']} scale table"
                + (f" ({len(missing)} pairs like this)" if len(missing) > 1 else ""),
                field=f"condition_{side}",
            )
        out[f"{prefix}_{side}"] = values
    if prefix == "jod":
        out["p_thurstone"] = preference_probability(out["jod_A"] - out["jod_B"])
    return out


def _scores(table: pd.DataFrame, cross: bool, name: str) -> dict[tuple[str, str, str], float]:
    """(attribute, scene, condition) -> jod from a scale table."""
    need = ["attribute", "condition", "jod"] if cross else ["scene", "attribute", "condition"]
    need = list(dict.fromkeys([*need, "jod"]))
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise InputError(f"the {name} lacks columns {missing}", field=missing[0])
    if cross and "scene" not in table.columns:
        parts = table["condition"].astype(str).str.split("/", n=1, expand=True)
        if parts.shape[1] < 2 or parts[1].isna().any():
            raise InputError(
                f"the {name} needs conditions '<scene>/<condition>' (or a 'scene' column)",
                field="condition",
            )
        table = table.assign(scene=parts[0], condition=parts[1])
    return {
        (str(a), str(s), str(c)): float(j)
        for a, s, c, j in zip(
            table["attribute"], table["scene"], table["condition"], table["jod"], strict=True
        )
    }


def soft_target(pairs: pd.DataFrame, kind: Target = "thurstone", blend: float = 0.5) -> np.ndarray:
    """P(A better than B) per pair: observed proportion, Thurstone probability, or
    ``blend`` x proportion + (1 - ``blend``) x Thurstone."""
    if kind not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {kind!r}")
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"blend must be in [0, 1], not {blend}")
    if kind == "proportion":
        return pairs["p_observed"].to_numpy(float)
    if "p_thurstone" not in pairs.columns:
        raise InputError(f"target {kind!r} needs the scale tables (for p_thurstone)")
    thurstone = pairs["p_thurstone"].to_numpy(float)
    if kind == "thurstone":
        return thurstone
    return blend * pairs["p_observed"].to_numpy(float) + (1.0 - blend) * thurstone


def attach_images(pairs: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """``image_A``, ``image_B`` from the image index; every image must be in it, and the two
    images of a pair must be different files."""
    paths = dict(
        zip(zip(index["scene"], index["condition"], strict=True), index["image_path"], strict=True)
    )
    out = pairs.copy()
    for side in SIDES:
        keys = list(zip(out[f"scene_{side}"], out[f"condition_{side}"], strict=True))
        found = [paths.get(k) for k in keys]
        missing = [k for k, p in zip(keys, found, strict=True) if p is None]
        if missing:
            raise InputError(
                f"image ({missing[0][0]}, {missing[0][1]}) is judged in the trials but not in "
                f"the image index"
                + (f" ({len(set(missing))} images like this)" if len(set(missing)) > 1 else ""),
                field=f"condition_{side}",
            )
        out[f"image_{side}"] = found
    same = np.flatnonzero((out["image_A"] == out["image_B"]).to_numpy())
    if len(same):
        row = out.iloc[same[0]]
        raise InputError(
            f"({row['scene_A']}, {row['condition_A']}) and ({row['scene_B']}, "
            f"{row['condition_B']}) are the same image file {row['image_A']}: a pair needs two "
            "images",
            field="image_path",
        )
    return out


def pair_splits(
    pairs: pd.DataFrame,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    split_table: pd.DataFrame | None = None,
) -> pd.Series:
    """Split of each pair: the split of its scenes, ``mixed`` when they differ.

    Whole scenes are assigned by ``training.data.split_scenes`` (the score model's rule: the
    same scenes, fractions and seed give the same split), or read from ``split_table``
    (columns ``scene, split``: the ``split.csv`` of a score-model run, or a training table
    with a split column).
    """
    scenes = sorted(set(pairs["scene_A"]) | set(pairs["scene_B"]))
    if split_table is None:
        frame = pd.DataFrame({"scene": scenes})
        splits = split_scenes(frame, val_fraction, test_fraction, seed)
        assignment = dict(zip(scenes, splits, strict=True))
    else:
        assignment = scene_split_of(split_table)
        unknown = [s for s in scenes if s not in assignment]
        if unknown:
            raise InputError(
                f"scenes {unknown[:5]} have no split in the split table"
                + (f" ({len(unknown)} scenes)" if len(unknown) > 5 else ""),
                field="scene",
            )
    first = pairs["scene_A"].map(assignment)
    second = pairs["scene_B"].map(assignment)
    return first.where(first == second, MIXED)


def scene_split_of(table: pd.DataFrame, source: str = "split table") -> dict[str, str]:
    """scene -> split from a table with ``scene`` and ``split`` columns (one split per scene)."""
    for column in ("scene", "split"):
        if column not in table.columns:
            raise InputError("missing column", source=source, field=column)
    bad = sorted(set(table["split"].astype(str)) - set(SPLITS))
    if bad:
        raise InputError(
            f"split values must be {SPLITS}, found {bad}", source=source, field="split"
        )
    per_scene = table.groupby(table["scene"].astype(str))["split"].agg(lambda s: set(s.astype(str)))
    several = per_scene[per_scene.map(len) > 1]
    if len(several):
        raise InputError(
            f"scene {several.index[0]!r} is in several splits {sorted(several.iloc[0])}",
            source=source,
            field="split",
        )
    return {scene: next(iter(splits)) for scene, splits in per_scene.items()}


def pair_samples(pairs: pd.DataFrame, target: np.ndarray) -> pd.DataFrame:
    """Both orders of every pair: ``image_first, image_second, attribute, target`` (P(first
    better)), with the pair's other columns (``order`` 0 = A first, 1 = B first)."""
    target = np.asarray(target, dtype=float)
    forward = pairs.assign(
        image_first=pairs["image_A"], image_second=pairs["image_B"], target=target, order=0
    )
    backward = pairs.assign(
        image_first=pairs["image_B"], image_second=pairs["image_A"], target=1.0 - target, order=1
    )
    return pd.concat([forward, backward], ignore_index=True)
