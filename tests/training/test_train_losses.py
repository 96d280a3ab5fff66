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


def test_deqa_total_sums_kl_and_ce_over_a_and_b():
    """DeQA's forward_pair: fidelity + 0.05 [(CE_A + KL_A) + (CE_B + KL_B)], each CE a token
    mean within its half (A answers are 2 tokens long here, B answers 1)."""
    from training.config import LossConfig
    from training.losses import deqa_loss

    gen = torch.Generator().manual_seed(0)
    vocab, width = 9, 5
    logits = torch.randn(4, width, vocab, generator=gen)
    labels = torch.full((4, width), -100)
    labels[0, 3:], labels[1, 3:] = torch.tensor([2, 3]), torch.tensor([4, 5])  # A rows
    labels[2, 4], labels[3, 4] = 6, 7  # B rows
    level_ids = torch.tensor([1, 2, 3, 4, 5])
    level_vocab = torch.randn(4, vocab, generator=gen)
    target = torch.tensor([[0, 0.2, 0.5, 0.3, 0], [0.7, 0.3, 0, 0, 0]] * 2)
    batch = {
        "mu": torch.tensor([3.1, 1.3, 2.0, 4.0]),
        "sigma": torch.tensor([0.4, 0.5, 0.6, 0.3]),
        "target": target,
    }
    terms = deqa_loss(logits, labels, level_vocab, level_ids, batch, LossConfig())

    def kl(rows):  # F.kl_div(log p, q, reduction="batchmean") as DeQA calls it
        log_p = torch.log_softmax(level_vocab[rows], -1)
        full = torch.zeros_like(log_p)
        full[:, level_ids] = target[rows]
        return torch.nn.functional.kl_div(log_p, full, reduction="batchmean")

    def ce(rows):
        shifted = logits[rows, :-1].reshape(-1, vocab)
        return torch.nn.functional.cross_entropy(shifted, labels[rows, 1:].reshape(-1))

    a, b = slice(0, 2), slice(2, 4)
    assert terms["kl"].item() == pytest.approx((kl(a) + kl(b)).item(), rel=1e-6)
    assert terms["ce"].item() == pytest.approx((ce(a) + ce(b)).item(), rel=1e-6)
    score, _ = level_scores(level_vocab[:, level_ids])
    fd = fidelity(score[:2], score[2:], batch["mu"][:2], batch["mu"][2:], *batch["sigma"].split(2))
    expected = fd + 0.05 * (kl(a) + kl(b) + ce(a) + ce(b))
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    # not the old average over A and B together
    assert terms["ce"].item() != pytest.approx(ce(slice(0, 4)).item(), rel=1e-3)
