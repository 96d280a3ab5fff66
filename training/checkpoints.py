"""Checkpoints of a run: trainable weights, optimiser and schedule, written once, rotated,
checked on resume.

A checkpoint holds only what training changes (the trainable parameters and buffers, not a
7B model's frozen weights), is written by the main process into a temporary folder renamed
when complete, and does not depend on the number of processes that wrote it. On resume the
newest intact one is taken; a corrupt one is named and skipped.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

CHECKPOINTS = "checkpoints"
BEST = "best"
WEIGHTS_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
STATE_FILE = "state.json"


@dataclass
class RunState:
    """Where a run stands: saved with every checkpoint, restored on resume."""

    step: int = 0
    best_value: float | None = None
    best_step: int | None = None
    stale_evals: int = 0
    history: list[dict] = field(default_factory=list)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters and the buffers (e.g. batch-norm statistics), on the CPU."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    names |= {n for n, _ in model.named_buffers()}
    return {
        name: tensor.detach().cpu().clone().contiguous()
        for name, tensor in model.state_dict().items()
        if name in names
    }


def load_trainable_state(model: torch.nn.Module, path: Path) -> None:
    """Load :func:`trainable_state` weights; every trainable parameter must be in the file."""
    from safetensors.torch import load_file

    tensors = load_file(path)
    wanted = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(wanted - set(tensors))
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} trainable tensors, e.g. {missing[0]}")
    model.load_state_dict(tensors, strict=False)


def write_weights(model: torch.nn.Module, folder: Path, state: RunState) -> None:
    """Only the weights and the state (``checkpoints/best``)."""
    from safetensors.torch import save_file

    tmp = _fresh(folder.with_name(folder.name + ".tmp"))
    save_file(trainable_state(model), tmp / WEIGHTS_FILE)
    _write_state(tmp, state)
    _replace(tmp, folder)


def write_checkpoint(
    model: torch.nn.Module, optimizer, scheduler, root: Path, state: RunState, keep: int
) -> Path:
    """``root/step_N``: weights, optimiser, schedule and state; older ones beyond ``keep``
    are removed. Call on the main process only."""
    from safetensors.torch import save_file

    folder = root / f"step_{state.step:08d}"
    tmp = _fresh(root / f"step_{state.step:08d}.tmp")
    save_file(trainable_state(model), tmp / WEIGHTS_FILE)
    torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
    _write_state(tmp, state)  # last: a folder with a state file is complete
    _replace(tmp, folder)
    for old in step_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def step_checkpoints(root: Path) -> list[Path]:
    """``step_*`` folders, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))


def resume_latest(model: torch.nn.Module, optimizer, scheduler, root: Path) -> RunState | None:
    """Load the newest intact checkpoint; corrupt ones are named in a warning and skipped."""
    for folder in reversed(step_checkpoints(root)):
        try:
            state = read_state(folder)
            load_trainable_state(model, folder / WEIGHTS_FILE)
            optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, weights_only=True))
            scheduler.load_state_dict(torch.load(folder / SCHEDULER_FILE, weights_only=True))
        except Exception as error:  # any unreadable or inconsistent file makes it corrupt
            warnings.warn(
                f"checkpoint {folder} is corrupt ({type(error).__name__}: {error}); "
                "skipping it for the previous one",
                stacklevel=2,
            )
            continue
        return state
    return None


def read_state(folder: Path) -> RunState:
    return RunState(**json.loads((folder / STATE_FILE).read_text()))


def _write_state(folder: Path, state: RunState) -> None:
    (folder / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _replace(tmp: Path, folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
