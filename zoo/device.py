"""Choosing the training device, and how the CPU keeps its memory."""

import ctypes
import ctypes.util
import functools

import torch

from zoo.errors import ConfigError


ELSEWHERE = "Use --device cpu or auto (device='cpu' in Python)."


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device (a name or a torch.device) must exist."""
    if not isinstance(name, (str, torch.device, type(None))):
        raise ConfigError(f"a device is a name such as cpu or cuda, not {name!r:.60}",
                          "Use auto, cpu, cuda, cuda:N or mps.")
    name = "auto" if name is None else str(name).strip().lower()
    if not name:  # "" was taken for auto: a typo's empty value, or --set device=
        raise ConfigError("an empty device names nothing", "Use auto, cpu, cuda, cuda:N or mps.")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}'", "Use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' was asked for but CUDA is not available here", ELSEWHERE)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device '{name}' does not exist ({torch.cuda.device_count()} CUDA devices)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but is not available here", ELSEWHERE)
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device '{name}'", "Use auto, cpu, cuda, cuda:N or mps.")
    return dev


# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD and M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_cpu_buffers() -> bool:
    """Ask glibc to keep freed CPU buffers of up to 32 MB for reuse instead of handing them back to the
    kernel. PyTorch's CPU allocator caches nothing, so a loop that allocates and frees buffers of a few MB
    (an IWAE bound decoding hundreds of images per chunk) otherwise maps, faults in and unmaps them on every
    pass: as much time in the kernel as in the computation. Process-wide and done once; a no-op (False)
    where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(_M_TRIM_THRESHOLD, 1024 ** 3))


def cuda_only_notes(train, device: torch.device) -> list[str]:
    """Notes on training settings (a TrainConfig) that act on CUDA devices only, where `device` is another:
    said wherever a configuration trains (a run, a search, a cross-validation), never silently dropped."""
    return [f"{key} {what} on CUDA devices only; on {device.type} the step runs as without it"
            for key, what in (("cuda_graph", "records the step"), ("bf16", "autocasts to bfloat16"))
            if getattr(train, key) and device.type != "cuda"]


def device_label(device: torch.device) -> str:
    """The device a run trained on, as its config.json records it: cpu, mps, or cuda with the GPU's name."""
    if device.type == "cuda":  # by its index: cuda and cuda:0 are one GPU
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


def describe(device: torch.device) -> str:
    """The device as a training's first line names it: a CPU with the threads torch computes on (which
    `zoo --threads N` or OMP_NUM_THREADS set), since on a shared machine that count decides the speed."""
    if device.type != "cpu":
        return str(device)
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"


def keeps_callers_random_state(work):
    """`work` (a public function that seeds or draws from torch's global generators: a training, a model's
    random initialisation) with the caller's generators restored once it returns or raises: the CPU's,
    and every CUDA device's where the caller had started CUDA. A user's own `torch.manual_seed` and random stream go on
    as if zoo had not been called (zoo's reproducibility comes from the seeds it sets inside)."""
    @functools.wraps(work)
    def kept(*args, **kwargs):
        # CUDA's generators only where CUDA is already up: reading them would start CUDA for a CPU run (and
        # fail in a process forked after its parent used CUDA). A generator CUDA starts with inside is seeded
        # by the work, not the caller's.
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices):
            return work(*args, **kwargs)
    return kept
