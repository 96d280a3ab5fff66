"""Table rows to prompts (images, question, answer): the score task's samples.

Shared by training (paraphrases sampled, the answer carrying the label's level word) and
prediction (the canonical question, a placeholder level that cannot affect the logits that
predict it). Images are decoded here, so this runs in DataLoader workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pandas as pd

from training.data import load_image, parse_roi
from training.encoding import Sample
from training.prompts import LEVEL_WORDS, PromptBook

#: The level word the answer carries when the level is unknown (prediction).
PLACEHOLDER_LEVEL = LEVEL_WORDS[2]


def score_samples(
    rows: pd.DataFrame,
    prompts: PromptBook,
    image_size: int,
    roi_column: str | None,
    rngs: Sequence[random.Random | None] | None = None,
    levels: Sequence[int] | None = None,
) -> list[Sample]:
    """One prompt per row; ``rngs`` (one per row) sample the question's paraphrase and
    ``levels`` (1..5 per row) choose the answer's level word, as DeQA's answers carry it."""
    samples = []
    for i, (index, row) in enumerate(rows.iterrows()):
        roi = parse_roi(row[roi_column], "table", int(index) + 1) if roi_column else None
        word = PLACEHOLDER_LEVEL if levels is None else LEVEL_WORDS[levels[i] - 1]
        samples.append(
            Sample(
                images=load_image(row["image_path"], image_size, roi),
                question=prompts.question(row["attribute"], None if rngs is None else rngs[i]),
                answer=prompts.answer(row["attribute"], word),
            )
        )
    return samples
