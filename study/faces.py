"""Region-of-interest (face) boxes for portrait crops.

The detector is OpenCV's frontal-face Haar cascade, whose model file ships inside the
opencv 4 wheels (``cv2.data.haarcascades``). OpenCV 5 wheels dropped the cascade API and
its files, so there we use scikit-image's LBP frontal-face cascade, which also ships inside
its wheel: both work offline. When no face is found the ROI falls back to a centred
square, and a warning is logged: the crop is then a guess.
Input: an H x W x 3 uint8 image; output: an :class:`Roi` box.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)
_HAAR_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Roi:
    """A box in pixels and how it was found (``haar`` or ``centre``)."""

    x: int
    y: int
    w: int
    h: int
    method: str  # haar, lbp or centre

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.h, self.x : self.x + self.w]


Box = tuple[int, int, int, int]  # x, y, w, h


def _haar_faces(grey: np.ndarray, min_side: int) -> list[Box] | None:
    """Faces by OpenCV's Haar cascade, or None where this OpenCV lacks it."""
    path = os.path.join(getattr(cv2.data, "haarcascades", ""), _HAAR_FILE)
    if not hasattr(cv2, "CascadeClassifier") or not os.path.exists(path):
        return None
    found = cv2.CascadeClassifier(path).detectMultiScale(grey, 1.1, 5, minSize=(min_side, min_side))
    return [tuple(int(v) for v in f) for f in found]


def _lbp_faces(grey: np.ndarray, min_side: int) -> list[Box]:
    """Faces by scikit-image's LBP cascade."""
    from skimage import data
    from skimage.feature import Cascade

    found = Cascade(data.lbp_frontal_face_cascade_filename()).detect_multi_scale(
        img=grey,
        scale_factor=1.2,
        step_ratio=1,
        min_size=(min_side, min_side),
        max_size=grey.shape[:2],
    )
    return [(d["c"], d["r"], d["width"], d["height"]) for d in found]


def find_face(image: np.ndarray, margin: float = 0.3, centre_fraction: float = 0.5) -> Roi:
    """The largest detected face, grown by ``margin`` on each side; else a centre crop."""
    h, w = image.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    min_side = max(24, min(h, w) // 8)
    faces = _haar_faces(grey, min_side)
    method = "haar"
    if faces is None:
        faces, method = _lbp_faces(grey, min_side), "lbp"
    if faces:
        fx, fy, fw, fh = max(faces, key=lambda f: f[2] * f[3])
        dx, dy = int(fw * margin), int(fh * margin)
        x0, y0 = max(0, fx - dx), max(0, fy - dy)
        x1, y1 = min(w, fx + fw + dx), min(h, fy + fh + dy)
        return Roi(int(x0), int(y0), int(x1 - x0), int(y1 - y0), method)
    side = int(min(h, w) * centre_fraction)
    log.warning("no face found in a %dx%d image; using a centred %d px crop", w, h, side)
    return Roi((w - side) // 2, (h - side) // 2, side, side, "centre")
