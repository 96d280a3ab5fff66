"""Choosing the reference scene whose JOD unit and offset the unified scale adopts.

The paper picks it by hand (wide JOD range, diverse renditions). Rules offered here:
``range`` (widest per-scene JOD range), ``size`` (most images), ``connected`` (most
images in the cross-content set, so its own map is best determined), and ``auto``, which
sums the three criteria, each divided by its maximum over scenes. Every rule returns the
reason, which the unified table records in its metadata.
"""

from __future__ import annotations

import pandas as pd

from alignment.options import REFERENCE_RULES

RULES = REFERENCE_RULES


def choose_reference(
    scenes: pd.DataFrame,
    cross: pd.DataFrame,
    rule: str = "auto",
    eligible: list[str] | None = None,
) -> tuple[str, str]:
    """Pick the reference scene by ``rule``, or take ``rule`` itself as a scene name.

    ``scenes``/``cross``: per-scene and cross-content scale tables of one attribute (both
    with ``scene``, ``condition``, ``jod``). ``eligible``: the scenes a rule may pick (those
    with a sound slope, ``alignment.checks``); all when None or when none is. Returns
    ``(scene, reason)``.
    """
    names = sorted(scenes["scene"].astype(str).unique())
    if rule not in RULES:
        if rule not in names:
            raise ValueError(f"reference {rule!r} is neither a rule {RULES} nor a scene ({names})")
        return rule, "chosen by the user"
    left_out = sorted(set(names) - set(eligible or names))
    if len(left_out) == len(names):
        left_out = []
    crit = (
        pd.DataFrame(
            {
                "range": scenes.groupby("scene")["jod"].agg(lambda s: s.max() - s.min()),
                "size": scenes.groupby("scene").size(),
                "connected": cross.groupby("scene").size(),
            }
        )
        .reindex(names)
        .fillna(0.0)
    )
    if rule == "auto":
        score = (crit / crit.max().where(crit.max() > 0, 1.0)).sum(axis=1)
    else:
        score = crit[rule]
    best = str(score.drop(index=left_out).idxmax())  # ties: first scene by name
    row = crit.loc[best]
    reason = (
        f"rule '{rule}': JOD range {row['range']:.2f}, {int(row['size'])} images, "
        f"{int(row['connected'])} in the cross-content set"
    )
    if left_out:
        reason += f"; not eligible (unsound slope): {', '.join(left_out)}"
    return best, reason
