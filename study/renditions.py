"""Synthetic renditions: a quality ladder made from one good photograph.

The industrial portrait paper (METHODS.md section 5) filled gaps in each scene's quality
range by subsampling, slight sharpening and Gaussian noise of fixed variance applied to
high-quality references; we add denoising-like smoothing (texture loss) and JPEG. Every
operation takes explicit parameters, and :class:`RenditionParams` records them, so a
rendition can be rebuilt from its manifest row alone.

Input: an image array (H x W or H x W x 3, uint8 or float in [0, 1]).
Output: a uint8 array of the same shape.

The pipeline order is fixed and mirrors a camera: subsample (optics/resolution) ->
smoothing (noise reduction removing texture) -> sharpening -> sensor-like noise -> JPEG.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np


@dataclass(frozen=True)
class RenditionParams:
    """Explicit parameters of one rendition (identity by default).

    ``scale``: subsampling factor in (0, 1]; the image is shrunk by it (area averaging)
    and enlarged back to its size (bicubic), losing detail.
    ``smooth_sigma``: Gaussian blur std in pixels (0 = none), the texture loss of
    aggressive denoising.
    ``sharpen``: unsharp-mask amount (0 = none; 0.3-1 is "slight").
    ``noise_sigma``: std of added Gaussian noise, in units of the full intensity range
    [0, 1] (0 = none); the variance is fixed over the image.
    ``jpeg_quality``: 1-100 JPEG quality, or 0 for no compression.
    ``seed``: seeds the noise so a rendition is reproducible.
    """

    scale: float = 1.0
    smooth_sigma: float = 0.0
    sharpen: float = 0.0
    noise_sigma: float = 0.0
    jpeg_quality: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "scale": 0.0 < self.scale <= 1.0,
            "smooth_sigma": 0.0 <= self.smooth_sigma <= 50.0,
            "sharpen": 0.0 <= self.sharpen <= 5.0,
            "noise_sigma": 0.0 <= self.noise_sigma <= 1.0,
            "jpeg_quality": self.jpeg_quality == 0 or 1 <= self.jpeg_quality <= 100,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not np.isfinite(value)):
                raise ValueError(f"rendition parameter '{name}' out of range: {value!r}")

    def as_dict(self) -> dict[str, float | int]:
        """The parameters as a flat dict: one manifest row."""
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> RenditionParams:
        """Rebuild from a manifest row (extra keys ignored)."""
        ints = ("jpeg_quality", "seed")
        return cls(
            **{
                f.name: (int if f.name in ints else float)(row[f.name])
                for f in fields(cls)
                if f.name in row
            }
        )


def _as_float(image: np.ndarray) -> np.ndarray:
    """Validate the input image and return it as float32 in [0, 1]."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be H x W or H x W x 3, got shape {image.shape}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"image too small to render: {image.shape[:2]}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image dtype must be uint8 or float, got {image.dtype}")
    if not np.all(np.isfinite(image)) or image.min() < 0.0 or image.max() > 1.0:
        raise ValueError("float image values must be finite and in [0, 1]")
    return image.astype(np.float32)


def subsample(img: np.ndarray, scale: float) -> np.ndarray:
    """Shrink by ``scale`` and enlarge back: resolution loss at unchanged size."""
    if scale >= 1.0:
        return img
    h, w = img.shape[:2]
    small = cv2.resize(
        img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing: the texture loss of a strong denoiser."""
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0 else img


def sharpen(img: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask: img + amount * (img - blur(img))."""
    if amount <= 0:
        return img
    return img + amount * (img - cv2.GaussianBlur(img, (0, 0), sigma))


def add_noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Add Gaussian noise of fixed variance sigma^2 (intensity range [0, 1])."""
    if sigma <= 0:
        return img
    rng = np.random.default_rng(seed)
    return img + rng.normal(0.0, sigma, img.shape).astype(np.float32)


def jpeg(img_u8: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at ``quality`` (1-100)."""
    if quality <= 0:
        return img_u8
    bgr = img_u8[..., ::-1] if img_u8.ndim == 3 else img_u8
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV failure, not a user error
        raise RuntimeError("JPEG encoding failed")
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out[..., ::-1].copy() if img_u8.ndim == 3 else out


def render(image: np.ndarray, params: RenditionParams) -> np.ndarray:
    """Apply the rendition pipeline; returns uint8 with the input's shape."""
    img = _as_float(image)
    img = subsample(img, params.scale)
    img = smooth(img, params.smooth_sigma)
    img = sharpen(img, params.sharpen)
    img = add_noise(img, params.noise_sigma, params.seed)
    out = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return jpeg(out, params.jpeg_quality)


def ladder(
    detail_levels: Iterable[float] = (1.0, 0.7, 0.5, 0.35, 0.25),
    noise_levels: Iterable[float] = (0.0, 0.02, 0.05, 0.09),
    seed: int = 0,
) -> list[RenditionParams]:
    """A grid ladder: every subsampling level crossed with every noise level.

    Detail and noise vary independently so that each attribute has its own quality
    range. Slight sharpening (0.3) accompanies the subsampled levels, as in the paper;
    smoothing grows as the noise grows (a denoiser's trade-off) and the strongest noise
    level also gets JPEG 60.
    """
    noise_levels = list(noise_levels)
    out = []
    for i, scale in enumerate(detail_levels):
        for k, noise in enumerate(noise_levels):
            out.append(
                RenditionParams(
                    scale=float(scale),
                    smooth_sigma=0.4 * k,
                    sharpen=0.3 if scale < 1.0 else 0.0,
                    noise_sigma=float(noise),
                    jpeg_quality=60 if k == len(noise_levels) - 1 and k > 0 else 0,
                    seed=seed + 1000 * i + k,
                )
            )
    return out
