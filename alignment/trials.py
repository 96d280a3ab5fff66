"""The two trial tables an alignment starts from, checked together.

Per-scene trials carry ``scene``; cross-content trials carry ``scene_A``/``scene_B`` (what
``jod export`` writes as ``trials_per_scene.csv`` and ``trials_cross_content.csv``). Both
are validated by ``scaling.io`` and their images keyed ``"<scene>/<condition>"``
(``scaling.formats`` image keys), so that an image means the same thing in both. Rows named
in errors are rows of the files as given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.errors import InputError
from scaling.formats import CROSS_SCENE_COLUMNS
from scaling.io import key_images, validate_trials

SCENE_TRIALS = "per-scene trials"
CROSS_TRIALS = "cross-content trials"


def check_trial_pair(
    scene_trials: pd.DataFrame,
    cross_trials: pd.DataFrame,
    sources: tuple[str, str] = (SCENE_TRIALS, CROSS_TRIALS),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated copies of both tables, ``condition_A``/``condition_B`` as image keys.

    Refuses a per-scene table with ``scene_A``/``scene_B``, a cross-content table without
    them, several attributes on one side only, and a cross-content image (of an attribute)
    that no per-scene trial (of that attribute) shows.
    """
    crossed = [c for c in CROSS_SCENE_COLUMNS if c in scene_trials.columns]
    if crossed and "scene" not in scene_trials.columns:  # both: scaling.io says it is mixed
        raise InputError(
            f"per-scene trials carry 'scene', not '{crossed[0]}': give the cross-content "
            "trials as the second table",
            source=sources[0],
            field=crossed[0],
        )
    for column in CROSS_SCENE_COLUMNS:
        if column not in cross_trials.columns:
            raise InputError(
                "missing column: cross-content trials carry 'scene_A' and 'scene_B'",
                source=sources[1],
                field=column,
            )
    scenes = validate_trials(scene_trials, by=("scene",), source=sources[0])
    key_images(scenes, sources[0], ("scene", "scene"))
    cross = validate_trials(cross_trials, source=sources[1])
    _check_attributes(scenes, cross, sources)
    by_attr = "attribute" in scenes.columns and "attribute" in cross.columns
    known = set(scenes["condition_A"]) | set(scenes["condition_B"])
    if by_attr:
        attr = scenes["attribute"].astype(str)
        known = set(zip(attr, scenes["condition_A"], strict=True))
        known |= set(zip(attr, scenes["condition_B"], strict=True))
    for side in ("A", "B"):
        keys = cross[f"condition_{side}"]
        found = (
            pd.Series(list(zip(cross["attribute"].astype(str), keys, strict=True))).isin(known)
            if by_attr
            else keys.isin(known)
        )
        if not found.all():
            row = int(np.flatnonzero(~found.to_numpy())[0])
            where = f" (attribute {cross['attribute'].iloc[row]!r})" if by_attr else ""
            raise InputError(
                f"image {keys.iloc[row]!r}{where} never appears in the per-scene trials",
                source=sources[1],
                row=row + 1,
                field=f"condition_{side}",
            )
    return scenes, cross


def _check_attributes(scenes: pd.DataFrame, cross: pd.DataFrame, sources: tuple[str, str]) -> None:
    """An ``attribute`` column on one side only is fine when it holds one attribute."""
    for (one, name), (other, other_name) in (
        ((scenes, sources[0]), (cross, sources[1])),
        ((cross, sources[1]), (scenes, sources[0])),
    ):
        if "attribute" in one.columns and "attribute" not in other.columns:
            values = sorted(one["attribute"].astype(str).unique())
            if len(values) > 1:
                raise InputError(
                    f"has no 'attribute' column, but {name} holds {len(values)} attributes "
                    f"{values}: give the attribute of every trial",
                    source=other_name,
                    field="attribute",
                )
