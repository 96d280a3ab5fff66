"""What a run writes about itself as it goes: ``metrics.csv`` (training terms), ``eval.csv``
(validation metrics), TensorBoard events and ``curves.png``. Written by the main process only.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

METRICS_FILE = "metrics.csv"
EVAL_FILE = "eval.csv"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"


class RunLog:
    """CSV logs (cut back to ``resumed_step`` on resume), TensorBoard and the curve plot."""

    def __init__(
        self,
        out: Path,
        loss_terms: Sequence[str],
        eval_metrics: Sequence[str],
        tensorboard: bool,
        resumed_step: int,
    ) -> None:
        self.out = out
        self.fields = ("step", "epoch", "lr", *loss_terms, "images_per_s")
        self.eval_metrics = tuple(eval_metrics)
        self.eval_fields = ("step", "attribute", "level", *self.eval_metrics, "n")
        _start_csv(out / METRICS_FILE, self.fields, resumed_step)
        _start_csv(out / EVAL_FILE, self.eval_fields, resumed_step)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / TENSORBOARD_DIR), purge_step=resumed_step + 1)

    def train(self, row: dict[str, float]) -> None:
        _append(self.out / METRICS_FILE, self.fields, row)
        if self.writer:
            for name, value in row.items():
                if name not in ("step", "epoch"):
                    self.writer.add_scalar(f"train/{name}", value, row["step"])

    def evaluation(self, step: int, table: pd.DataFrame) -> None:
        for record in table.to_dict("records"):
            _append(self.out / EVAL_FILE, self.eval_fields, {"step": step, **record})
            if self.writer:
                for metric in self.eval_metrics:
                    tag = f"val/{record['attribute']}/{record['level']}/{metric}"
                    self.writer.add_scalar(tag, record[metric], step)
        self.plot()

    def plot(self) -> None:
        """``curves.png``: training loss terms (left) and validation metrics (right) by step."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        train = pd.read_csv(self.out / METRICS_FILE)
        evals = pd.read_csv(self.out / EVAL_FILE)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for term in self.fields[3:-1]:
            if term in train and train[term].notna().any():
                left.plot(train["step"], train[term], label=term)
        left.set(xlabel="step", ylabel="loss (unweighted terms)", title="training")
        if not train.empty:
            left.set_yscale("log")
        left.legend(loc="upper right")
        overall = evals[evals["level"] == "global"]
        for (attribute, metric), marker in zip(
            [(a, m) for a in sorted(overall["attribute"].unique()) for m in self.eval_metrics[:2]],
            "osD^v<>pP*",
            strict=False,
        ):
            rows = overall[overall["attribute"] == attribute]
            right.plot(rows["step"], rows[metric], marker=marker, label=f"{attribute} {metric}")
        right.set(xlabel="step", ylabel="validation (global)", title="validation")
        if not overall.empty:
            right.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(self.out / CURVES_FILE, dpi=110)
        plt.close(fig)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def _start_csv(path: Path, fields: Sequence[str], resumed_step: int) -> None:
    """A fresh file with a header, or the old one without rows logged after ``resumed_step``
    (they belong to steps that the resumed run repeats)."""
    kept = pd.DataFrame(columns=list(fields))
    if resumed_step and path.is_file():
        old = pd.read_csv(path)
        kept = old[old["step"] <= resumed_step]
    kept.to_csv(path, index=False, columns=list(fields))


def _append(path: Path, fields: Sequence[str], row: dict) -> None:
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fields, extrasaction="ignore").writerow(row)
