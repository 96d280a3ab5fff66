"""Straight-line fits y = a x + b between a scene's scale (x) and the cross-content scale (y).

Three estimators, from the paper's to the statistically honest one:

``paper``
    ordinary least squares, as in the DXOMARK paper: x is taken as exact, every image
    counts the same.
``weighted``
    weighted least squares with weights 1 / std(y)^2: images measured precisely on the
    cross-content scale count more. x is still taken as exact.
``eiv``
    errors in variables (York et al. 2004, the maximum-likelihood line when both x and y
    carry Gaussian errors with known per-point variances; the same fit as ODR/Deming with
    per-point weights). Unlike OLS it does not shrink the slope towards 0 when x is noisy.
``offset``
    a = 1, b = mean(y - x): for scales that already share the JOD unit (same observers,
    same task), only the offset is estimated. Stable with very few cross-content images,
    where a free slope is ill-conditioned (``docs/alignment.md``, ALSaRR check).

Inputs are numpy arrays; the caller (``alignment.align``) has validated them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignment.options import LINE_METHODS as METHODS

_STD_FLOOR = 1e-3  # JOD; keeps weights finite for a score pinned exactly


@dataclass(frozen=True)
class LineFit:
    """y = a x + b, with the root-mean-square residual of the fitted points."""

    a: float
    b: float
    rmse: float

    def residuals(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return y - (self.a * x + self.b)


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    xm = np.sum(w * x) / np.sum(w)
    ym = np.sum(w * y) / np.sum(w)
    a = np.sum(w * (x - xm) * (y - ym)) / np.sum(w * (x - xm) ** 2)
    return float(a), float(ym - a * xm)


def _york(
    x: np.ndarray, y: np.ndarray, sx: np.ndarray, sy: np.ndarray, iters: int = 200
) -> tuple[float, float]:
    """York's iteration for the ML line with independent x and y errors."""
    wx, wy = 1.0 / sx**2, 1.0 / sy**2
    a, _ = _wls(x, y, wy)
    for _ in range(iters):
        w = wx * wy / (wx + a**2 * wy)
        xm, ym = np.sum(w * x) / np.sum(w), np.sum(w * y) / np.sum(w)
        u, v = x - xm, y - ym
        beta = w * (u / wy + a * v / wx)
        a_new = float(np.sum(w * beta * v) / np.sum(w * beta * u))
        if abs(a_new - a) < 1e-12 * max(1.0, abs(a)):
            a = a_new
            break
        a = a_new
    w = wx * wy / (wx + a**2 * wy)
    xm, ym = np.sum(w * x) / np.sum(w), np.sum(w * y) / np.sum(w)
    return a, float(ym - a * xm)


def fit_line(
    x: np.ndarray,
    y: np.ndarray,
    sx: np.ndarray | None = None,
    sy: np.ndarray | None = None,
    method: str = "paper",
) -> LineFit:
    """Fit y = a x + b by ``method`` (one of :data:`METHODS`).

    ``sx``/``sy`` are the JOD standard deviations of x and y, needed by ``weighted``
    (``sy``) and ``eiv`` (both).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    if method == "paper":
        a, b = _wls(x, y, np.ones_like(x))
    elif method == "offset":
        a, b = 1.0, float(np.mean(y - x))
    else:
        if sy is None or (method == "eiv" and sx is None):
            raise ValueError(f"method {method!r} needs the JOD standard deviations")
        sy = np.maximum(np.asarray(sy, float), _STD_FLOOR)
        if method == "weighted":
            a, b = _wls(x, y, 1.0 / sy**2)
        else:
            a, b = _york(x, y, np.maximum(np.asarray(sx, float), _STD_FLOOR), sy)
    fit = LineFit(a, b, 0.0)
    return LineFit(a, b, float(np.sqrt(np.mean(fit.residuals(x, y) ** 2))))
