"""Losses against hand-computed values."""

import math

import pytest

torch = pytest.importorskip("torch")

from training.losses import answer_ce, fidelity, level_kl, level_scores  # noqa: E402


def test_level_scores_mean_and_std():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.4, 0.2, 0.1], [0.0, 0.0, 0.0, 0.5, 0.5]]) + 1e-30)
    score, std = level_scores(logits)
    assert score.tolist() == pytest.approx([3.0, 4.5], abs=1e-6)
    # variance 0.1*4 + 0.2*1 + 0.2*1 + 0.1*4 = 1.2
    assert std.tolist() == pytest.approx([math.sqrt(1.2), 0.5], abs=1e-5)


def test_level_kl_is_taken_over_the_whole_vocabulary():
    vocab = torch.zeros(1, 8)
    ids = torch.tensor([1, 2, 3, 4, 5])
    target = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])
    # uniform over 8 tokens: KL = 1 * (log 1 - log 1/8)
    assert level_kl(vocab, ids, target).item() == pytest.approx(math.log(8))
    vocab[0, 3] = 50.0
    assert level_kl(vocab, ids, target).item() == pytest.approx(0.0, abs=1e-6)


def test_answer_ce_only_counts_labelled_tokens():
    logits = torch.zeros(1, 4, 6)
    logits[0, 1, 2] = 10.0  # predicts token 2 at position 2
    labels = torch.tensor([[-100, -100, 2, -100]])
    expected = -torch.log_softmax(logits[0, 1], -1)[2]
    assert answer_ce(logits, labels).item() == pytest.approx(expected.item())
    assert answer_ce(logits, torch.full((1, 4), -100)).item() == 0.0


def test_fidelity_hand_computed_and_minimal_at_agreement():
    sa, sb = torch.tensor([4.0]), torch.tensor([2.0])
    mu_a, mu_b = torch.tensor([3.5]), torch.tensor([2.5])
    sig = torch.tensor([0.5])
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    p, g = phi(2 / math.sqrt(2)), phi(1 / math.sqrt(0.5))
    expected = 1 - math.sqrt(p * g) - math.sqrt((1 - p) * (1 - g))
    got = fidelity(sa, sb, mu_a, mu_b, sig, sig).item()
    assert got == pytest.approx(expected, abs=1e-4)
    # predicting the reverse order costs more than predicting the right one
    assert fidelity(sb, sa, mu_a, mu_b, sig, sig).item() > got + 0.1
