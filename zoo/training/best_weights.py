"""A run's best weights (model.safetensors): a file of their own, beside the checkpoint to resume from.

At an epoch that improved, the training writes them after the epoch's checkpoint (zoo.training.engine), never
before: a checkpoint that a full disk or a file-size limit stops leaves both files at the previous epoch, as the
run's record says. The checkpoint holds the model and its optimizer's state, so it is the larger file: where it
could be written, the weights can almost always be too. Where they were not (a kill -9 between the two writes,
another process filling the disk meanwhile), the weights lag the checkpoint's best epoch: a resume writes them
again from the checkpoint, whose model is that best epoch's (`check_on_resume`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from zoo.errors import RunError
from zoo.runs import checkpoint as ckpt
from zoo.training.regularize import plain_state_dict


def save_best(path: Path, model: torch.nn.Module) -> None:
    """The model's weights as model.safetensors holds them: plain (pruning folded in)."""
    ckpt.save_tensors(path, plain_state_dict(model), {"format": "pt"})


def check_on_resume(path: Path, model: torch.nn.Module, state: dict[str, Any], log: Callable[[str], None], *,
                    monitored: bool = True) -> None:
    """Check the best weights at `path` against the checkpoint just loaded into `model` (its `state`): a damaged
    file is refused (it would fail after every resumed epoch); a missing one is said, and `state` keeps the best
    of the epochs trained from now on; one that lags the checkpoint's best epoch is written again. A model with
    no monitor (a GAN) keeps its last epoch's weights, the checkpoint's model: written again unless they are it."""
    if not monitored:
        if not _holds(path, model):
            log(f"note: {path} did not hold the weights of the last epoch, {state['epoch']} (a stop or a failed write "
                f"after its checkpoint, or a damaged or missing file): written again from {ckpt.CHECKPOINT}")
            save_best(path, model)
        return
    best = state["best_epoch"]
    if not path.exists():
        log(f"note: {path} (the best weights, of epoch {best}) is missing: they are lost; the best of the "
            "epochs trained from now on is kept")
        state.update(best_value=None, best_epoch=0, bad_epochs=0)
        return
    try:
        saved, _ = ckpt.load_tensors(path)  # as save_best writes them, and the end of training reads them: plain
        plain = plain_state_dict(model)
        ckpt.check_state_fits({k: (tuple(v.shape), v.dtype) for k, v in plain.items()}, saved, path)
    except RunError as e:
        raise RunError(e.message, f"It holds the run's best weights (epoch {best}): restore it to train on, or "
                                  f"delete it to resume keeping the best of the epochs trained from now on "
                                  f"({ckpt.CHECKPOINT} is intact).") from None
    # The checkpoint's epoch was the best, so its model is those weights: other weights lag it (their write, after
    # the checkpoint's, did not happen)
    if best == state["epoch"] and any(not torch.equal(saved[k], v.detach().cpu()) for k, v in plain.items()):
        log(f"note: {path} did not hold the weights of the best epoch, {best} (a stop or a failed write after its "
            f"checkpoint): written again from {ckpt.CHECKPOINT}")
        save_best(path, model)


def _holds(path: Path, model: torch.nn.Module) -> bool:
    """Whether the file at `path` holds exactly `model`'s weights, as save_best writes them."""
    try:
        saved, _ = ckpt.load_tensors(path)
    except (RunError, OSError):
        return False
    plain = plain_state_dict(model)
    return saved.keys() == plain.keys() and all(torch.equal(saved[k], v.detach().cpu()) for k, v in plain.items())
