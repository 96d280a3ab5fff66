"""DeQA-Score's losses: KL on the level-token distribution, CE on the other answer tokens and
the fidelity loss on pairs. Each is a plain function of tensors, so ablations are flags.

The total is DeQA's ``forward_pair``: L = w_fd L_fd + w_kl (KL_A + KL_B) + w_ce (CE_A + CE_B),
each of KL and CE taken over the A images and the B images separately and summed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from training.config import LossConfig

_SQRT2 = math.sqrt(2.0)


def level_scores(level_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Score and predicted std from the five level logits (ascending levels 1..5).

    Softmax over the level logits only; score = sum P_k k, std = sqrt(sum P_k (k - score)^2).
    """
    levels = torch.arange(1, 6, dtype=level_logits.dtype, device=level_logits.device)
    probs = level_logits.softmax(dim=-1)
    score = (probs * levels).sum(-1)
    var = (probs * (levels - score.unsqueeze(-1)) ** 2).sum(-1)
    return score, var.clamp_min(0).sqrt()


def level_kl(
    vocab_logits: torch.Tensor, level_ids: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Mean over rows of KL(q || softmax over the whole vocabulary) at the level position.

    ``vocab_logits``: (n, V); ``level_ids``: (5,) token ids of the ascending levels;
    ``target``: (n, 5) label distributions. Mass the model puts on other tokens is penalised
    through the log-softmax over the full vocabulary.
    """
    log_p = vocab_logits.float().log_softmax(dim=-1)[:, level_ids]
    target = target.to(log_p.dtype)
    log_q = torch.where(target > 0, target.clamp_min(1e-30).log(), torch.zeros_like(target))
    return (target * (log_q - log_p)).sum(-1).mean()


def answer_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy where ``labels`` != -100 (the answer tokens but the level)."""
    shifted = logits[:, :-1].float()
    targets = labels[:, 1:]
    if not (targets != -100).any():
        return shifted.sum() * 0.0
    return F.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), ignore_index=-100
    )


def fidelity(
    score_a: torch.Tensor,
    score_b: torch.Tensor,
    mu_a: torch.Tensor,
    mu_b: torch.Tensor,
    sigma_a: torch.Tensor,
    sigma_b: torch.Tensor,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Mean fidelity loss over pairs.

    p = Phi((s_A - s_B) / sqrt 2) from the predicted scores; g = Phi((m_A - m_B) /
    sqrt(sigma_A^2 + sigma_B^2)) from the labels; L = 1 - sqrt(p g) - sqrt((1 - p)(1 - g)).
    """
    p = _phi((score_a - score_b) / _SQRT2)
    g = _phi((mu_a - mu_b) / (sigma_a**2 + sigma_b**2 + eps).sqrt())
    loss = 1.0 - (p * g + eps).sqrt() - ((1.0 - p) * (1.0 - g) + eps).sqrt()
    return loss.mean()


def _phi(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / _SQRT2))


def deqa_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    level_vocab: torch.Tensor,
    level_ids: torch.Tensor,
    batch: dict[str, torch.Tensor],
    weights: LossConfig,
) -> dict[str, torch.Tensor]:
    """DeQA's total (``loss``) and its unweighted terms; zero weights skip a term.

    The rows hold the A images of the pairs first, then the B images; ``batch`` carries
    ``mu``, ``sigma`` (level scale) and ``target`` (the labels) in the same order.
    """
    n = level_vocab.shape[0] // 2
    halves = (slice(0, n), slice(n, None))
    terms = {}
    if weights.kl_weight:
        target = batch["target"]
        terms["kl"] = sum(level_kl(level_vocab[h], level_ids, target[h]) for h in halves)
    if weights.ce_weight:
        terms["ce"] = sum(answer_ce(logits[h], labels[h]) for h in halves)
    if weights.fidelity_weight:
        score, _ = level_scores(level_vocab[:, level_ids].float())
        mu, sigma = batch["mu"], batch["sigma"]
        terms["fidelity"] = fidelity(score[:n], score[n:], mu[:n], mu[n:], sigma[:n], sigma[n:])
    total = sum(getattr(weights, f"{name}_weight") * value for name, value in terms.items())
    return {"loss": total, **terms}
