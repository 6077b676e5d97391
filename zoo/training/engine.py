"""Training a run: the engine every plugin shares, in the one epoch loop (zoo.training.epochs.run_epochs)
that vectorised trials (zoo.training.multitrial) go through too.

Batches index device-resident uint8 tensors; the plugin's `training_step` does the rest through `StepContext.optimize`,
eagerly or recorded once in a CUDA graph (zoo.training.graphstep). Each epoch ends with validation, early stopping,
an atomic checkpoint and a line in metrics.jsonl, in that order, so a run killed at any moment resumes."""

from __future__ import annotations

import contextlib
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from zoo.console import to_stderr
from zoo.device import cuda_only_notes
from zoo.data import ImageData
from zoo.errors import ConfigError, Interrupted, RunError, TrainingDiverged, out_of_memory, storage_error
from zoo.interrupts import holding_interrupts
from zoo.model import StepContext, ZooModel
from zoo.runs import checkpoint as ckpt
from zoo.runs.config import TrainConfig
from zoo.runs.lock import still_writing
from zoo.runs.training_state import load_training_state, save_training_state
from zoo.training import best_weights
from zoo.training.batching import batches, check_batch_norm
from zoo.training.callbacks import Callback, LossStep, divergence_hint  # noqa: F401  (Callback: also engine's)
from zoo.training.compiling import compile_in_place, from_compiler
from zoo.training.epochs import (EpochEnd, EpochLosses, LossSums, Tracker, fixed_draws, lr_factor, run_epochs,
                                 validation_means)
from zoo.training.graphstep import GraphStep, check_supported
from zoo.training.optim import model_optimizers
from zoo.training.regularize import make_permanent, reparametrize_like


@dataclass
class TrainResult:
    model: ZooModel = field(repr=False)  # the torch module: its repr is every layer
    run_dir: Path | None
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    best_epoch: int = 0
    best_value: float | None = None
    stopped: str = "completed"  # completed | early_stopping
    logging_seconds: dict[str, float] = field(default_factory=dict)  # the time each logger (--log) took


class Trainer:
    def __init__(self, model: ZooModel, data: ImageData, train: TrainConfig, *, run_dir: Path | None = None,
                 callbacks: list[Callback] | tuple = (), log: Callable[[str], None] = to_stderr,
                 progress: bool | None = None):
        self.model, self.data, self.train = model, data, train
        self.run_dir = Path(run_dir) if run_dir else None
        self.callbacks, self.log = list(callbacks), log
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.device = model.device
        if train.channels_last:
            model.to(memory_format=torch.channels_last)  # 4-D weights only; the rest is unchanged
        if train.compile:
            compile_in_place(model)
        model.check_training(train, data)  # settings it cannot train with, before anything is written
        check_batch_norm(model, train.batch_size, int(data.train_x.shape[0]))
        self.optimizers = model_optimizers(model, train)
        self.shuffle = torch.Generator().manual_seed(train.seed)
        self.state: dict[str, Any] = {}  # the epoch done, the best epoch and value, ...: saved in checkpoints
        self.tracker = Tracker(train.patience, self.state)
        self.history: list[dict[str, Any]] = []
        self.resumed = False
        self.started = False  # begin() wrote the epoch-0 files
        self.saved_epoch = 0  # the epoch checkpoint.safetensors holds
        self.stopped_after: int | None = None  # the epoch a stop held back while its files were written followed
        self.graph_step = None  # zoo.training.graphstep.GraphStep with cuda_graph, made once the state is final
        if train.cuda_graph:
            check_supported(model, train)
        for note in cuda_only_notes(train, self.device):  # after the refusals: "ignored here", then refused, jarred
            log(f"note: {note}")

    def _path(self, name: str) -> Path | None:  # a folder moved away while it trains is not made again
        return still_writing(self.run_dir) / name if self.run_dir else None

    # ------------------------------------------------------------------ rng state for exact resume
    def _rng(self) -> dict[str, torch.Tensor]:
        rng = {"shuffle": self.shuffle.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def _restore_rng(self, rng: dict[str, torch.Tensor]) -> None:
        if "shuffle" in rng:
            self.shuffle.set_state(rng["shuffle"])
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def resume(self) -> None:
        """Load checkpoint.safetensors and the metrics written up to it."""
        try:
            reparametrize_like(self.model, self._path(ckpt.CHECKPOINT))  # pruning masks saved mid-training
            state, rng = load_training_state(self._path(ckpt.CHECKPOINT), self.model, self.optimizers)
        except RunError as e:  # the best weights are a file of their own: say what still works
            raise RunError(e.message, f"Restore {ckpt.CHECKPOINT} to train on. The run's {ckpt.WEIGHTS} (its best "
                                      "weights) is a file of its own: if intact, it still loads, evaluates and "
                                      "samples.") from None
        self.state.update(state)
        self.saved_epoch = self.state["epoch"]
        self._restore_rng(rng)
        if self.saved_epoch:
            best_weights.check_on_resume(self._path(ckpt.WEIGHTS), self.model, self.state, self.log,
                                         monitored=self.model.monitor is not None)
        metrics = self._path(ckpt.METRICS)
        rows, lines, dropped = ckpt.metrics_rows(metrics) if metrics.exists() else ([], [], 0)
        if dropped:
            self.log(f"note: {dropped} damaged line(s) of {metrics} dropped (cut short by a kill, or edited)")
        self.history = [r for r in rows if r["epoch"] <= self.state["epoch"]]
        if self.saved_epoch and not self.history:
            self.log(f"note: {metrics} {'holds no epoch' if metrics.exists() else 'is missing'}: the log of epochs "
                     f"1-{self.saved_epoch} (their metrics and times) is lost; it goes on from epoch "
                     f"{self.saved_epoch + 1}")
        if metrics.exists():  # its rows up to the checkpoint, as written
            ckpt.atomic_write(metrics, "".join(line + "\n" for line in lines[:len(self.history)]))
        self.resumed = True

    # ------------------------------------------------------------------ the loop
    def _autocast(self, cache: bool = True):
        if self.train.bf16 and self.device.type == "cuda":
            # a recorded CUDA graph must not keep autocast's cast cache between replays
            return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
        return contextlib.nullcontext()

    def _set_lr(self, epoch: int) -> None:
        """Stateless schedule: the factor depends on the epoch alone, so resume needs no scheduler state."""
        factor = lr_factor(self.train, epoch)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", float(group["lr"]))
                if torch.is_tensor(group["lr"]):  # a recorded CUDA graph reads this very tensor
                    group["lr"].fill_(group["initial_lr"] * factor)
                else:
                    group["lr"] = group["initial_lr"] * factor

    def _learning_rates(self) -> dict[str, float]:
        def lr(opt):  # a float, or a float32 tensor under cuda_graph (shown without its rounding noise)
            value = opt.param_groups[0]["lr"]
            return float(f"{float(value):.7g}") if torch.is_tensor(value) else value

        if len(self.optimizers) == 1:
            return {"lr": lr(next(iter(self.optimizers.values())))}
        return {f"lr_{name}": lr(opt) for name, opt in self.optimizers.items()}

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], float]:
        model, data, bs = self.model, self.data, self.train.batch_size
        self._set_lr(epoch)
        model.train()
        n = data.train_x.shape[0]
        order = torch.randperm(n, generator=self.shuffle).to(self.device)
        ctx = StepContext(self.optimizers, epoch, after_backward=self._after_backward(), on_loss=self._on_loss())
        steps = math.ceil(n / bs)
        ctx.steps_per_epoch = steps
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, unit="img", unit_scale=True, leave=False, file=sys.stderr,
                       desc=f"epoch {epoch}/{self.train.epochs}", dynamic_ncols=True)
        done = 0

        def on_batch(size: int, out: dict[str, torch.Tensor]) -> None:
            nonlocal done
            if bar is not None:
                bar.update(size)
                if done % 20 == 0 or done == steps - 1:
                    bar.set_postfix(loss=f"{out['loss'].item():.4g}" if "loss" in out else "")
            done += 1

        start = time.perf_counter()
        if self.train.cuda_graph:
            if self.graph_step is None:
                self.graph_step = GraphStep(model, data, self.train, self.optimizers,
                                            lambda: self._autocast(cache=False), self.log)
            sums = self.graph_step.run_epoch(order, ctx, on_batch)
        else:
            sums = LossSums()
            for batch in batches(data.train_x, data.train_y, bs, order, binarize=self.train.binarize == "dynamic",
                                 channels_last=self.train.channels_last):
                model.before_step(ctx)
                with self._autocast():
                    out = ctx.run(model, batch)
                ctx.step += 1
                sums.add(out, len(batch))
                on_batch(len(batch), out)
        means = sums.means(n)  # waits for the device
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        return means, seconds

    def _having(self, hook: str) -> list[Callback]:
        """The callbacks that implement a per-step `hook`: with none, the step makes no call for it."""
        return [cb for cb in self.callbacks if getattr(type(cb), hook) is not getattr(Callback, hook)]

    def _after_backward(self):
        """StepContext's `after_backward`, when a callback has one."""
        active = self._having("after_backward")
        return (lambda name: [cb.after_backward(self, name) for cb in active]) if active else None

    def _on_loss(self):
        """StepContext's `on_loss`: each callback in turn may change the loss an optimizer minimises."""
        active = self._having("on_loss")
        if not active:
            return None

        def on_loss(ctx: StepContext, loss: torch.Tensor, optimizer: str) -> torch.Tensor:
            step = LossStep(self.model, ctx.batch, optimizer, loss, ctx.logs)
            for cb in active:
                cb.on_loss(self, step)
            return step.loss

        return on_loss

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Mean of the model's validation losses over (x, y)."""
        self.model.eval()

        def step(batch):
            with self._autocast():
                return self.model.validation_step(batch)

        with fixed_draws(self.train.seed, self.device):
            return validation_means(step, x, y, self.train.batch_size, channels_last=self.train.channels_last)

    def begin(self) -> None:
        """Write the run's epoch-0 files: the initial weights, a checkpoint to resume from and an empty
        metrics.jsonl, so a run is loadable and resumable from its first moment (the caller writes
        config.json after them: the file that makes a folder a run)."""
        if self.run_dir:
            best_weights.save_best(self._path(ckpt.WEIGHTS), self.model)
            save_training_state(self._path(ckpt.CHECKPOINT), self.model, self.optimizers, self.state, self._rng())
            ckpt.atomic_write(self._path(ckpt.METRICS), "")
        self.started = True

    def fit(self, resume: bool = False) -> TrainResult:
        if resume and not self.resumed:
            self.resume()
        elif not resume and not self.started:
            self.begin()
        for cb in self.callbacks:
            cb.on_train_start(self)
        try:
            run_epochs([self], range(self.state["epoch"] + 1, self.train.epochs + 1), self.model.monitor,
                       start_epoch=lambda epoch: [cb.on_epoch_start(self, epoch) for cb in self.callbacks],
                       train_epoch=self._epoch_losses, validate=lambda: [self._validation()],
                       end_member=self._end_of_epoch)
        except KeyboardInterrupt:
            where = (f" Resume with: zoo train --resume {shlex.quote(str(self.run_dir))} (from Python: "  # the last
                     f"zoo.train(resume={str(self.run_dir)!r}))") if self.run_dir else ""  # finished epoch is saved
            done = self.saved_epoch if self.run_dir else self.state["epoch"]  # (a stop before a checkpoint: the last)
            saved = f"epochs up to {done} are saved" if done else "no epoch was finished (a resume starts at epoch 1)"
            when = f"after epoch {done}" if self.stopped_after == done else f"during epoch {done + 1}"
            if not self.run_dir:  # a fold or a search trial: its caller says what is kept
                raise Interrupted(f"interrupted {when}") from None
            raise Interrupted(f"interrupted {when}; {saved}.{where}") from None
        except OSError as e:  # a full disk, a size limit, a read-only folder (a closed log pipe stays one)
            error = e if isinstance(e, BrokenPipeError) else storage_error(e, "cannot write", self._saved_note())
            raise error from None
        except (MemoryError, RuntimeError) as e:  # an allocation that failed: said, with what is saved
            oom = out_of_memory(e, self.device.type, self._saved_note(resume=False))
            if oom is None:
                raise
            raise oom from None
        self.tracker.finish()
        try:
            with holding_interrupts():  # a stop now lets the best weights' pictures be drawn first, then stops
                return self._finish()
        except OSError as e:
            raise storage_error(e, "cannot write", self._saved_note()) from None

    def _epoch_losses(self, epoch: int) -> EpochLosses:
        try:
            means, seconds = self._train_epoch(epoch)
        except TrainingDiverged as e:  # a plugin's own check (e.g. a GAN's collapse)
            self._record_divergence({"epoch": epoch, "reason": e.message})
            raise
        except Exception as e:
            if self.train.compile and from_compiler(e):
                again = f"; this run: zoo train --resume {shlex.quote(str(self.run_dir))} --set compile=false"
                raise ConfigError(f"torch.compile failed: {str(e).strip().splitlines()[0][:300]}", "Train with "
                                  f"compile=false (it changes speed only){again * bool(self.run_dir)}.") from e
            raise
        return EpochLosses([means], [self._learning_rates()], self.data.train_x.shape[0], seconds)

    def _validation(self) -> dict[str, float]:
        return self.evaluate(self.data.val_x, self.data.val_y) if self.data.val_x.shape[0] else {}

    def _end_of_epoch(self, epoch: int, member, end: EpochEnd) -> bool:
        """The run's side of an epoch's end: divergence stops it with an error, the best weights and the
        epoch's row and checkpoint are written; False once it stops early."""
        if end.not_finite:
            self._diverged(epoch, end.record, end.not_finite)
        try:
            with holding_interrupts():  # the metrics line, the checkpoint and the best weights: one epoch's, together
                self._write_epoch(epoch, end.record)
                if end.improved and self.run_dir:  # after the checkpoint: the weights never run ahead of the record
                    best_weights.save_best(self._path(ckpt.WEIGHTS), self.model)
        except KeyboardInterrupt:  # a stop held until the files were whole: this epoch is done, and said
            if not self.run_dir or self.saved_epoch == epoch:
                self.stopped_after = epoch
                self._announce_epoch(epoch, end.record)
            raise
        self._announce_epoch(epoch, end.record)
        if end.stop:
            self.log(f"early stopping: no better {self.model.monitor} for {self.train.patience} epochs; "
                     f"best was epoch {self.state['best_epoch']}")
            return False
        return True

    def _saved_note(self, resume: bool = True) -> str:
        if not self.run_dir:
            return ""
        if not resume:  # the run's settings cannot go on as they are: what is kept, and how to start again
            return (f"Epochs up to {self.saved_epoch} are saved in {self.run_dir}" if self.saved_epoch else
                    f"No epoch was trained; start again with --overwrite to replace {self.run_dir}")
        saved = f"Epochs up to {self.saved_epoch} are saved" if self.saved_epoch else "No epoch was finished"
        again = f"zoo train --resume {shlex.quote(str(self.run_dir))}"
        return f"{saved} in {self.run_dir}; once that is fixed, continue with `{again}`"

    def _write_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.run_dir:
            # The metrics line first: a kill before the checkpoint is written leaves a line that resume
            # drops (it keeps lines up to the checkpoint's epoch) and then writes again.
            with open(self._path(ckpt.METRICS), "a") as fh:
                fh.write(ckpt.metrics_line(record))
            save_training_state(self._path(ckpt.CHECKPOINT), self.model, self.optimizers,
                                self.state, self._rng())
            self.saved_epoch = epoch

    def _announce_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, record)
        parts = [f"epoch {epoch}/{self.train.epochs}"]
        parts += [f"{k} {v:.5g}" for k, v in record.items() if k.endswith("loss")]
        parts += [f"{record['images_per_s']:,.0f} img/s", f"{record['seconds']:.1f} s"]
        self.log("  ".join(parts) + ("  *" if record.get("best") else ""))

    def _record_divergence(self, record: dict[str, Any]) -> None:
        self.tracker.stop("diverged")
        if self.run_dir:
            with open(self._path(ckpt.METRICS), "a") as fh:
                fh.write(ckpt.metrics_line({**record, "diverged": True}))

    def _diverged(self, epoch: int, record: dict[str, Any], bad: list[str]) -> None:
        self._record_divergence({**record, "not_finite": bad})
        best = self.state["best_epoch"]  # 0: no epoch finished, and model.safetensors holds the untrained weights
        kept = "" if not self.run_dir else (f"The best weights (epoch {best}) are kept in {self._path(ckpt.WEIGHTS)}."
                                            if best else "No epoch finished: its weights are the untrained ones.")
        raise TrainingDiverged(  # a resume keeps the lr, and diverges again: a new run is the way out
            f"training diverged at epoch {epoch}: {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not finite. "
            f"{kept}".strip(), divergence_hint(self.train, [*self.callbacks, self.model.training_corruption()]))

    def _finish(self) -> TrainResult:
        make_permanent(self.model)  # pruning masks folded into plain weights
        if self.run_dir and self.model.monitor is not None:
            weights, _ = ckpt.load_tensors(self._path(ckpt.WEIGHTS))  # restore the best epoch
            ckpt.load_state(self.model, {k: v.to(self.device) for k, v in weights.items()}, self._path(ckpt.WEIGHTS))
        elif self.model.monitor is not None and self.state["best_epoch"] != self.state["epoch"]:
            self.log("note: no run folder, so the weights are the last epoch's, not the best")
        self.model.eval()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return TrainResult(self.model, self.run_dir, self.history, self.state["best_epoch"],
                           self.state["best_value"], self.state["stopped"])
