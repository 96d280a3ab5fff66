"""Label formulas checked against hand-computed cases."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.labels import (
    JodRescaling,
    make_label,
    one_hot_label,
    qalign_level,
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


def deqa_reference(mu: float, sigma: float, density: str) -> list[float]:
    """DeQA-Score's gen_soft_label.py, transcribed in its own order (excellent .. bad) and
    returned ascending (bad .. excellent); min/max MOS are the level range 1..5."""
    eps = 1e-8
    probs = []
    for x in range(5, 0, -1):
        if density == "cdf":
            probs.append(_cdf(x + 0.5, mu, sigma) - _cdf(x - 0.5, mu, sigma))
        else:
            probs.append(_pdf(x, mu, sigma))
    big_a = sum(probs)
    big_b = sum(p * w for p, w in zip(probs, [5, 4, 3, 2, 1], strict=True))
    alpha = (mu - 3) / (big_b - 3.0 * big_a + 1e-9)
    beta = (1.0 - alpha * big_a) / 5.0
    norm = [max(p * alpha + beta, 0) for p in probs]
    diff = abs(sum(p * w for p, w in zip(norm, [5, 4, 3, 2, 1], strict=True)) - mu)
    if sigma < 0.2 or diff > 0.1:
        binary = [0.0] * 5
        for idx in range(1, 5):
            left, right = 1 + (idx - 1) - eps, 1 + idx + eps
            if left < mu <= right:
                binary[idx - 1] = (right - mu) / (right - left)
                binary[idx] = (mu - left) / (right - left)
                break
        return binary  # get_binary_probs reverses to excellent..bad; ascending is this
    return norm[::-1]


def test_two_level_interpolates_between_neighbours():
    np.testing.assert_allclose(two_level_label(3.3), [0, 0, 0.7, 0.3, 0], atol=1e-7)
    np.testing.assert_allclose(two_level_label(5.0), [0, 0, 0, 0, 1], atol=1e-7)
    np.testing.assert_allclose(two_level_label(1.0), [1, 0, 0, 0, 0], atol=1e-7)
    assert (K * two_level_label(2.37)).sum() == pytest.approx(2.37, abs=1e-7)
    # DeQA's intervals are (k - eps, k + 1 + eps]: mu = 2 belongs to (1, 2], mostly level 2
    assert two_level_label(2.0)[0] == pytest.approx(1e-8, rel=1e-6)


@pytest.mark.parametrize(
    ("mu", "level"),
    [
        (1.0, 1),
        (1.8, 1),
        (1.81, 2),
        (2.6, 2),
        (2.61, 3),
        (3.4, 3),
        (3.41, 4),
        (4.2, 4),
        (4.21, 5),
        (5.0, 5),
    ],
)
def test_one_hot_uses_qalign_five_equal_bins(mu, level):
    assert qalign_level(mu) == level
    np.testing.assert_array_equal(one_hot_label(mu), np.eye(5)[level - 1])


def test_one_hot_is_not_rounding():
    # rounding would put 3.45 on 'fair' (3); Q-Align's bin (3.4, 4.2] says 'good' (4)
    assert qalign_level(3.45) == 4 and qalign_level(2.55) == 2


def test_soft_pdf_matches_hand_computed_fix_up():
    mu, sigma = 2.5, 0.8
    p = np.array([_pdf(k, mu, sigma) for k in K])
    a, b = p.sum(), (K * p).sum()
    alpha = (mu - 3) / (b - 3 * a + 1e-9)
    beta = (1 - alpha * a) / 5
    expected = alpha * p + beta
    assert expected.min() > -1e-9  # the fix-up holds (all but) without clipping here
    q = soft_label(mu, sigma, "pdf")
    np.testing.assert_allclose(q, np.clip(expected, 0, None), atol=1e-12)
    assert q.sum() == pytest.approx(1.0)
    assert (K * q).sum() == pytest.approx(mu)


def test_soft_interval_uses_interval_masses():
    mu, sigma = 3.4, 0.9
    p = np.array([_cdf(k + 0.5, mu, sigma) - _cdf(k - 0.5, mu, sigma) for k in K])
    a, b = p.sum(), (K * p).sum()
    alpha = (mu - 3) / (b - 3 * a + 1e-9)
    expected = alpha * p + (1 - alpha * a) / 5
    assert expected.min() > 0
    np.testing.assert_allclose(soft_label(mu, sigma, "interval"), expected, atol=1e-12)


def test_clipped_label_is_not_renormalised_before_the_fallback_test():
    # mu = 4, sigma = 2 keeps a broad label summing to 1.075 (DeQA); renormalising first
    # would move its mean past 0.1 and collapse it to the two-level label [0, 0, 0, 1, 0]
    q = soft_label(4.0, 2.0)
    np.testing.assert_allclose(q, [0, 0.112, 0.295, 0.373, 0.295], atol=5e-4)
    assert q.sum() == pytest.approx(1.075, abs=1e-3)
    assert abs((K * q).sum() - 4.0) <= 0.1
    renormalised_mean = (K * q).sum() / q.sum()
    assert abs(renormalised_mean - 4.0) > 0.1


def test_mu_three_gives_deqas_uniform_label():
    # alpha = 0 / (0 + 1e-9) = 0, beta = 1/5: DeQA's label at the exact centre
    np.testing.assert_allclose(soft_label(3.0, 1.0), np.full(5, 0.2), atol=1e-12)


def test_fallback_to_two_levels_when_the_mean_drifts():
    np.testing.assert_allclose(soft_label(1.2, 2.0), [0.8, 0.2, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(soft_label(4.9, 3.0), [0, 0, 0, 0.1, 0.9], atol=1e-7)


def test_fallback_to_two_levels_for_small_sigma():
    np.testing.assert_allclose(soft_label(3.25, 0.1), [0, 0, 0.75, 0.25, 0], atol=1e-7)


@settings(max_examples=300, deadline=None)
@given(
    mu=st.floats(1.0, 5.0),
    sigma=st.floats(1e-3, 3.0),
    density=st.sampled_from(["pdf", "cdf"]),
)
def test_soft_label_equals_deqa_everywhere(mu, sigma, density):
    variant = "interval" if density == "cdf" else "pdf"
    np.testing.assert_allclose(
        soft_label(mu, sigma, variant), deqa_reference(mu, sigma, density), atol=1e-12
    )


@pytest.mark.parametrize("kind", ["soft_pdf", "soft_interval", "two_level", "one_hot"])
def test_every_label_kind_is_a_distribution(kind):
    rng = np.random.default_rng(0)
    for mu, sigma in zip(rng.uniform(1, 5, 50), rng.uniform(0, 2, 50), strict=True):
        q = make_label(kind, mu, sigma)
        assert q.shape == (5,) and q.min() >= 0
        if kind in ("two_level", "one_hot"):
            assert q.sum() == pytest.approx(1.0)
        else:  # DeQA clips without renormalising: mass >= 1
            assert q.sum() >= 1.0 - 1e-9
        if kind != "one_hot":
            assert abs((K * q).sum() - mu) <= 0.1 + 1e-7


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
