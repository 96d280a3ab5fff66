"""Training tables, images and scene splits: validated once here, trusted afterwards.

Reads the exported training table (``scaling.formats.TRAINING_COLUMNS``; CSV or Parquet) or a
PIQ23-layout score file, checks every row, splits by scene and serves same-scene pairs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from scaling.errors import InputError
from scaling.formats import TRAINING_COLUMNS

#: PIQ23's published score-file columns, mapped to the training table's.
PIQ23_COLUMNS = {
    "IMAGE PATH": "image_path",
    "SCENE": "scene",
    "ATTRIBUTE": "attribute",
    "JOD": "jod",
    "JOD STD": "jod_std",
}
SPLITS = ("train", "val", "test")


def read_table(path: str | Path, image_root: str | Path | None = None) -> pd.DataFrame:
    """The training table with absolute image paths; bad rows raise :class:`InputError`.

    Image paths are resolved against ``image_root`` (default: the table's folder).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("training table not found", source=str(path))
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path)
    if set(PIQ23_COLUMNS) <= set(table.columns):
        table = table.rename(columns=PIQ23_COLUMNS)
        table["image_path"] = table["image_path"].astype(str).str.replace("\\", "/")
    return validate_table(table, str(path), Path(image_root) if image_root else path.parent)


JOD_LIMIT = 1000.0
"""Far beyond any JOD scale (a study spans tens of JOD): a larger value is a mistake, and
1e308 would overflow the label computations."""


def validate_table(table: pd.DataFrame, source: str, image_root: Path) -> pd.DataFrame:
    """Check columns, values and image files; rows are data rows from 1 (header excluded)."""
    missing = [c for c in TRAINING_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"missing columns {missing}; a training table has {list(TRAINING_COLUMNS)}",
            source=source,
        )
    table = table.reset_index(drop=True).copy()
    for field in ("jod", "jod_std"):
        values = pd.to_numeric(table[field], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))
        if len(bad):
            raise InputError(
                f"{field} is missing, NaN or not a number ({table[field].iloc[bad[0]]!r})"
                + (f"; {len(bad)} rows like this" if len(bad) > 1 else ""),
                source=source,
                row=int(bad[0]) + 1,
                field=field,
            )
        huge = np.flatnonzero(np.abs(values.to_numpy(dtype=float)) > JOD_LIMIT)
        if len(huge):
            raise InputError(
                f"{field} {values.iloc[huge[0]]:g} is no JOD (a scale spans tens of JOD; "
                f"|{field}| must stay within {JOD_LIMIT:g})",
                source=source,
                row=int(huge[0]) + 1,
                field=field,
            )
        table[field] = values.astype(float)
    negative = np.flatnonzero(table["jod_std"].to_numpy() < 0)
    if len(negative):
        raise InputError(
            "jod_std is negative", source=source, row=int(negative[0]) + 1, field="jod_std"
        )
    for field in ("scene", "attribute", "image_path"):
        empty = np.flatnonzero(table[field].isna().to_numpy())
        if len(empty):
            raise InputError("empty value", source=source, row=int(empty[0]) + 1, field=field)
        table[field] = table[field].astype(str)
    table["image_path"] = resolve_images(table["image_path"], image_root, source)
    return table


def resolve_images(
    paths: Sequence[str], root: Path, source: str, field: str = "image_path"
) -> list[str]:
    """Image paths, relative ones joined to ``root``; the first missing file is an error that
    names its row (data rows from 1, the header excluded) and ``field``."""
    resolved = [p if Path(p).is_absolute() else str(root / p) for p in paths]
    absent = [i for i, p in enumerate(resolved) if not Path(p).is_file()]
    if absent:
        raise InputError(
            f"image file {resolved[absent[0]]} not found"
            + (f" ({len(absent)} images missing)" if len(absent) > 1 else ""),
            source=source,
            row=absent[0] + 1,
            field=field,
        )
    return resolved


def split_scenes(
    table: pd.DataFrame,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    split_column: str | None = None,
) -> pd.Series:
    """'train', 'val' or 'test' per row; whole scenes go to one split (unseen test scenes)."""
    if split_column:
        if split_column not in table.columns:
            raise InputError(f"split column {split_column!r} not in the table", field=split_column)
        bad = set(table[split_column].astype(str)) - set(SPLITS)
        if bad:
            raise InputError(
                f"split values must be {SPLITS}, found {sorted(bad)}", field=split_column
            )
        return table[split_column].astype(str)
    scenes = sorted(table["scene"].unique())
    random.Random(seed).shuffle(scenes)
    n_test = math.floor(len(scenes) * test_fraction + 0.5) if test_fraction else 0
    n_val = math.floor(len(scenes) * val_fraction + 0.5) if val_fraction else 0
    empty = [
        name
        for name, fraction, count in (("val", val_fraction, n_val), ("test", test_fraction, n_test))
        if fraction and not count
    ]
    if len(scenes) - n_test - n_val < 1 or empty:
        raise InputError(
            f"{len(scenes)} scenes cannot be split into train/val/test with fractions "
            f"{val_fraction}/{test_fraction}"
            + (f" (the {' and '.join(empty)} split would be empty)" if empty else "")
            + "; add scenes, or set data.val_fraction / data.test_fraction to 0 to go without",
            field="scene",
        )
    assignment = {s: "test" for s in scenes[:n_test]}
    assignment.update({s: "val" for s in scenes[n_test : n_test + n_val]})
    return table["scene"].map(lambda s: assignment.get(s, "train"))


def pair_indices(table: pd.DataFrame, scope: str, seed: int) -> list[tuple[int, int]]:
    """One pair per row: the row and a random partner of the same attribute and scene
    (``scope='scene'``) or data set; rows without a partner are paired with themselves."""
    rng = np.random.default_rng(seed)
    keys = ["attribute", "scene"] if scope == "scene" else ["attribute"]
    pairs = []
    for _, group in table.groupby(keys, sort=True):
        idx = group.index.to_numpy()
        for i in idx:
            others = idx[idx != i]
            pairs.append((int(i), int(rng.choice(others)) if len(others) else int(i)))
    order = rng.permutation(len(pairs))
    return [pairs[k] for k in order]


def load_image(
    path: str | Path, size: int, roi: tuple[int, int, int, int] | None = None
) -> list[Image.Image]:
    """The views of one image: the ROI crop (when given) then the full image, each padded to
    square with the mean colour and resized to ``size``."""
    try:
        with Image.open(path) as raw:
            image = raw.convert("RGB")
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read image: {error}", source=str(path)) from error
    views = [image.crop(roi)] if roi else []
    views.append(image)
    return [pad_to_square(v).resize((size, size), Image.Resampling.BICUBIC) for v in views]


def pad_to_square(image: Image.Image) -> Image.Image:
    """DeQA's preprocessing: centre the image on a square canvas of its mean colour."""
    width, height = image.size
    if width == height:
        return image
    mean = tuple(np.rint(np.asarray(image).reshape(-1, 3).mean(axis=0)).astype(int).tolist())
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), mean)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def parse_roi(value: object, source: str, row: int) -> tuple[int, int, int, int] | None:
    """An ROI cell 'x0,y0,x1,y1' (pixels); empty means none."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    try:
        box = tuple(int(float(v)) for v in str(value).split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
        raise InputError(
            f"ROI must be 'x0,y0,x1,y1' with x1 > x0, y1 > y0, not {value!r}",
            source=source,
            row=row,
            field="roi",
        )
    return box
