"""The training state of a resumable run in checkpoint.safetensors: the model's weights, every
optimizer's state, the trainer's counters and the random generators, written in one file (one rename
makes it consistent) and checked whole when read back: an inconsistent checkpoint is refused as damaged.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import torch

from zoo.console import to_stderr
from zoo.errors import RunError, TrainingDiverged
from zoo.model import step_state_names
from zoo.runs.checkpoint import CHECKPOINT, damaged, load_state, load_tensors, save_tensors
from zoo.runs.files import read_header


def recorded_trainer(run_dir: Path) -> dict[str, Any] | None:
    """The trainer's counters a run's checkpoint records (epoch: the epochs finished, best_epoch, bad_epochs),
    from its header alone; None where there is no readable checkpoint (published weights carry none)."""
    try:
        trainer = json.loads(read_header(Path(run_dir) / CHECKPOINT)[1]["trainer"])
        return trainer if isinstance(trainer, dict) and isinstance(trainer.get("epoch"), int) else None
    except (OSError, RunError, ValueError, KeyError, TypeError):
        return None


def untrained(run_dir: Path) -> bool:
    """Whether a run was stopped before it finished an epoch, by its checkpoint (published weights have none:
    False; a lost training log does not make a trained run untrained)."""
    return (recorded_trainer(run_dir) or {}).get("epoch") == 0


def say_if_untrained(run_dir: Path, these: str) -> None:
    """A run stopped during its first epoch holds the weights it started with: measured or sampled all the same,
    but said (`these`: what is of them, "these images are of")."""
    if untrained(run_dir):
        to_stderr(f"note: {run_dir} has not finished an epoch: {these} its initial, untrained weights "
                  f"(zoo train --resume {shlex.quote(str(run_dir))} trains it)")


def save_training_state(path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                        trainer_state: dict[str, Any], rng: dict[str, torch.Tensor]) -> None:
    """Everything resume needs, in one file, so one rename makes it consistent."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    # What a model carries from step to step (zoo.model.step_state_buffer: a GAN's streak of collapsed steps) is
    # not part of its weights, but a resumed run goes on from it as the uninterrupted one did.
    buffers = dict(model.named_buffers())
    tensors.update({f"step.{name}": buffers[name] for name in sorted(step_state_names(model))})
    meta = {"trainer": json.dumps(trainer_state)}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars = {}
        for idx, st in sd["state"].items():
            for key, value in st.items():
                if torch.is_tensor(value):
                    tensors[f"opt.{name}.{idx}.{key}"] = value
                else:
                    scalars[f"{idx}.{key}"] = value
        groups = [{k: float(v) if torch.is_tensor(v) else v for k, v in g.items()} for g in sd["param_groups"]]
        meta[f"opt.{name}.param_groups"] = json.dumps(groups)  # a CUDA-graph run keeps its lr in a tensor
        meta[f"opt.{name}.scalars"] = json.dumps(scalars)
    tensors.update({f"rng.{k}": v for k, v in rng.items()})
    save_tensors(path, tensors, meta)


def load_training_state(path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer]):
    """Restore model and optimizer state; return (trainer_state, rng tensors). A checkpoint whose
    metadata is missing, not JSON, of the wrong type or inconsistent with the optimizers or the random
    generators is refused as damaged, with nothing half-restored left to train on."""
    path = Path(path)
    tensors, meta = load_tensors(path)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    load_state(model, model_sd, path)
    try:
        _restore_step_state(model, tensors)
        trainer = _trainer_state(meta)
        for name, opt in optimizers.items():
            _restore_optimizer(opt, name, tensors, meta, device)
        rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
        for key, value in rng.items():
            if value.dtype != torch.uint8 or value.dim() != 1:
                raise ValueError(f"random-generator state '{key}' is not a byte vector")
        if "shuffle" in rng:  # the state a torch.Generator accepts (set_state checks its size)
            torch.Generator().set_state(rng["shuffle"])
        if "torch" in rng:
            torch.Generator().set_state(rng["torch"])
    except Overflowed as e:  # a file whose checksum holds: training overflowed, nothing damaged it
        raise TrainingDiverged(f"{path.parent} cannot go on: its training diverged, its optimizer's state "
                               f"overflowed ({e}), as under a learning rate too high for the model",
                               "Its best epoch's weights are in model.safetensors (zoo eval, zoo generate read "
                               "them); train anew with a lower --lr.") from None
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError, AssertionError, AttributeError) as e:
        raise damaged(path, f"its training state is inconsistent ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else 'missing field'})") from None
    return trainer, rng


def _restore_step_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """The model's step state as the checkpoint saved it; a checkpoint written before zoo saved it leaves it as
    built (it starts afresh, as it did then)."""
    buffers = dict(model.named_buffers())
    for name in step_state_names(model):
        saved = tensors.get(f"step.{name}")
        if saved is None:
            continue
        if saved.shape != buffers[name].shape:
            raise ValueError(f"step state '{name}' has shape {tuple(saved.shape)}, not {tuple(buffers[name].shape)}")
        with torch.no_grad():
            buffers[name].copy_(saved)


class Overflowed(ValueError):
    """An optimizer state that is not finite in a checkpoint whose checksum holds: written so by training."""


TRAINER_FIELDS = {"epoch": int, "best_epoch": int, "bad_epochs": int}


def _trainer_state(meta: dict[str, str]) -> dict[str, Any]:
    if "trainer" not in meta:
        raise KeyError("the trainer's state is missing")
    state = json.loads(meta["trainer"])
    if not isinstance(state, dict):
        raise TypeError("the trainer's state is not a table")
    for key, tp in TRAINER_FIELDS.items():
        if type(state.get(key)) is not tp or state[key] < 0:
            raise ValueError(f"trainer.{key} must be a count, it is {state.get(key)!r}")
    best = state.get("best_value")
    if best is not None and (type(best) not in (int, float) or not math.isfinite(best)):
        raise ValueError(f"trainer.best_value must be a finite number, it is {best!r}")
    if state.get("stopped") not in (None, "completed", "early_stopping", "diverged"):
        raise ValueError(f"trainer.stopped is {state.get('stopped')!r}")
    return state


def _restore_optimizer(opt: torch.optim.Optimizer, name: str, tensors: dict[str, torch.Tensor],
                       meta: dict[str, str], device: torch.device) -> None:
    groups = json.loads(meta[f"opt.{name}.param_groups"])
    scalars = json.loads(meta.get(f"opt.{name}.scalars", "{}"))
    if not (isinstance(groups, list) and len(groups) == len(opt.param_groups)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)):
        raise ValueError(f"optimizer '{name}' has {len(opt.param_groups)} parameter groups, the checkpoint "
                         "describes others")
    if [g["params"] for g in groups] != [list(range(sum(len(h["params"]) for h in opt.param_groups[:i]),
                                                 sum(len(h["params"]) for h in opt.param_groups[:i + 1])))
                                          for i in range(len(opt.param_groups))]:
        raise ValueError(f"optimizer '{name}' holds other parameters than the checkpoint describes")
    for live, saved in zip(opt.param_groups, groups):
        # The hyperparameters but the learning rate (the schedule's) come from config.json: they must
        # agree. How the update runs (fused, capturable, ...) is the engine's choice at run time.
        for key, value in live.items():
            if key in ("params", "lr", "initial_lr", *RUNTIME_GROUP_KEYS):
                continue
            if key not in saved or _plain_value(saved[key]) != _plain_value(value):
                raise ValueError(f"optimizer '{name}': {key}={saved.get(key)!r} disagrees with the run's "
                                 f"config.json ({_plain_value(value)!r})")
        lr = saved.get("lr")
        if type(lr) not in (int, float) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"optimizer '{name}': lr={lr!r} is not a learning rate")
    if not isinstance(scalars, dict):
        raise TypeError(f"optimizer '{name}': its scalars are not a table")
    state: dict[int, dict[str, Any]] = {}
    prefix = f"opt.{name}."
    params = [p for g in opt.param_groups for p in g["params"]]
    for k, v in tensors.items():
        if k.startswith(prefix):
            idx, key = k[len(prefix):].split(".", 1)
            p = params[int(idx)]
            if v.dim() > 0 and v.shape != p.shape:
                raise ValueError(f"optimizer '{name}': state {key} of parameter {idx} has shape "
                                 f"{tuple(v.shape)}, the parameter {tuple(p.shape)}")
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise Overflowed(f"optimizer '{name}': state {key} of parameter {idx} is not finite")
            if key == "step" and float(v) < 0:
                raise ValueError(f"optimizer '{name}': step {float(v)} is negative")
            if v.shape == p.shape:
                # the parameter's memory layout (channels-last): fused optimizers read both as flat arrays
                v = torch.empty_like(p, dtype=v.dtype).copy_(v)
            state.setdefault(int(idx), {})[key] = v.to(device) if key != "step" else v
    for k, v in scalars.items():
        idx, key = k.split(".", 1)
        params[int(idx)]  # noqa: B018  (an index past the parameters is damage)
        state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


RUNTIME_GROUP_KEYS = ("fused", "capturable", "foreach", "differentiable")


def _plain_value(value: Any) -> Any:
    """A param-group setting as JSON has it (tuples as lists, tensors as floats), for comparison."""
    if torch.is_tensor(value):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_plain_value(v) for v in value]
    return value
