"""The whole training step recorded once in a CUDA graph and replayed for every batch (`cuda_graph`).

A small model spends most of an eager step launching kernels from Python: each of the many small
kernels of a batch costs more to launch than the work it starts. Recorded once, the step
(the batch gathered from the device-resident uint8 data, forward, backward, a fused capturable Adam
update and the running sums of the losses) replays as one launch, with no host synchronisation until
the epoch ends. Shapes must be static, so the last, shorter batch of an epoch runs eagerly.

Supported: adam / adamw / sgd, models with the default `training_step`, no pruning. A `before_step` that
changes a plain Python number the step reads (a KL warm-up's weight) ends the replays: the run goes on eagerly.
Without CUDA (tests, CPU runs) the same static step runs without recording, so its bookkeeping is
exercised everywhere; only the recording itself needs a GPU.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable

import torch
from torch import nn

from zoo.data import ImageData
from zoo.errors import ConfigError
from zoo.model import StepContext, ZooModel, has_own_training_step
from zoo.runs.config import TrainConfig
from zoo.training.batching import to_batch
from zoo.training.epochs import LossSums

WARMUP_STEPS = 3  # eager steps on a side stream before recording: cuDNN and the allocator settle
RECORDABLE = ("adam", "adamw", "sgd")  # torch's fused forms read the learning rate from a tensor


_RECORDING = threading.Lock()


@contextlib.contextmanager
def recording(graph: "torch.cuda.CUDAGraph", device: torch.device):
    """Record into `graph`: one thread at a time, on a stream of our own (torch's default capture
    stream is shared by every thread), forbidding unsafe calls in this thread only, since other threads
    (a search's concurrent groups) may be training meanwhile."""
    with _RECORDING, torch.cuda.graph(graph, stream=torch.cuda.Stream(device), capture_error_mode="thread_local"):
        yield


def try_recording(step: Callable[[], object], device: torch.device,
                  log: Callable[[str], None]) -> "torch.cuda.CUDAGraph | None":
    """Record `step` into a new CUDA graph (recording runs nothing: replay it to run the step). Where
    an operation in the step cannot be recorded (a host synchronisation, a data-dependent shape: torch
    raises a RuntimeError), say so and return None; the caller goes on eagerly, so the run is slower but
    neither lost nor wrong."""
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.current_stream(device)
    try:
        with recording(graph, device):
            step()
    except RuntimeError as e:
        torch.cuda.set_stream(stream)  # a failed recording can leave torch's capture stream current
        while isinstance(e.__context__, RuntimeError):  # the first failure, not the ended recording's
            e = e.__context__
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        log(f"note: the training step could not be recorded in a CUDA graph ({reason}); it runs eagerly")
        return None
    return graph


def on_side_stream(step: Callable[[], object], device: torch.device, side: bool = True):
    """Run an eager step; before a recording, on a side stream of its own, as torch's CUDA-graph
    guide asks of warm-up steps (so nothing recorded later depends on the main stream's history)."""
    if not side or device.type != "cuda":
        return step()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        out = step()
    torch.cuda.current_stream(device).wait_stream(stream)
    return out


def check_supported(model: ZooModel, train: TrainConfig) -> None:
    if train.optimizer not in RECORDABLE:
        raise ConfigError(f"cuda_graph supports the {', '.join(RECORDABLE)} optimizers, not '{train.optimizer}'",
                          "Use --set optimizer=adam, or cuda_graph=false.")
    if has_own_training_step(model):
        raise ConfigError(f"model '{model.name}' has its own training_step, which cuda_graph does not record",
                          "Train it with cuda_graph=false.")
    if train.prune_every:
        raise ConfigError("pruning replaces weights during training, which a recorded CUDA graph cannot follow",
                          "Train with cuda_graph=false to prune.")


def plain_numbers(model: nn.Module) -> dict[str, object]:
    """The plain Python numbers (and flags) set on the model's modules: state a recorded step cannot see."""
    return {f"{prefix}.{k}".lstrip("."): v for prefix, m in model.named_modules() for k, v in vars(m).items()
            if isinstance(v, (bool, int, float)) and k != "training"}


class NumberWatch:
    """Notices a `before_step` that changes a plain Python number on the model (a KL warm-up's weight):
    a recorded step would replay the value it was recorded with, so the caller stops recording."""

    def __init__(self, model: nn.Module, log: Callable[[str], None]):
        self.model, self.log = model, log
        self.seen = plain_numbers(model)

    def unchanged(self) -> bool:
        now = plain_numbers(self.model)
        changed = sorted(k for k, v in now.items() if self.seen.get(k) != v)
        self.seen = now
        if changed:
            self.log(f"note: {getattr(self.model, 'name', 'the model')} changes {', '.join(changed)} (a Python "
                     "number) between steps, which a recorded CUDA graph cannot follow; its steps run eagerly")
        return not changed


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Turn an Adam / AdamW / SGD (new or restored from a checkpoint) into the fused, capturable form:
    the learning rate and Adam's step counts live in device tensors, which a recorded graph reads."""
    adam = isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = True, None
        if adam:
            group["capturable"] = device.type == "cuda"  # needs a CUDA device; fused alone runs anywhere
        if not torch.is_tensor(group["lr"]):
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
    for state in optimizer.state.values():
        if "step" in state:
            state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).to(device)


class GraphStep:
    """Runs the training batches of an epoch: eagerly at first, then by replaying one recorded step."""

    def __init__(self, model: ZooModel, data: ImageData, train: TrainConfig,
                 optimizers: dict[str, torch.optim.Optimizer],
                 autocast: Callable[[], contextlib.AbstractContextManager], log: Callable[[str], None]):
        check_supported(model, train)
        self.model, self.data, self.train = model, data, train
        self.optimizers = optimizers
        self.autocast = autocast
        self.log = log
        self.device = data.train_x.device
        self.record = self.device.type == "cuda"
        self.index = torch.zeros(train.batch_size, dtype=torch.long, device=self.device)  # the static batch
        self.sums = LossSums()                    # running loss sums, written by the recorded step
        self.out: dict[str, torch.Tensor] = {}    # the recorded step's losses, valid after each replay
        self.graph = None
        self.eager_steps = 0
        self.watch = NumberWatch(model, log)
        for opt in optimizers.values():
            make_capturable(opt, self.device)
        if self.record:
            torch.backends.cudnn.benchmark = True  # static shapes: let cuDNN pick its fastest kernels once

    def _step(self, index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        batch = to_batch(self.data.train_x[index], self.data.train_y[index],
                         binarize=self.train.binarize == "dynamic", channels_last=self.train.channels_last)
        with self.autocast():
            out = ctx.run(self.model, batch)
        self.sums.add(out, index.shape[0])
        return out

    def _eager(self, index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        return on_side_stream(lambda: self._step(index, ctx), self.device, side=self.record)

    def _capture(self, ctx: StepContext) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)  # the recorded backward allocates its gradients in the graph's pool

        def step():
            self.out = self._step(self.index, ctx)

        self.graph = try_recording(step, self.device, self.log)
        if self.graph is None:  # not recordable: every later step eager, on the main stream
            self.stop_recording()

    def stop_recording(self) -> None:
        """Every later step eager, on the main stream."""
        self.record, self.graph = False, None
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)  # gradients in a failed or dropped recording's memory

    def run_epoch(self, order: torch.Tensor, ctx: StepContext,
                  on_batch: Callable[[int, dict[str, torch.Tensor]], None]) -> LossSums:
        """Train on the images in `order`; returns the sums of the losses over them (on the device)."""
        self.sums.zero()
        bs, n = self.train.batch_size, order.shape[0]
        full = n // bs
        for i in range(full):
            self.index.copy_(order[i * bs:(i + 1) * bs])
            self.model.before_step(ctx)
            if self.record and not self.watch.unchanged():
                self.stop_recording()
            if self.graph is None and self.record and self.eager_steps >= WARMUP_STEPS:
                self._capture(ctx)
            if self.graph is not None:
                self.graph.replay()
                out = self.out
            else:
                out = self._eager(self.index, ctx)
                self.eager_steps += 1
            ctx.step += 1
            on_batch(bs, out)
        if n % bs:
            self.model.before_step(ctx)
            out = self._eager(order[full * bs:], ctx)
            ctx.step += 1
            on_batch(n % bs, out)
        return self.sums
