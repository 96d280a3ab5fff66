"""Build the small example portrait study offline.

Sources: scikit-image's sample photographs (shipped inside its wheel) or the images of a
folder the user names. Each scene is one source photograph with its own framing, exposure
and colour cast, so that scenes differ the way portrait scenes do; each scene gets the
rendition ladder of ``study.renditions``; every rendition is saved as PNG with a face (ROI)
crop from ``study.faces``.

Output folder layout::

    images/<scene>/<condition>.png   full renditions
    crops/<scene>/<condition>.png    ROI crops (same box for every rendition of a scene)
    manifest.csv                     one row per rendition (:data:`MANIFEST_COLUMNS` plus
                                     the ``RenditionParams`` fields)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from study.faces import find_face
from study.renditions import RenditionParams, ladder, render

MANIFEST_COLUMNS = (
    "scene",
    "condition",
    "image_path",
    "crop_path",
    "source",
    "framing",
    "exposure",
    "warmth",
    "roi_x",
    "roi_y",
    "roi_w",
    "roi_h",
    "roi_method",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class SceneSpec:
    """How a scene is made from its source photograph.

    ``framing``: fraction of the shorter side kept by a centred crop (1 = full frame).
    ``exposure``: gain on linear intensities. ``warmth``: red gain 1 + w, blue 1 - w.
    """

    source: str
    framing: float = 1.0
    exposure: float = 1.0
    warmth: float = 0.0


DEFAULT_SCENES = (
    SceneSpec("astronaut", 1.0, 1.0, 0.0),
    SceneSpec("astronaut", 0.6, 0.7, 0.08),
    SceneSpec("chelsea", 1.0, 1.2, -0.05),
    SceneSpec("coffee", 0.8, 0.85, 0.1),
    SceneSpec("rocket", 1.0, 1.1, -0.1),
    SceneSpec("cat", 0.7, 0.9, 0.05),
)


#: scikit-image sample photographs that make good scene sources (the learning tests' and the
#: pairwise benchmark's), and the three corners of their square crops.
SAMPLE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "immunohistochemistry",
    "cat",
    "coins",
    "moon",
    "hubble_deep_field",
    "retina",
    "clock",
)
CROP_CORNERS = ((0, 0), (1, 1), (0, 1))  # top-left, bottom-right, top-right


def photo_crops(photos: tuple[str, ...] = SAMPLE_PHOTOS):
    """``(photo, corner index, RGB crop)``: a square of 2/3 of the shorter side at each of
    :data:`CROP_CORNERS` of each photograph, so one photograph gives three scenes."""
    for name in photos:
        photo = _load(name)
        h, w = photo.shape[:2]
        side = min(h, w) * 2 // 3
        for k, (fy, fx) in enumerate(CROP_CORNERS):
            top, left = fy * (h - side), fx * (w - side)
            yield name, k, photo[top : top + side, left : left + side]


def _load(source: str) -> np.ndarray:
    """A scikit-image sample by name, or an image file, as RGB uint8."""
    path = Path(source)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    from skimage import data

    img = getattr(data, source)()
    return np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[..., :3]


def make_scene(image: np.ndarray, spec: SceneSpec, size: int) -> np.ndarray:
    """Frame, resize (longer side ``size``), expose and tint a source photograph."""
    h, w = image.shape[:2]
    side_h, side_w = int(h * spec.framing), int(w * spec.framing)
    y0, x0 = (h - side_h) // 2, (w - side_w) // 2
    img = image[y0 : y0 + side_h, x0 : x0 + side_w]
    scale = size / max(img.shape[:2])
    img = cv2.resize(
        img,
        (round(img.shape[1] * scale), round(img.shape[0] * scale)),
        interpolation=cv2.INTER_AREA,
    )
    lin = (img.astype(np.float32) / 255.0) ** 2.2 * spec.exposure
    lin *= np.array([1 + spec.warmth, 1.0, 1 - spec.warmth], np.float32)
    return np.clip(np.rint(np.clip(lin, 0, 1) ** (1 / 2.2) * 255), 0, 255).astype(np.uint8)


def folder_scenes(folder: Path, n_scenes: int) -> tuple[SceneSpec, ...]:
    """One scene per image of ``folder`` (sorted), cycling framing/exposure/colour."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    if n_scenes < 1:
        raise ValueError(f"the number of scenes must be at least 1, not {n_scenes}")
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    looks = DEFAULT_SCENES
    return tuple(
        SceneSpec(
            str(f),
            looks[i % len(looks)].framing,
            looks[i % len(looks)].exposure,
            looks[i % len(looks)].warmth,
        )
        for i, f in enumerate(files[:n_scenes])
    )


def build_example(
    out_dir: Path,
    scenes: tuple[SceneSpec, ...] = DEFAULT_SCENES,
    steps: list[RenditionParams] | None = None,
    size: int = 192,
    progress: bool = True,
) -> pd.DataFrame:
    """Write every scene's renditions and ROI crops; return (and write) the manifest."""
    out_dir = Path(out_dir)
    steps = steps or ladder((1.0, 0.6, 0.4, 0.25), (0.0, 0.03, 0.07))
    rows = []
    work = [(j, spec) for j, spec in enumerate(scenes)]
    for j, spec in tqdm(work, desc="example scenes", disable=not progress):
        base = make_scene(_load(spec.source), spec, size)
        roi = find_face(base)
        name = f"scene{j:02d}"
        for k, params in enumerate(steps):
            cond = f"r{k:02d}"
            img = render(base, params)
            rel_img, rel_crop = (
                Path("images", name, f"{cond}.png"),
                Path("crops", name, f"{cond}.png"),
            )
            for rel, pixels in ((rel_img, img), (rel_crop, roi.crop(img))):
                (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(out_dir / rel)
            rows.append(
                {
                    "scene": name,
                    "condition": cond,
                    "image_path": rel_img.as_posix(),
                    "crop_path": rel_crop.as_posix(),
                    "source": Path(spec.source).name,
                    "framing": spec.framing,
                    "exposure": spec.exposure,
                    "warmth": spec.warmth,
                    "roi_x": roi.x,
                    "roi_y": roi.y,
                    "roi_w": roi.w,
                    "roi_h": roi.h,
                    "roi_method": roi.method,
                }
                | params.as_dict()
            )
    manifest = pd.DataFrame(
        rows, columns=[*MANIFEST_COLUMNS, *(f.name for f in fields(RenditionParams))]
    )
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    return manifest
