"""Table formats: the contract between jodkit's stages.

Every stage reads and writes these layouts, and only these. Each is defined once here and
imported by the stages that read it; nothing else restates the column lists.

Trials (long format, one row per judgment; the layout pwcmp and ASAP use)
    ``observer, session, scene, attribute, condition_A, condition_B, is_A_selected``;
    ``session``, ``scene`` and ``attribute`` may be absent when there is only one.
    optional: ``tie, left_shown, rt_ms, is_gold, is_training, repeat_of, timestamp``.
    Cross-content trials carry ``scene_A`` and ``scene_B`` instead of ``scene``: rows with
    ``scene_A == scene_B`` are within-scene trials, the others compare two scenes.
    ``is_A_selected`` is 1 when A was judged better, 0 when B was; with ``tie`` = 1 it is
    ignored. ``left_shown`` is ``"A"`` or ``"B"``.

Scale table (one row per condition and group)
    the group keys (e.g. ``scene, attribute``), then ``condition, jod, jod_std, ci_low,
    ci_high, n_comparisons``, then diagnostics: ``n_wins, n_losses, component,
    determined``. ``jod_std``/``ci_*`` are NaN without a bootstrap. ``component`` numbers
    the connected components of the group's comparison graph (0 = the largest); scores in
    different components share no offset. ``determined`` is False where the data do not pin
    the score (outside the main component's determined core: the largest set of conditions
    joined by cycles of wins). ``bound`` is ``two-sided`` where ``jod`` is the optimum of
    pwcmp's objective (outside the core, its Gaussian prior holds it), and ``lower``,
    ``upper`` or ``none`` where that optimum lies at infinity above, below or either way
    and ``jod`` is a placement in the data's order; their ``ci_high`` (``ci_low``) is then
    infinite.

Image keys (cross-content data)
    An image is a condition of a scene. Where images of several scenes meet in one table
    (cross-content trials and their scales, alignment, the annotation app's exports) each
    is named by the one key :func:`image_key` = ``"<scene>/<condition>"``; scene names
    must not contain ``/`` (conditions may: the key splits at the first ``/``).
    ``jod scale`` on a cross-content trial table scales all its images as one graph per
    group (default: per ``attribute``), each image's key as its condition. A table with
    both ``scene`` and ``scene_A``/``scene_B`` is refused: scale the two kinds apart, or
    write every trial in the cross-content form to scale them as one graph.

Count matrices
    square CSV with condition names as the header row and the first column; entry (i, j) =
    times i was preferred over j. Or a MATLAB ``.mat`` file holding one such matrix.

Training table (exported by the pipeline, read by ``training``)
    ``image_path, scene, attribute, jod, jod_std``.

Run metadata travels with each table: in ``DataFrame.attrs["jodkit"]``, in the Parquet
schema, and for CSV in a sidecar file ``<name>.meta.json``.
"""

from __future__ import annotations

import pandas as pd

TRIAL_REQUIRED = (
    "observer",
    "condition_A",
    "condition_B",
    "is_A_selected",
)
TRIAL_OPTIONAL = (
    "session",
    "attribute",
    "scene",
    "scene_A",
    "scene_B",
    "tie",
    "left_shown",
    "rt_ms",
    "is_gold",
    "is_training",
    "repeat_of",
    "timestamp",
)


def trial_columns(cross_content: bool = False) -> tuple[str, ...]:
    """Canonical column order of a trial table, as exports and simulators write it."""
    scenes = ("scene_A", "scene_B") if cross_content else ("scene",)
    extras = ("tie", "left_shown", "rt_ms", "is_gold", "is_training", "repeat_of", "timestamp")
    return ("observer", "session", *scenes, "attribute", *TRIAL_REQUIRED[1:], *extras)


CROSS_SCENE_COLUMNS = ("scene_A", "scene_B")
IMAGE_KEY_SEP = "/"


def image_key(scene: str, condition: str) -> str:
    """The key of one image where several scenes meet: ``"<scene>/<condition>"``."""
    return f"{scene}{IMAGE_KEY_SEP}{condition}"


def image_keys(scenes: pd.Series, conditions: pd.Series) -> pd.Series:
    """:func:`image_key` of each (scene, condition) pair, as a string Series."""
    scenes = pd.Series(scenes).astype(str)
    return scenes.str.cat(pd.Series(conditions).astype(str).to_numpy(), sep=IMAGE_KEY_SEP)


def split_image_keys(keys: pd.Series) -> pd.DataFrame:
    """``scene`` and ``condition`` of each image key; NaN in both where a key is malformed."""
    parts = pd.Series(keys).astype(str).str.partition(IMAGE_KEY_SEP)
    bad = (parts[1] == "") | (parts[0] == "") | (parts[2] == "")
    return pd.DataFrame({"scene": parts[0], "condition": parts[2]}).mask(bad)


def scene_name_problem(scene: object) -> str | None:
    """Why ``scene`` cannot be part of an image key, or None when it can."""
    text = str(scene)
    if not text:
        return "scene name is empty"
    if IMAGE_KEY_SEP in text:
        return (
            f"scene name {text!r} contains {IMAGE_KEY_SEP!r}, which separates scene and "
            "condition in image keys"
        )
    return None


SCALE_VALUE_COLUMNS = ("condition", "jod", "jod_std", "ci_low", "ci_high", "n_comparisons")
SCALE_DIAGNOSTIC_COLUMNS = ("n_wins", "n_losses", "component", "determined", "bound")
SCALE_COLUMNS = SCALE_VALUE_COLUMNS + SCALE_DIAGNOSTIC_COLUMNS

TRAINING_COLUMNS = ("image_path", "scene", "attribute", "jod", "jod_std")
