"""Label formulas checked against hand-computed cases."""

import math

import numpy as np
import pytest

from training.labels import (
    JodRescaling,
    make_label,
    one_hot_label,
    soft_label,
    two_level_label,
)

K = np.arange(1, 6)


def _pdf(x: float, mu: float, sigma: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def _cdf(x: float, mu: float, sigma: float) -> float:
    return 0.5 * (1 + math.erf((x - mu) / (sigma * math.sqrt(2))))


def test_rescaling_maps_range_to_levels_and_back():
    r = JodRescaling.fit(np.array([-3.0, 0.0, 5.0]))
    assert (r.jod_min, r.jod_max) == (-3.0, 5.0)
    np.testing.assert_allclose(r.to_level([-3.0, 1.0, 5.0]), [1.0, 3.0, 5.0])
    np.testing.assert_allclose(r.std_to_level([2.0]), [1.0])
    np.testing.assert_allclose(r.to_jod(r.to_level([0.7, -2.2])), [0.7, -2.2])
    np.testing.assert_allclose(r.std_to_jod([1.0]), [2.0])
    assert JodRescaling.model_validate_json(r.model_dump_json()) == r


def test_rescaling_rejects_a_flat_or_nonfinite_range():
    with pytest.raises(ValueError, match="at least two distinct JOD"):
        JodRescaling.fit(np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        JodRescaling(jod_min=float("nan"), jod_max=1.0)


def test_two_level_interpolates_between_neighbours():
    np.testing.assert_allclose(two_level_label(3.3), [0, 0, 0.7, 0.3, 0], atol=1e-12)
    np.testing.assert_allclose(two_level_label(5.0), [0, 0, 0, 0, 1])
    np.testing.assert_allclose(two_level_label(1.0), [1, 0, 0, 0, 0])
    assert (K * two_level_label(2.37)).sum() == pytest.approx(2.37)


def test_one_hot_takes_the_nearest_level():
    np.testing.assert_allclose(one_hot_label(3.6), [0, 0, 0, 1, 0])
    np.testing.assert_allclose(one_hot_label(1.2), [1, 0, 0, 0, 0])


def test_soft_pdf_matches_hand_computed_fix_up():
    mu, sigma = 2.5, 0.8
    p = np.array([_pdf(k, mu, sigma) for k in K])
    a, b = p.sum(), (K * p).sum()
    alpha = (mu - 3) / (b - 3 * a)
    beta = (1 - alpha * a) / 5
    expected = alpha * p + beta
    assert expected.min() > -1e-12  # the fix-up holds without clipping here
    q = soft_label(mu, sigma, "pdf")
    np.testing.assert_allclose(q, np.clip(expected, 0, None), atol=1e-12)
    assert q.sum() == pytest.approx(1.0)
    assert (K * q).sum() == pytest.approx(mu)
    # symmetric about 2.5: levels 2 and 3 equal, 1 and 4 equal
    assert q[1] == pytest.approx(q[2]) and q[0] == pytest.approx(q[3])


def test_soft_interval_uses_interval_masses():
    mu, sigma = 3.4, 0.9
    p = np.array([_cdf(k + 0.5, mu, sigma) - _cdf(k - 0.5, mu, sigma) for k in K])
    a, b = p.sum(), (K * p).sum()
    alpha = (mu - 3) / (b - 3 * a)
    expected = alpha * p + (1 - alpha * a) / 5
    assert expected.min() > 0
    q = soft_label(mu, sigma, "interval")
    np.testing.assert_allclose(q, expected, atol=1e-12)
    assert (K * q).sum() == pytest.approx(mu)


def test_soft_label_at_three_normalises_instead_of_going_uniform():
    # alpha = 0 / 0 at mu = 3; the symmetric pdf already has mean 3.
    q = soft_label(3.0, 1.0)
    p = np.array([_pdf(k, 3.0, 1.0) for k in K])
    np.testing.assert_allclose(q, p / p.sum())
    assert q[2] == pytest.approx(0.40262, abs=1e-5)


def test_clipping_keeps_the_label_when_the_mean_stays_close():
    # mu = 1.1, sigma = 0.5: the fix-up gives small negatives at levels 3-5
    q = soft_label(1.1, 0.5)
    assert q.min() == 0.0 and q[2:].sum() == 0.0
    assert q.sum() == pytest.approx(1.0)
    assert abs((K * q).sum() - 1.1) <= 0.1
    assert not np.allclose(q, two_level_label(1.1))


def test_fallback_to_two_levels_when_the_mean_drifts():
    # mu = 1.2, sigma = 2: clipping the fixed-up label moves its mean to 1.77
    np.testing.assert_allclose(soft_label(1.2, 2.0), [0.8, 0.2, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(soft_label(4.9, 1.5), [0, 0, 0, 0.1, 0.9], atol=1e-12)


def test_fallback_to_two_levels_for_small_sigma():
    np.testing.assert_allclose(soft_label(3.25, 0.1), [0, 0, 0.75, 0.25, 0], atol=1e-12)


@pytest.mark.parametrize("kind", ["soft_pdf", "soft_interval", "two_level", "one_hot"])
def test_every_label_kind_is_a_distribution(kind):
    rng = np.random.default_rng(0)
    for mu, sigma in zip(rng.uniform(1, 5, 50), rng.uniform(0, 2, 50), strict=True):
        q = make_label(kind, mu, sigma)
        assert q.shape == (5,) and q.min() >= 0 and q.sum() == pytest.approx(1.0)
        if kind != "one_hot":
            assert abs((K * q).sum() - mu) <= 0.1 + 1e-9


@pytest.mark.parametrize(
    ("mu", "sigma", "message"),
    [(0.5, 1.0, "mu must lie"), (float("nan"), 1.0, "mu must lie"), (3.0, -1.0, "sigma")],
)
def test_bad_label_inputs(mu, sigma, message):
    with pytest.raises(ValueError, match=message):
        soft_label(mu, sigma)


def test_unknown_label_kind():
    with pytest.raises(ValueError, match="unknown label kind"):
        make_label("gaussian", 3.0, 1.0)
