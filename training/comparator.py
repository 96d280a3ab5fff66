"""The comparator: a LoRA-adapted multimodal LLM that answers which of two images is better.

DepictQA (You et al., ECCV 2024) trains an MLLM to compare two images; here the labels are the
experts' own pairwise judgments with a calibrated soft target P(first better)
(``training.pairwise_data``). One prompt holds both images and the question "Which of the two
images has better <attribute>? Answer First or Second."; the answer is "First. The first image
has better <attribute>." (or Second). The loss is the KL divergence between the target
(P, 1 - P) and the softmax over the two answer words at the answer's first position, plus the
usual cross-entropy on the rest of the answer. A model family whose processor cannot take two
images in one prompt gets both side by side in one picture, with a warning.

Loading, adapters, the run skeleton (``training.run``), batching and saving are the score
model's (``training.trainer``); this module brings the pair prompts, the loss, the data
preparation for ``task: pairwise`` and the pair predictions.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from scaling.errors import InputError
from scaling.io import read_any_table, read_table
from training.batches import worker_batches
from training.config import TrainConfig
from training.data import load_image
from training.encoding import Sample, single_token_ids
from training.losses import answer_ce
from training.modeling import LoadedModel, answer_logits, load_trained, read_model_card
from training.pairwise_data import (
    attach_images,
    pair_splits,
    pair_table,
    read_image_index,
    read_image_table,
    read_pair_trials,
    soft_target,
)
from training.pairwise_eval import validation_table
from training.prompts import PAIR_IMAGE_LABELS, PromptBook
from training.run import PreparedData
from training.trainer import adapted_model, param_groups, save_adapted

TASK = "pairwise"
LAYOUTS = ("auto", "two_images", "side_by_side")
#: Columns a table of pairs to predict must have.
PAIR_INPUT_COLUMNS = ("image_A", "image_B", "attribute")


class SideBySideWarning(UserWarning):
    """The model's processor cannot take two images: they are shown side by side."""


# --- prompts ----------------------------------------------------------------------------------


def answer_word_ids(tokenizer, words: Sequence[str], source: str | Path = "tokenizer") -> list[int]:
    """Token ids of the two answer words, each of which must be exactly one token."""
    if len(words) != 2:
        raise InputError(f"the comparator needs two answer words, not {list(words)}")
    return single_token_ids(tokenizer, list(words), "answer word", source)


def pair_images(first: str, second: str, size: int, layout: str) -> list[Image.Image]:
    """The prompt's images: both (``two_images``) or one picture with the first on the left
    (``side_by_side``), each padded to square with its mean colour and resized to ``size``."""
    images = [load_image(path, size)[-1] for path in (first, second)]
    if layout == "two_images":
        return images
    canvas = Image.new("RGB", (2 * size, size))
    canvas.paste(images[0], (0, 0))
    canvas.paste(images[1], (size, 0))
    return [canvas]


def pair_samples(
    firsts: Sequence[str],
    seconds: Sequence[str],
    attributes: Sequence[str],
    prompts: PromptBook,
    size: int,
    layout: str,
    words: Sequence[str],
    first_better: Sequence[bool] | None = None,
) -> list[Sample]:
    """One prompt per pair; the answer carries the word of the likelier image (or First when
    unknown: it cannot change the logits that predict it)."""
    better = [True] * len(firsts) if first_better is None else list(first_better)
    return [
        Sample(
            images=pair_images(a, b, size, layout),
            question=prompts.pair_question(attribute, words, layout == "side_by_side"),
            answer=prompts.pair_answer(attribute, first, words),
            image_labels=list(PAIR_IMAGE_LABELS) if layout == "two_images" else None,
        )
        for a, b, attribute, first in zip(firsts, seconds, attributes, better, strict=True)
    ]


def resolve_layout(setting: str, loaded: LoadedModel, size: int) -> str:
    """``auto``: two images when the model's processor takes them in one prompt, else side by
    side (with a :class:`SideBySideWarning`)."""
    if setting not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {setting!r}")
    if setting != "auto":
        return setting
    probe = Image.new("RGB", (size, size), (128, 128, 128))
    sample = Sample([probe, probe], "Which is better?", "First.")
    try:
        loaded.encoder(decision_ids=[-1]).processor(
            text=loaded.encoder().prompt_text(sample), images=sample.images
        )
    except (ValueError, TypeError, IndexError, RuntimeError) as error:
        warnings.warn(
            f"the processor of {loaded.source} cannot take two images in one prompt ({error}); "
            "the comparator shows the two images side by side in one picture, the first on "
            "the left, and says so in the question",
            SideBySideWarning,
            stacklevel=2,
        )
        return "side_by_side"
    return "two_images"


# --- loss and prediction ----------------------------------------------------------------------


def first_probability(decision_vocab: torch.Tensor, answer_ids: torch.Tensor) -> torch.Tensor:
    """P(first better): the softmax over the two answer words' logits, first word's share."""
    return decision_vocab[:, answer_ids].float().softmax(dim=-1)[:, 0]


def pair_kl(
    decision_vocab: torch.Tensor, answer_ids: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Mean over rows of KL((t, 1 - t) || softmax over the two answer words)."""
    log_p = decision_vocab[:, answer_ids].float().log_softmax(dim=-1)
    q = torch.stack([target, 1.0 - target], dim=-1).to(log_p.dtype)
    log_q = torch.where(q > 0, q.clamp_min(1e-30).log(), torch.zeros_like(q))
    return (q * (log_q - log_p)).sum(-1).mean()


def pairwise_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    answer_ids: torch.Tensor,
    kl_weight: float,
    ce_weight: float,
    tail_only: bool = True,
) -> dict[str, torch.Tensor]:
    """``kl_weight`` x KL at the answer word + ``ce_weight`` x CE on the rest of the answer
    (vocabulary logits only at the answer unless ``tail_only`` is off)."""
    inputs = {k: v for k, v in batch.items() if k != "target"}
    logits, labels, decision_vocab = answer_logits(model, inputs, tail_only)
    terms = {"kl": pair_kl(decision_vocab, answer_ids, batch["target"])}
    if ce_weight:
        terms["ce"] = answer_ce(logits, labels)
    total = kl_weight * terms["kl"] + ce_weight * terms.get("ce", 0.0)
    return {"loss": total, **terms}


@torch.no_grad()
def predict_pair_rows(
    loaded: LoadedModel,
    rows: pd.DataFrame,
    config: TrainConfig,
    layout: str,
    batch_size: int,
    both_orders: bool = True,
    progress: bool = False,
    num_workers: int = 0,
) -> pd.DataFrame:
    """P(A better) for each row (``image_A, image_B, attribute``): ``p_ab`` with A shown
    first, ``p_ba`` = 1 - P(first better) with B shown first, and ``p_a_better`` their mean
    (``p_ab`` alone with ``both_orders=False``)."""
    words = config.pairs.answer_words
    prompts = PromptBook(config.prompts.attributes, config.prompts.questions)
    answer_ids = answer_word_ids(loaded.tokenizer, words, loaded.source)
    encoder = loaded.encoder(decision_ids=answer_ids)
    model = loaded.model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor(answer_ids, device=device)
    orders = [("image_A", "image_B")] + ([("image_B", "image_A")] if both_orders else [])
    chunks = [
        (order, rows.iloc[start : start + batch_size])
        for order in orders
        for start in range(0, len(rows), batch_size)
    ]

    def build(chunk: tuple[tuple[str, str], pd.DataFrame]) -> dict:
        (first, second), part = chunk
        samples = pair_samples(
            part[first].tolist(),
            part[second].tolist(),
            part["attribute"].tolist(),
            prompts,
            config.image.size,
            layout,
            words,
        )
        batch = encoder(samples)
        batch["labels"] = torch.full_like(batch["labels"], -100)  # only the answer word is read
        return batch

    loader = worker_batches(chunks, build, num_workers)
    found = []
    for batch in tqdm(loader, total=len(chunks), desc="compare", disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        _, _, decision_vocab = answer_logits(model, batch)
        found.append(first_probability(decision_vocab, ids).cpu().numpy())
    p_first = np.concatenate(found) if found else np.zeros(0)
    out = rows.copy()
    out["p_ab"] = p_first[: len(rows)]
    if both_orders:
        out["p_ba"] = 1.0 - p_first[len(rows) :]
        out["p_a_better"] = (out["p_ab"] + out["p_ba"]) / 2
    else:
        out["p_a_better"] = out["p_ab"]
    return out.reset_index(drop=True)


# --- the task for the run skeleton -------------------------------------------------------------


def prepare_pairs(config: TrainConfig) -> PreparedData:
    """The pairs of ``config.pairs``: one row per unordered pair with its images, its soft
    target P(A better) (column ``target``) and its split (the score model's scene split)."""
    pairs_config, data = config.pairs, config.data
    trials = read_pair_trials(
        pairs_config.trials, screening=pairs_config.screening, drop_gold=pairs_config.drop_gold
    )
    scales = [
        None if p is None else read_table(p)
        for p in (pairs_config.scene_scales, pairs_config.cross_scales)
    ]
    pairs = (
        pair_table(trials, *scales) if any(s is not None for s in scales) else pair_table(trials)
    )
    if data.attributes:
        pairs = pairs[pairs["attribute"].isin(data.attributes)].reset_index(drop=True)
        if pairs.empty:
            raise InputError(f"no pairs for attributes {data.attributes}", field="attribute")
    prompts = PromptBook(config.prompts.attributes, config.prompts.questions)
    for attribute in pairs["attribute"].unique():
        prompts.words(attribute)
    pairs = attach_images(pairs, read_image_index(pairs_config.images))
    pairs["target"] = soft_target(pairs, pairs_config.target, pairs_config.blend)
    split_table = None
    if pairs_config.split_table is not None:
        split_table = read_any_table(pairs_config.split_table)
    pairs["split"] = pair_splits(
        pairs, data.val_fraction, data.test_fraction, config.run.seed, split_table
    )
    if not (pairs["split"] == "train").any():
        raise InputError("no pair has both images in training scenes", field="scene")
    pairs.attrs["jodkit"] = trials.attrs.get("jodkit", {})
    return PreparedData(pairs, {})


class PairwiseTask:
    """The comparator for :class:`training.run.Run`: a unit is one pair in one order."""

    loss_terms = ("loss", "kl", "ce")
    images_per_unit = 2
    eval_metrics = ("log_likelihood", "accuracy", "brier")

    def __init__(self, config: TrainConfig, data: PreparedData, precision: str) -> None:
        self.config = config
        self.prompts = PromptBook(config.prompts.attributes, config.prompts.questions)
        self.train_rows = data.rows("train")
        self.attributes = sorted(data.table["attribute"].unique())
        self.loaded = adapted_model(config, precision)
        self.model = self.loaded.model
        words = config.pairs.answer_words
        ids = answer_word_ids(self.loaded.tokenizer, words, config.model)
        self.answer_ids = torch.tensor(ids)
        self.encoder = self.loaded.encoder(decision_ids=ids)
        self.layout = resolve_layout(config.pairs.layout, self.loaded, config.image.size)
        self.units_per_step = config.optim.pairs_per_batch
        if self.units_per_step % 2:
            warnings.warn(
                f"optim.pairs_per_batch is {self.units_per_step}: the comparator's steps hold "
                "a pair in both orders (two units) only when it is even, and its position "
                "terms then cancel; with an odd number, a pair's orders may fall in different "
                "steps",
                stacklevel=2,
            )

    def units(self, epoch: int) -> list[tuple[int, int]]:
        """Every training pair in both orders (0: A first, 1: B first), pairs shuffled per
        epoch, the two orders of a pair side by side: in one optimiser step (for an even
        ``pairs_per_batch``), where their position terms cancel and only the comparison is
        learnt."""
        pairs = list(range(len(self.train_rows)))
        random.Random(hash((self.config.run.seed, epoch))).shuffle(pairs)
        return [(i, order) for i in pairs for order in (0, 1)]

    def collate(self, units: list[tuple[int, int]], positions: list[int], epoch: int) -> dict:
        rows = self.train_rows.iloc[[i for i, _ in units]]
        flip = np.array([order for _, order in units], dtype=bool)
        a, b = rows["image_A"].to_numpy(), rows["image_B"].to_numpy()
        target = np.where(flip, 1.0 - rows["target"].to_numpy(), rows["target"].to_numpy())
        samples = pair_samples(
            np.where(flip, b, a).tolist(),
            np.where(flip, a, b).tolist(),
            rows["attribute"].tolist(),
            self.prompts,
            self.config.image.size,
            self.layout,
            self.config.pairs.answer_words,
            (target >= 0.5).tolist(),
        )
        batch = self.encoder(samples)
        batch["target"] = torch.tensor(target, dtype=torch.float32)
        return batch

    def loss(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        ids = self.answer_ids.to(batch["input_ids"].device)
        pairs = self.config.pairs
        return pairwise_loss(model, batch, ids, pairs.kl_weight, pairs.ce_weight)

    def param_groups(self) -> list[dict]:
        optim = self.config.optim
        return param_groups(self.model, optim.lr, optim.vision_lr)

    def predict(self, model: torch.nn.Module, rows: pd.DataFrame, batch_size: int):
        return predict_pair_rows(
            self.loaded.with_model(model), rows, self.config, self.layout, batch_size
        )

    def validation(self, rows: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
        """Log-likelihood, accuracy and Brier score of the validation pairs' trials."""
        return validation_table(rows, predictions["p_a_better"].to_numpy())

    def save(self, model: torch.nn.Module, out: Path) -> None:
        extra = {
            "task": TASK,
            "answer_words": list(self.config.pairs.answer_words),
            "layout": self.layout,
            "attributes": self.attributes,
        }
        save_adapted(model, self.loaded, out, self.config, {}, extra=extra)


# --- trained comparators ----------------------------------------------------------------------


def load_comparator(model_dir: str | Path) -> tuple[LoadedModel, TrainConfig, dict]:
    """A trained comparator, its config and its card; a score model is refused."""
    model_dir = Path(model_dir)
    card, _ = read_model_card(model_dir)
    if card.get("task") != TASK:
        raise InputError(
            f"{model_dir} holds a score model, not a comparator: train one with "
            "'task: pairwise' in the config",
            source=str(model_dir),
        )
    config = TrainConfig.from_yaml(model_dir / "config.yaml")
    loaded, _ = load_trained(model_dir, hub_kernels=config.run.hub_kernels)
    loaded.model.to("cuda" if torch.cuda.is_available() else "cpu")
    return loaded, config, card


def read_pair_input(path: str | Path) -> pd.DataFrame:
    """A table of pairs to compare (``image_A, image_B, attribute``; other columns are kept),
    image paths resolved against the table's folder; missing or identical images refused."""
    path = Path(path)
    table = read_image_table(path, PAIR_INPUT_COLUMNS, ["image_A", "image_B"], "a pair table")
    same = np.flatnonzero((table["image_A"] == table["image_B"]).to_numpy())
    if len(same):
        raise InputError(
            f"image_A and image_B are the same image {table['image_A'].iloc[same[0]]}",
            source=str(path),
            row=int(same[0]) + 1,
            field="image_B",
        )
    return table


def check_attributes(card: dict, attributes: Sequence[str]) -> None:
    """Refuse attributes the comparator was not trained on."""
    unknown = sorted(set(attributes) - set(card.get("attributes", [])))
    if unknown:
        raise InputError(
            f"the comparator was not trained on attributes {unknown}; it knows "
            f"{card.get('attributes', [])}",
            field="attribute",
        )


def predict_pairs(
    model_dir: str | Path,
    pairs: str | Path,
    batch_size: int = 16,
    progress: bool = True,
    split: str | None = None,
) -> pd.DataFrame:
    """``jod predict --pairs``: every row of a pair table (of one ``split``, when given)
    through a trained comparator, both orders, in batches (``p_ab``, ``p_ba``,
    ``p_a_better``)."""
    rows = read_pair_input(pairs)
    if split is not None:
        if "split" not in rows.columns:
            raise InputError(f"--split {split} needs a 'split' column", source=str(pairs))
        rows = rows[rows["split"].astype(str) == split].reset_index(drop=True)
        if rows.empty:
            raise InputError(f"no pair of split {split!r}", source=str(pairs), field="split")
    loaded, config, card = load_comparator(model_dir)
    check_attributes(card, rows["attribute"].unique())
    return predict_pair_rows(
        loaded,
        rows,
        config,
        card["layout"],
        batch_size,
        progress=progress,
        num_workers=config.run.num_workers,
    )


def compare_images(
    model_dir: str | Path, first: str | Path, second: str | Path, attribute: str | None = None
) -> tuple[float, str]:
    """``jod compare``: P(first better) (both orders averaged) and the answer sentence;
    ``attribute`` may be left out when the comparator knows one only."""
    for path in (first, second):
        if not Path(path).is_file():
            raise InputError("image file not found", source=str(path))
    if Path(first).resolve() == Path(second).resolve():
        raise InputError(f"both images are {first}: compare two different images")
    loaded, config, card = load_comparator(model_dir)
    known = card.get("attributes", [])
    if attribute is None:
        if len(known) != 1:
            raise InputError(f"name the attribute (--attribute): the comparator knows {known}")
        attribute = known[0]
    check_attributes(card, [attribute])
    rows = pd.DataFrame(
        {"image_A": [str(first)], "image_B": [str(second)], "attribute": [attribute]}
    )
    p = float(predict_pair_rows(loaded, rows, config, card["layout"], 2)["p_a_better"].iloc[0])
    prompts = PromptBook(config.prompts.attributes, config.prompts.questions)
    return p, prompts.pair_answer(attribute, p >= 0.5, card["answer_words"])
