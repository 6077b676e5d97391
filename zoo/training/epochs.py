"""The bookkeeping of an epoch, written once for every way zoo trains: one run eagerly or through a
recorded CUDA graph (zoo.training.engine), and many trials in one vectorised step (zoo.training.multitrial).

- `lr_factor`: the learning-rate schedule, a function of the epoch alone (resume needs no state);
- `LossSums`: the running sums of a step's losses, weighted by the batch size, kept on the device
  (scalars for one run, a value per trial for many) until the epoch ends;
- `epoch_record`: the metrics.jsonl row of an epoch;
- `not_finite`: the values of a row that diverged;
- `Tracker`: one run's (or trial's) best epoch, patience and ending;
- `validation_means`: the mean validation losses over a split, in batches, on draws fixed by `fixed_draws`;
- `close_epoch`: what an epoch's losses mean for training: its row, whether it is the best so far,
  and whether training stops (diverged, or early stopping);
- `run_epochs`: the epoch loop itself, for one run (zoo.training.engine) or trials that train together
  (zoo.training.multitrial): they differ only in how an epoch's batches are stepped and what a member
  does with the end of its epoch.
"""

from __future__ import annotations

import math
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch

from zoo.errors import ConfigError
from zoo.runs.config import TrainConfig
from zoo.training.batching import batches

EVAL_BATCH = 1024  # images a validation batch holds at least (no gradients: larger than training's)


def lr_factor(train: TrainConfig, epoch: int) -> float:
    """The factor on the learning rate in `epoch` (1-based): 1, or a cosine from 1 towards 0."""
    if train.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(train.epochs, 1)))
    return 1.0


class LossSums:
    """Sums of losses over the images of an epoch. `add(out, n)` adds a step's mean losses times its
    batch size; `means(n)` divides by the images seen, as Python floats (or a list per trial), which is
    the one point where the device is waited for. The sums are device tensors, updated in place, so a
    recorded CUDA graph may hold them."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}

    def add(self, out: dict[str, torch.Tensor], n: int) -> None:
        for key, value in out.items():
            value = value.detach().float()
            if key not in self.sums:  # made by the first (eager) step, before any recording
                self.sums[key] = torch.zeros_like(value)
            self.sums[key].add_(value * n)

    def zero(self) -> None:
        for acc in self.sums.values():
            acc.zero_()

    def keep(self, index: torch.Tensor) -> None:
        """Only the trials at `index` go on (a value per trial)."""
        self.sums = {k: v[index] for k, v in self.sums.items()}

    def means(self, n: int) -> dict[str, Any]:
        return {k: (v / max(n, 1)).tolist() for k, v in self.sums.items()}


@contextmanager
def fixed_draws(seed: int, device: torch.device):
    """The random draws of a validation pass (a DAE's noise, a VAE's z), the same every epoch: its figure then
    moves with the weights alone, so early stopping and a search's pruning compare epochs on one set of draws.
    The training's random stream is left where it was (on the CPU and a CUDA device; another device's draws
    go on as they did)."""
    if device.type not in ("cpu", "cuda"):
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(zlib.crc32(f"validation {seed}".encode()))  # apart from the seed that drew the weights
        yield


@torch.no_grad()
def validation_means(step, x: torch.Tensor, y: torch.Tensor, batch_size: int, **batching) -> dict[str, Any]:
    """The mean of `step(batch)`'s losses over the images `x` (labels `y`), in batches of at least
    EVAL_BATCH: floats for one model, a list per trial for many."""
    sums = LossSums()
    for batch in batches(x, y, max(EVAL_BATCH, batch_size), **batching):
        sums.add(step(batch), len(batch))
    return sums.means(x.shape[0])


def epoch_record(epoch: int, train: dict[str, float], val: dict[str, float], lrs: dict[str, float],
                 images_per_s: float, seconds: float) -> dict[str, Any]:
    """The metrics.jsonl row of an epoch: its number, the training and validation losses, the learning
    rates, and how fast it went."""
    return {"epoch": epoch, **{f"train_{k}": v for k, v in train.items()}, **{f"val_{k}": v for k, v in val.items()},
            **lrs, "images_per_s": round(images_per_s, 1), "seconds": round(seconds, 3)}


def not_finite(record: dict[str, Any]) -> list[str]:
    """The keys of a row whose value is NaN or infinite: the training diverged."""
    return [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]


class Tracker:
    """One run's or trial's progress over the epochs: the epoch done, the best value of the monitored
    loss and its epoch, the epochs since it last improved, and why training stopped. It reads and
    writes a plain dict (`state`), the one a checkpoint saves, so a resumed run goes on exactly."""

    KEYS = ("epoch", "best_value", "best_epoch", "bad_epochs", "stopped")

    def __init__(self, patience: int, state: dict[str, Any] | None = None):
        """`state`: the dict to keep the progress in (a trainer's, saved with its checkpoint)."""
        self.patience = patience
        self.state = state if state is not None else {}
        for key, value in zip(self.KEYS, (0, None, 0, 0, None)):
            self.state.setdefault(key, value)

    @property
    def best_epoch(self) -> int:
        return self.state["best_epoch"]

    @property
    def best_value(self) -> float | None:
        return self.state["best_value"]

    @property
    def stopped(self) -> str | None:
        return self.state["stopped"]

    def end_epoch(self, epoch: int, watched: float | None) -> bool:
        """Count `epoch` done with the monitored value `watched` (None: nothing is monitored, every
        epoch is the best); returns whether it is the best so far."""
        best = self.state["best_value"]
        improved = watched is None or best is None or watched < best
        if improved:
            self.state.update(best_value=watched, best_epoch=epoch, bad_epochs=0)
        else:
            self.state["bad_epochs"] += 1
        self.state["epoch"] = epoch
        return improved

    def should_stop(self) -> bool:
        """Early stopping: `patience` epochs without a better value (0: never); marks the ending."""
        if self.patience and self.state["bad_epochs"] >= self.patience:
            self.state["stopped"] = "early_stopping"
            return True
        return False

    def stop(self, why: str) -> None:
        """Training ended for another reason: pruned, diverged."""
        self.state["stopped"] = why

    def finish(self) -> str:
        """How training ended: what stopped it, else it completed its epochs."""
        if self.state["stopped"] is None:
            self.state["stopped"] = "completed"
        return self.state["stopped"]

    def go_on_after_early_stop(self) -> None:
        """A resumed early-stopped run asked to train further: patience counts afresh."""
        self.state.update(bad_epochs=0, stopped=None)


@dataclass
class EpochEnd:
    record: dict[str, Any]                                 # the metrics.jsonl row
    improved: bool = False                                 # the best epoch so far: keep its weights
    not_finite: list[str] = field(default_factory=list)    # the row's NaN or infinite keys: diverged
    stop: str | None = None                                # "diverged" or "early_stopping": train no further


def close_epoch(tracker: Tracker, epoch: int, train: dict[str, float], val: dict[str, float],
                lrs: dict[str, float], images_per_s: float, seconds: float, monitor: str | None) -> EpochEnd:
    """End `epoch` of one run or trial: its row, the monitored value (the validation one, else the
    training one) counted by `tracker`, and whether training stops. A row with a non-finite value ends
    training as diverged, and counts no epoch."""
    record = epoch_record(epoch, train, val, lrs, images_per_s, seconds)
    bad = not_finite(record)
    if bad:
        tracker.stop("diverged")
        return EpochEnd(record, not_finite=bad, stop="diverged")
    watched = (val or train).get(monitor) if monitor else None
    if monitor and watched is None:  # else every epoch counted as the best: early stopping off, the last kept
        logged = ", ".join(sorted(val or train)) or "none"
        raise ConfigError(f"the model's monitor '{monitor}' is not among the {'validation' if val else 'training'} "
                          f"keys it logs ({logged})",
                          "monitor names the key that picks the best epoch and stops early: a fix for the model's "
                          "author (one of those keys, or None to keep the last epoch).")
    improved = tracker.end_epoch(epoch, watched)
    record["best"] = improved
    return EpochEnd(record, improved, stop="early_stopping" if tracker.should_stop() else None)


class Member(Protocol):
    """What trains in the loop: one run, or one of the trials training together."""

    tracker: Tracker


@dataclass
class EpochLosses:
    """An epoch of training steps, for each member still training (in order)."""

    train: list[dict[str, float]]   # the mean training losses
    lrs: list[dict[str, float]]     # the learning rates it ran with
    images: int                     # images each member trained on
    seconds: float                  # the wall time of the epoch's steps (the members' together)


def run_epochs(members: Sequence[Member], epochs: range, monitor: str | None, *,
               train_epoch: Callable[[int], EpochLosses], validate: Callable[[], list[dict[str, float]]],
               end_member: Callable[[int, Member, EpochEnd], bool],
               start_epoch: Callable[[int], None] | None = None,
               keep: Callable[[list[int]], None] | None = None) -> None:
    """The one epoch loop: for each epoch, `start_epoch(epoch)`, the training steps (`train_epoch`),
    the validation losses (`validate`), then for each member its row, best epoch, divergence and early
    stopping (close_epoch), and `end_member(epoch, member, end)`, which says whether it trains on. The
    members that stop leave (`keep(indices)` is told who stays); the loop ends when none is left. The
    members trained side by side: each is given its share of the time."""
    members = list(members)
    for epoch in epochs:
        if start_epoch is not None:
            start_epoch(epoch)
        losses = train_epoch(epoch)
        val = validate()
        share = losses.seconds / len(members)
        staying = []
        for j, member in enumerate(members):
            end = close_epoch(member.tracker, epoch, losses.train[j], val[j], losses.lrs[j],
                              losses.images / share, share, monitor)
            if end_member(epoch, member, end):
                staying.append(j)
        if len(staying) < len(members):
            if keep is not None and staying:
                keep(staying)
            members = [members[j] for j in staying]
        if not members:
            return
