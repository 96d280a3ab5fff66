"""Renditions: each operation degrades the attribute it targets, and nothing else much."""

import numpy as np
import pytest
from skimage import data

from study.renditions import RenditionParams, ladder, render


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[100:356, 100:356]


def _detail(img: np.ndarray) -> float:
    """High-frequency energy: mean absolute Laplacian of the grey image."""
    g = img.astype(float).mean(axis=2)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


def test_identity_keeps_image(photo):
    out = render(photo, RenditionParams())
    assert out.dtype == np.uint8 and out.shape == photo.shape
    assert np.array_equal(out, photo)


def test_subsampling_removes_detail_monotonically(photo):
    details = [_detail(render(photo, RenditionParams(scale=s))) for s in (1.0, 0.6, 0.3)]
    assert details[0] > details[1] > details[2]
    assert details[2] < 0.6 * details[0]


def test_noise_has_the_requested_std(photo):
    flat = np.full((128, 128, 3), 128, np.uint8)
    out = render(flat, RenditionParams(noise_sigma=0.05, seed=3)).astype(float)
    assert out.std() == pytest.approx(0.05 * 255, rel=0.05)
    again = render(flat, RenditionParams(noise_sigma=0.05, seed=3))
    assert np.array_equal(out, again)
    other = render(flat, RenditionParams(noise_sigma=0.05, seed=4))
    assert not np.array_equal(out, other)


def test_smoothing_and_sharpening_move_detail_opposite_ways(photo):
    base = _detail(photo)
    assert _detail(render(photo, RenditionParams(smooth_sigma=1.5))) < 0.7 * base
    assert _detail(render(photo, RenditionParams(sharpen=1.0))) > 1.2 * base


def test_jpeg_changes_image_but_keeps_it_close(photo):
    out = render(photo, RenditionParams(jpeg_quality=20))
    diff = np.abs(out.astype(float) - photo.astype(float)).mean()
    assert 0.5 < diff < 15


def test_float_and_grey_inputs(photo):
    grey = photo.mean(axis=2) / 255.0
    out = render(grey, RenditionParams(scale=0.5))
    assert out.shape == grey.shape and out.dtype == np.uint8


def test_manifest_round_trip():
    p = RenditionParams(scale=0.5, smooth_sigma=0.8, sharpen=0.3, noise_sigma=0.02, jpeg_quality=70)
    row = {k: str(v) for k, v in p.as_dict().items()} | {"image": "x.png"}
    assert RenditionParams.from_dict(row) == p


def test_ladder_covers_grid_with_distinct_params():
    steps = ladder(detail_levels=(1.0, 0.5), noise_levels=(0.0, 0.03, 0.08))
    assert len(steps) == 6 and len(set(steps)) == 6
    assert {s.scale for s in steps} == {1.0, 0.5}
    assert steps[0] == RenditionParams(seed=steps[0].seed)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"scale": 0.0}, "scale"),
        ({"scale": 1.5}, "scale"),
        ({"noise_sigma": -0.1}, "noise_sigma"),
        ({"smooth_sigma": float("nan")}, "smooth_sigma"),
        ({"jpeg_quality": 101}, "jpeg_quality"),
        ({"sharpen": -1.0}, "sharpen"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        RenditionParams(**kwargs)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((32, 32, 4), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.uint8), "too small"),
        (np.full((32, 32), 2.0), r"\[0, 1\]"),
        (np.zeros((32, 32), np.int32), "dtype"),
    ],
)
def test_bad_images_are_rejected(image, match):
    with pytest.raises(ValueError, match=match):
        render(image, RenditionParams())
