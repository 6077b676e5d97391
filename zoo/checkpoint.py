"""Run folders on disk: config.json, model.safetensors, checkpoint.safetensors, metrics.jsonl.

Every file is written to a temporary name and renamed into place, so a process killed at any moment
leaves the previous complete version. Only safetensors are ever read: zoo never unpickles anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from zoo.errors import RunError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
EVAL = "eval.json"
CARD = "README.md"


def atomic_write(path: Path, data: bytes | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e})", "The run folder is damaged.") from None


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors refuses shared or strided storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    atomic_write(path, st_save(_plain(tensors), metadata=metadata))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file, with clear errors for missing, truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} is missing")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        metadata = read_metadata(data)
    except (SafetensorError, ValueError, RuntimeError, OSError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is truncated or corrupt: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                       "Delete the run or restore the file; zoo only reads intact safetensors files.") from None
    return tensors, metadata


def read_metadata(data: bytes) -> dict[str, str]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return header.get("__metadata__", {}) or {}


# --------------------------------------------------------------------------- training state

def save_training_state(path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                        trainer_state: dict[str, Any], rng: dict[str, torch.Tensor]) -> None:
    """Everything resume needs, in one file, so one rename makes it consistent."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
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
    """Restore model and optimizer state; return (trainer_state, rng tensors)."""
    tensors, meta = load_tensors(path)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    load_state(model, model_sd, path)
    for name, opt in optimizers.items():
        groups = json.loads(meta[f"opt.{name}.param_groups"])
        scalars = json.loads(meta.get(f"opt.{name}.scalars", "{}"))
        state: dict[int, dict[str, Any]] = {}
        prefix = f"opt.{name}."
        params = [p for g in opt.param_groups for p in g["params"]]
        for k, v in tensors.items():
            if k.startswith(prefix):
                idx, key = k[len(prefix):].split(".", 1)
                p = params[int(idx)] if int(idx) < len(params) else None
                if p is not None and v.shape == p.shape:
                    # the parameter's memory layout (channels-last): fused optimizers read both as flat arrays
                    v = torch.empty_like(p, dtype=v.dtype).copy_(v)
                state.setdefault(int(idx), {})[key] = v.to(device) if key != "step" else v
        for k, v in scalars.items():
            idx, key = k.split(".", 1)
            state.setdefault(int(idx), {})[key] = v
        opt.load_state_dict({"state": state, "param_groups": groups})
    rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
    return json.loads(meta["trainer"]), rng


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights strictly: a file whose tensors do not fit the model is foreign, and refused."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        if wrong:
            details.append(f"wrong shape {', '.join(wrong[:3])}")
        raise RunError(f"{source} does not fit the model described by its config.json ({'; '.join(details)})",
                       "The weights come from another model or configuration.")
    model.load_state_dict(state, strict=True)
