"""Batches built in DataLoader workers: image decoding and tokenising overlap the model's work.

Training and prediction both hand a list of chunk descriptions and a function that turns one
into a batch of CPU tensors; the workers (``num_workers``, each ``prefetch`` batches ahead)
call it, the main process only moves the result to the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


class _Built(torch.utils.data.Dataset):
    def __init__(self, chunks: Sequence[Any], build: Callable[[Any], dict]) -> None:
        self.chunks, self.build = chunks, build

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> dict:
        return self.build(self.chunks[index])


def worker_batches(
    chunks: Sequence[Any],
    build: Callable[[Any], dict],
    num_workers: int,
    prefetch: int = 2,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """``build(chunk)`` for every chunk, in order, computed by ``num_workers`` processes
    (0: in this process)."""
    return torch.utils.data.DataLoader(
        _Built(chunks, build),
        batch_size=None,
        num_workers=num_workers,
        prefetch_factor=prefetch if num_workers else None,
        pin_memory=pin_memory,
    )
