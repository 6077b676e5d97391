"""The contract between an architecture plugin and the engine.

A plugin subclasses `ZooModel`, declares its `Config` dataclass and implements `loss` (and the
capabilities it has: `encode`, `decode`, `reconstruct`, `sample`, `classify`). Models with more than
one optimizer (a GAN) override `configure_optimizers` and `training_step`, calling `step.optimize`
once per optimizer: the engine never needs to know what the model is.
"""

from __future__ import annotations

import fnmatch
import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable

import torch
from torch import nn

from zoo.analysis.metrics import reconstruction_metrics
from zoo.errors import CapabilityError, PluginError
from zoo.plugin_values import step_problem
from zoo.runs.files import check_fits

CAPABILITIES = ("encode", "decode", "reconstruct", "sample", "sample_class", "classify")


@dataclass
class Batch:
    """Images as floats in [0, 1], [B, C, H, W], and their labels (-1 where unknown)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]


class StepContext:
    """What a training step may ask of the engine: run one optimizer on one loss. The engine's callbacks
    may change that loss (`on_loss`, e.g. iterative autoencoding, an activity penalty): `run` gives
    them the batch and adds what they log to the step's losses."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], epoch: int = 0,
                 after_backward: Callable[[str], None] | None = None,
                 on_loss: Callable[["StepContext", torch.Tensor, str], torch.Tensor] | None = None):
        self.optimizers = optimizers
        self.epoch = epoch
        self.step = 0                  # steps taken this epoch
        self.steps_per_epoch = 1
        self._after_backward = after_backward
        self._on_loss = on_loss
        self.batch: Batch | None = None  # the batch `run` is training on
        self.logs: dict[str, torch.Tensor] = {}  # what on_loss logged during this step
        self.minimised: dict[str, torch.Tensor] = {}  # the loss each optimizer minimised, once changed

    @property
    def step_in_epoch(self) -> float:
        """Fraction of the current epoch done, in [0, 1): for schedules inside an epoch (KL warm-up)."""
        return self.step / max(self.steps_per_epoch, 1)

    def run(self, model: "ZooModel", batch: Batch) -> dict[str, torch.Tensor]:
        """One training step of `model` on `batch`: its losses, with what the callbacks logged, and as
        'loss' what a sole optimizer minimised when a callback changed it."""
        if self._on_loss is None:
            return self._checked(model, model.training_step(batch, self))
        self.batch, self.logs, self.minimised = batch, {}, {}
        out = {**self._checked(model, model.training_step(batch, self)), **self.logs}
        if len(self.optimizers) == 1 and self.minimised:
            out["loss"] = next(iter(self.minimised.values()))
        return out

    @staticmethod
    def _checked(model: "ZooModel", out):
        """A model's own training_step's output checked (checked_step); the default one checks its loss() itself."""
        return checked_step(model, out, "training_step") if has_own_training_step(model) else out

    def optimize(self, loss: torch.Tensor, name: str = "main") -> None:
        opt = self.optimizers.get(name)  # a plugin's mistakes, said as one (not torch's "element 0 of tensors ...")
        problem = (f"no optimizer named '{name}' (have: {', '.join(self.optimizers)})" if opt is None else "" if
                   getattr(loss, "requires_grad", False) else "a loss without gradient (detached, or no tensor)")
        if problem:
            raise PluginError(f"step.optimize('{name}'): {problem}", "A fix for the plugin (docs/plugins.md).")
        if self._on_loss is not None and self.batch is not None:
            changed = self._on_loss(self, loss, name)
            if changed is not loss:
                self.minimised[name] = loss = changed
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self._after_backward is not None:
            self._after_backward(name)
        opt.step()


def checked_step(model: "ZooModel", out, step: str):
    """`out`, what `model`'s `step` (loss, training_step, validation_step) returned, if it is a dict of scalar
    tensors; else a plugin's mistake, said as one before anything is recorded (not a list in metrics.jsonl)."""
    problem = step_problem(out)
    if problem:
        raise CapabilityError(f"model '{model.name}': its {step}() gave {problem}, not a dict of scalar tensors",
                              f"Its plugin's `{step}` must return {{'loss': scalar, ...}}, each the batch's mean "
                              "(docs/plugins.md): a fix for the plugin's author.")
    return out


_SEEDING = threading.Lock()


def build_seeded(cls: type, config, data, seed: int, device) -> "ZooModel":
    """Seed torch's generator and build a model for training on `data` (a zoo.data.ImageData) on `device`,
    under a lock, so that trials built in threads at the same moment (a search's concurrent groups) start
    from the weights they would alone. Data the model cannot learn from, and a model too large for the
    memory at hand, are refused first."""
    cls.check_data(config, data)
    check_fits(cls, config, data.shape, data.num_classes, device)  # before a byte is allocated
    with _SEEDING:
        torch.manual_seed(seed)
        return cls(config, data.shape, data.num_classes).to(device)


def hyper_buffer(module: nn.Module, name: str, value: float, key: str | None = None) -> None:
    """Keep a hyperparameter the model reads at run time (dropout p, noise level, β) in a float tensor:
    a non-persistent buffer, so it is not saved with the weights, and `zoo.training.multitrial` can give every
    trial of a vectorised step its own value. `key` names the config key the value comes from (default:
    `name`): search trials whose configs differ only in such keys train together in one vectorised step."""
    module.register_buffer(name, torch.tensor(float(value)), persistent=False)
    module.__dict__.setdefault("_zoo_hyper_keys", {})[name] = key or name


def schedule_buffer(module: nn.Module, name: str, value: float) -> None:
    """Keep a value `before_step` changes during training (a KL warm-up's weight) in a float tensor that it
    changes in place (`.fill_`): a step recorded in a CUDA graph reads the tensor anew at every replay, where
    it would replay a Python number as recorded. Non-persistent (`before_step` sets it again on resume), and
    shared by every trial of a vectorised step (its schedule comes from config keys the trials share)."""
    module.register_buffer(name, torch.tensor(float(value)), persistent=False)
    module.__dict__.setdefault("_zoo_schedules", set()).add(name)


def step_state_buffer(module: nn.Module, name: str, shape: tuple[int, ...]) -> None:
    """Keep a tensor a model carries from one training step to the next (a VampPrior's components encoded a
    few steps ago), changed in place by `before_step` or the step itself: a recorded CUDA graph reads it anew
    at every replay. Not in the weights (model.safetensors): the training checkpoint keeps it, and a resume goes
    on from it (a GAN's streak of collapsed steps). Such a model's trials are not vectorised: the shared step
    could not keep one per trial."""
    module.register_buffer(name, torch.zeros(shape), persistent=False)
    module.__dict__.setdefault("_zoo_step_state", set()).add(name)


def step_state_names(model: nn.Module) -> set[str]:
    """The full names of `model`'s `step_state_buffer` tensors."""
    return {f"{prefix}.{name}".lstrip(".") for prefix, m in model.named_modules()
            for name in m.__dict__.get("_zoo_step_state", ())}


def schedule_names(model: nn.Module) -> set[str]:
    """The full names of `model`'s `schedule_buffer` tensors (as `named_buffers` gives them)."""
    return {f"{prefix}.{name}".lstrip(".") for prefix, m in model.named_modules()
            for name in m.__dict__.get("_zoo_schedules", ())}


def hyper_keys(model: nn.Module) -> set[str]:
    """The config keys whose values `model` holds in `hyper_buffer` tensors (and reads from nowhere else)."""
    return {key for m in model.modules() for key in m.__dict__.get("_zoo_hyper_keys", {}).values()}


def has_own_training_step(model: "ZooModel | type") -> bool:
    """True for a model that overrides `training_step` (a GAN's alternating updates): the engine then runs
    its steps as written, eagerly, not recorded in a CUDA graph or stacked with other trials."""
    cls = model if isinstance(model, type) else type(model)
    return cls.training_step is not ZooModel.training_step


# Training keys that change the images every metric of every model is measured on (grey levels or binarised
# pixels, another data set): no metric compares configurations that differ in one.
DATA_KEYS: dict[str, tuple[str, ...]] = {"dataset": (), "binarize": ()}


def measured_alike(cls: type, differing: Iterable[str], metric: str,
                   split: str = "val") -> tuple[list[str], list[str]]:
    """(the keys among `differing` that change what `metric` (a metric's name without its split: loss,
    neg_elbo) of `split` (val, train) measures for model class `cls`, the validation metrics that compare
    configurations differing in all of them). Trials or runs that differ in such a key are not comparable by
    that metric: the smallest number would win, not the best model (`zoo search` refuses it, `zoo compare`
    says it)."""
    differing = set(differing)
    measures = {**DATA_KEYS, **cls.loss_keys}
    keys = [k for k in measures if k in differing]
    alike = [m for m in measures[keys[0]] if all(m in measures[k] for k in keys) and "*" not in m] if keys else []
    # a name may be a pattern (`iwae_k*`: the IWAE-K bound at whatever K the run measures it)
    keys = [k for k in keys if not any(fnmatch.fnmatchcase(metric, m) for m in measures[k])]
    weighed = [k for k in cls.train_loss_keys if k in differing] if (split, metric) == ("train", "loss") else []
    if weighed:  # a warm-up weighs the training loss only: the validation loss compares them (when keys allow)
        alike = alike if keys else ["loss"]
    return keys + weighed, alike


class ZooModel(nn.Module):
    """Base class of every architecture. Subclasses set the class attributes and implement `loss`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type]
    # Training settings this architecture prefers (a GAN's lr and batch size); presets and the user override them.
    train_defaults: ClassVar[dict[str, Any]] = {}
    # The validation metric early stopping watches (lower is better); None: keep the last epoch.
    monitor: ClassVar[str | None] = "loss"
    # Config keys that change what the loss measures, not only how good the model is (a β that weighs a
    # KL inside it), each with the validation metrics that still compare configurations differing in it
    # (names, or patterns such as "iwae_k*"), the one to suggest first: see measured_alike.
    loss_keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Config keys that weigh the training loss and not the validation loss (a KL warm-up, free bits): the
    # train_loss of configurations that differ in one is not one measure, their validation metrics are.
    train_loss_keys: ClassVar[tuple[str, ...]] = ()
    # Config keys that change what `zoo eval`'s figures measure (a VAE's likelihood: a Gaussian density of the
    # pixels against a Bernoulli one), each with the test metrics that still compare runs differing in it.
    test_keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Metrics that are better when higher (a classifier's accuracy): `zoo search`, which minimises, refuses them.
    maximized: ClassVar[tuple[str, ...]] = ()
    # What the codes `encode` returns are, where they are not the whole latent (a hierarchical VAE's top layer):
    # said by zoo latent, zoo manifold and zoo interpolate in their output. "": the whole latent.
    codes_note: str = ""
    # What `zoo eval`'s figures are of, where their names do not say it (a denoiser's mse: of undoing its noise):
    # printed under them, kept in eval.json as metrics_note and shown on the model card. "": nothing to add.
    metrics_note: str = ""

    def __init__(self, config, shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        self.config = config
        self.shape = tuple(int(s) for s in shape)
        self.num_classes = int(num_classes)

    # ------------------------------------------------------------------ training contract
    def configure_optimizers(self, make_optimizer) -> dict[str, torch.optim.Optimizer]:
        """`make_optimizer(params, **overrides)` builds the optimizer the run's settings name."""
        return {"main": make_optimizer(self.parameters())}

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Scalar losses for one batch; the key 'loss' is the one optimised and monitored."""
        raise NotImplementedError

    def before_step(self, step: StepContext) -> None:
        """Set schedules that change within training (a KL warm-up) before each training step; called
        by the engine and by vectorised training alike, outside any recorded CUDA graph. A step recorded
        in a graph replays the Python numbers it saw, so when `before_step` changes one the engine stops
        replaying and trains on eagerly (and says so)."""

    def training_step(self, batch: Batch, step: StepContext) -> dict[str, torch.Tensor]:
        out = self.loss(batch)
        loss = out.get("loss") if isinstance(out, dict) else None
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:  # a plugin's mistake, said as one
            got = (f"'loss' of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else
                   f"keys {sorted(out)[:6]}" if isinstance(out, dict) else f"a {type(out).__name__}")
            raise CapabilityError(f"model '{self.name}': its loss() gave {got}, not a dict whose 'loss' is a scalar "
                                  "tensor", "Its plugin's `loss` must return {'loss': scalar, ...} (docs/plugins.md): "
                                  "a fix for the plugin's author.")
        checked_step(self, out, "loss")  # every logged value, before any step is taken on them
        step.optimize(loss)
        return out

    def validation_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        return checked_step(self, self.loss(batch), "loss")

    def __init_subclass__(cls, **kwargs):
        """A model's own validation_step is checked as the base one checks loss(): its means become val_KEY."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("validation_step")
        if own is not None:
            cls.validation_step = functools.wraps(own)(
                lambda self, *args, **kwargs: checked_step(self, own(self, *args, **kwargs), "validation_step"))

    @classmethod
    def check_data(cls, config, data) -> None:
        """Refuse, with a `zoo.errors.ConfigError`, training data (a zoo.data.ImageData) this configuration
        cannot learn from, before the model is built and before a run folder is touched: e.g. more
        VampPrior pseudo-inputs than training images. Anything goes by default."""

    def check_training(self, train, data) -> None:
        """Refuse, with a `zoo.errors.ConfigError`, training settings (a TrainConfig) this model cannot
        train with on `data`, e.g. an IWAE's k × batch_size beyond the memory at hand. The Trainer asks it
        before the first step, of new runs (whose folder is then removed), resumes and searches alike.
        Anything goes by default."""

    def reconstruction_error(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The error of reconstructions `recon` (in [0, 1]) of `x` as this model's loss measures it, in its
        units, for callbacks that add it to the loss (iterative autoencoding): the mean squared error here; a
        model trained with cross-entropy, or on a likelihood summed over the pixels (the VAE's nats), says so
        by overriding it."""
        return torch.nn.functional.mse_loss(recon.float(), x)

    # ------------------------------------------------------------------ what it can do afterwards
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def prior_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` codes [n, D] drawn from the model's prior over the codes `decode` takes, for a prior that is no
        standard normal (a VampPrior): `zoo manifold` spans its quantiles instead of N(0, 1)'s."""
        raise NotImplementedError

    def sample_class(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conditional sampling: one new image of each class index in `labels` ([n] int64)."""
        raise NotImplementedError

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def can(cls, capability: str) -> bool:
        """True if this architecture implements `capability` (overrides the base method); asked of a model
        or of its class (a model card, `zoo info`)."""
        impl = getattr(cls, capability, None)
        return impl is not None and impl is not getattr(ZooModel, capability, None)

    @classmethod
    def capabilities(cls) -> list[str]:
        return [c for c in CAPABILITIES if cls.can(c)]

    @classmethod
    def has_test_metrics(cls) -> bool:
        """True if `zoo eval` has per-image figures for it: its own `metrics`, or reconstruction metrics."""
        return cls.metrics is not ZooModel.metrics or cls.can("reconstruct")

    # ------------------------------------------------------------------ evaluation and pictures
    def metrics(self, batch: Batch, **options) -> dict[str, torch.Tensor]:
        """Per-image test metrics ([B] tensors) for `zoo eval`; reconstruction metrics by default.
        `options` come from the command line (e.g. iwae_k): a model takes one by naming it as a keyword
        parameter; one its signature does not name is refused before the evaluation (check_metric_options)."""
        if not self.can("reconstruct"):
            return {}
        return reconstruction_metrics(batch.x, self.reconstruct(batch.x))

    def evaluation_report(self, x: torch.Tensor, y: torch.Tensor, run, out_dir) -> dict:
        """Whole-split results that are not per-image means (confusion matrices, ...) of the images `x`
        (the split as stored: uint8 [N, C, H, W]) and labels `y`. `run` is the `zoo.runs.run.Run` the model came
        in (its class names, its training history); files may be written into `out_dir` (None: write none)."""
        return {}

    @classmethod
    def transfer_from(cls, source, **options) -> tuple[dict[str, Any], Callable[["ZooModel"], None]]:
        """For a model that trains on top of another run's encoder (`zoo finetune`): from the `source`
        run (a `zoo.runs.run.Run`) and the task's `options` (hidden, freeze, unfreeze_last, features),
        the new model's config values and a function that copies the source's weights into the new
        model before training. Raise `zoo.errors.CapabilityError` if the source has nothing to build on.
        Only models that can be trained this way implement it."""
        raise NotImplementedError

    @classmethod
    def provenance(cls, config: dict[str, Any]) -> list[str]:
        """Lines `zoo info RUN` shows about where a run's weights came from, checked as they are shown, from the
        run's recorded `config` (config.json's, as saved). A fine-tuned classifier says whether the run its
        encoder was copied from is still there with the same weights. Default: none."""
        return []

    def code_net(self) -> nn.Sequential | None:
        """The layers that map an image to its code, as one nn.Sequential whose output begins with what
        `encode` returns (a VAE's: the mean, then the log-variance): what `zoo finetune` copies under a
        head. Default: the model's `encoder`, for models whose encoder ends in the code; None: none."""
        net = getattr(self, "encoder", None)
        return net if isinstance(net, nn.Sequential) else None

    def training_corruption(self):
        """The corruption (a `zoo.data.noise.NoiseModel`) this model learned to undo, or None for one
        trained on clean images: denoising and the noise sweep use it when no noise is named."""
        return None

    def preview(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Rows of images that show what the model does, for the end-of-training picture."""
        rows = []
        if self.can("reconstruct"):
            rows += [("original", x), ("reconstruction", self.reconstruct(x))]
        if self.can("sample_class"):  # a conditional model: a row for each class
            k = min(x.shape[0], 10)
            rows += [(f"class {j}", self.sample_class(torch.full((k,), j, dtype=torch.long, device=self.device)))
                     for j in range(self.num_classes)]
        elif self.can("sample"):
            rows.append(("samples", self.sample(x.shape[0])))
        return rows

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of its floating weights (float32 unless its user made it half, bfloat16 or double): the Run
        methods bring their inputs to it, as they bring them to its device."""
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32
