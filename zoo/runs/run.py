"""A trained run as one object: its model, the config.json it was trained with, its folder, where the
results of a task on it go, and the data it was trained on. `zoo.load` returns one, and every task
takes one (or anything `zoo.load` accepts)."""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.arguments import clear_arguments
from zoo.console import to_stderr
from zoo.data import ImageData, load_dataset, relocated
from zoo.data.canonical import known_digests
from zoo.data.datasets import folder_of
from zoo.errors import CapabilityError, ConfigError, DataNotFoundError, RunError
from zoo.model import ZooModel
from zoo.registry import load_registry
from zoo.runs import checkpoint as ckpt
from zoo.runs import config as cfgmod
from zoo.runs import files as runfiles
from zoo.runs.config import TrainConfig, check_count
from zoo.runs.inputs import check_generator, class_indices, latent_codes, model_images, said_in_its_dtype
from zoo.runs.plugin_calls import blamed, codes_of, images_of, per_image

SPLITS = ("train", "val", "test")


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module):
    """`module` in eval mode (batch norm's running statistics, no dropout) for the work inside, each of its
    submodules given back the mode it had after: a model its user put in training mode (to fine-tune it)
    is measured and sampled as it was trained, and its running statistics are left as they were."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def evaluated(task):
    """`task` (a Run method, or a task taking a Run or what zoo.load takes first) with the Run's model in
    eval mode (eval_mode). A run zoo.load reads is in eval mode already; a Run handed back may not be."""
    @functools.wraps(task)
    def wrapper(source, *args, **kwargs):
        if not isinstance(source, Run):
            return task(source, *args, **kwargs)
        with eval_mode(source.model), said_in_its_dtype(source.model):
            return task(source, *args, **kwargs)
    return wrapper


def training_data(train_cfg: TrainConfig, device, run: dict[str, Any] | None = None) -> ImageData:
    """The training settings' data set; for an existing run (its config.json), brought to the shape and
    classes it was trained on (a folder whose images changed size is converted, one whose classes
    changed refused)."""
    shape = runfiles.run_shape(run) if run else None
    classes = tuple(run["data"]["classes"]) if run and "classes" in run["data"] else None
    return load_dataset(train_cfg.dataset, data_dir=train_cfg.data_dir or None, val_fraction=train_cfg.val_fraction,
                        image_size=train_cfg.image_size, binarize=train_cfg.binarize, device=device, shape=shape,
                        classes=classes)


def other_images(data: ImageData, record: dict[str, Any], splits: tuple[str, ...] = SPLITS) -> str:
    """How `data`'s images of `splits` differ from the data set a run was trained on (its config.json's
    data.sizes and data.digests), in words; "" where they agree or the run recorded neither. Other counts or
    other bytes mean other files read under the set's name (another --data-dir, a folder that gained images or
    had its files replaced). A resume asks of every split; an evaluation of the split it measures (a split
    that reuses the training images: of those), whatever the others hold."""
    recorded = (record.get("data") or {}).get("sizes")
    if not isinstance(recorded, dict):
        return ""
    now = {s: int(data.split(s)[0].shape[0]) for s in SPLITS}
    digests = known_digests(record.get("data") or {})  # recorded, or a standard set's published test split
    # a split that reuses the training images counts them (an older zoo's folder with val_fraction 0 did)
    recorded_reuse = (record.get("data") or {}).get("reused")
    recorded_reuse = recorded_reuse if isinstance(recorded_reuse, dict) else {}
    reused = set(data.reused) | set(recorded_reuse)
    wanted = {data.reused.get(s) or recorded_reuse.get(s) or s for s in splits}  # a reused split: the train one
    checked = [s for s in SPLITS if s in wanted and s not in reused]
    differ = [f"{now[s]:,} {s} images where it had {recorded[s]:,}" for s in checked
              if isinstance(recorded.get(s), int) and recorded[s] != now[s]]
    other = [s for s in checked if recorded.get(s) == now[s] and isinstance(digests.get(s), str)
             and digests[s] != data.digest(s)]
    if other:  # as many images, other bytes: another set's files under the name, a folder's files replaced
        splits = " and ".join([", ".join(other[:-1]), other[-1]] if len(other) > 1 else other)
        differ.append(f"{'and ' * bool(differ)}other {splits} images than it had (as many)")
    return f"{data.name} holds {', '.join(differ)}" if differ else ""


@dataclass(eq=False)
class Run:
    """A trained model with what it came from.

    `run.model` is the `ZooModel` (an `nn.Module`, in eval mode); the model's abilities are one step
    away on the run too: `run.encode(x)`, `run.decode(z)`, `run.reconstruct(x)`, `run.sample(n)`,
    `run.classify(x)`."""

    model: ZooModel = field(repr=False)  # its repr is every layer: run.model shows them
    folder: Path       # the run folder; for a catalogued or hub name, its verified local copy
    record: dict[str, Any] = field(repr=False)  # config.json: model, plugin, config, train, data (each checked)
    source: str        # what the user called it: a folder, a catalogued name or a hub location
    # Where tasks write results: decided (and, for ./zoo-outputs/NAME/, noted) when a task first writes
    # there, so a command whose outputs all go where --out says is not told they go elsewhere.
    place_outputs: Callable[[], Path] = field(repr=False)
    # What was loaded: the file's digest (as eval.json records it) and the module's tensors' digest, so that
    # results saved for the file are never those of weights changed since (fine-tuned, or a file replaced).
    file_digest: str = field(default="", repr=False)
    state_digest: str = field(default="", repr=False)
    told_unknown_keys: bool = field(default=False, repr=False)  # a newer zoo's training keys, said once (train_config)

    def weights_changed(self) -> str | None:
        """Why results on `run.model` would not be results on its model.safetensors (None: they would): the
        file is gone or holds other weights than were loaded, or the module's weights changed since."""
        path = self.folder / ckpt.WEIGHTS
        if not path.is_file():
            return f"{path} is gone since the run was loaded"
        if self.file_digest and ckpt.weights_digest(path) != self.file_digest:
            return f"{path} holds other weights than were loaded from it (trained again or replaced since)"
        if self.state_digest and ckpt.tensor_digest(self.model.state_dict()) != self.state_digest:
            return f"run.model's weights changed since they were loaded from {path}"
        return None

    def outputs_stamp(self) -> str:
        """What a picture of this run's outputs records as the weights it shows (plots.WEIGHTS_STAMP): the
        file's digest, or, for weights changed since loading, a mark that matches no file's."""
        return "changed since loading" if self.weights_changed() else self.file_digest

    def check_saveable(self) -> None:
        """Refuse, before the work, to save results that would be recorded as the file's weights' when they
        are not (weights_changed)."""
        changed = self.weights_changed()
        if changed:
            raise RunError(f"{changed}: the results would be recorded as those of the weights in the file",
                           "Run the command again for the weights in the file now (a training that writes the run "
                           "replaces them each epoch); in Python, zoo.load the run again, or measure with "
                           "save=False.")

    @functools.cached_property
    def output_dir(self) -> Path:
        """Where tasks write results: the folder itself if the user owns it, else ./zoo-outputs/NAME/."""
        return self.place_outputs()

    # ------------------------------------------------------------------ the model, one step away
    @property
    def name(self) -> str:
        return self.model.name

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.model.shape

    @property
    def device(self) -> torch.device:
        return self.model.device

    def can(self, capability: str) -> bool:
        if not isinstance(capability, str):  # a TypeError from getattr, not a no
            raise ConfigError(f"can() takes a capability's name, a text, not {capability!r:.60}",
                              "For example run.can('encode'); run.capabilities() lists this run's.")
        return self.model.can(capability)

    def capabilities(self) -> list[str]:
        return self.model.capabilities()

    # What users hand these: images as the data sets hold them (uint8 0..255) or as the model takes
    # them (float in [0, 1]), one image [C, H, W] or a batch [N, C, H, W]. They run without gradients and in
    # eval mode (use run.model to train through the model) and refuse what the model cannot do in one message.
    @evaluated
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.require("encode")
        x = self.images(x)
        return self._asked("encode", codes_of, len(x), x)

    @evaluated
    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.require("decode")
        z = latent_codes(z, self.code_width, self.model)
        return self._asked("decode", images_of, len(z), z)

    @functools.cached_property
    def code_width(self) -> int | None:
        """The size of the model's codes, from encoding one blank image; None for a model that cannot encode."""
        if not self.can("encode"):
            return None
        with torch.no_grad(), eval_mode(self.model):
            blank = torch.zeros((1, *self.shape), device=self.device, dtype=self.model.dtype)
            return int(self._asked("encode", codes_of, 1, blank).flatten(1).shape[1])

    @evaluated
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.require("reconstruct")
        x = self.images(x)
        return self._asked("reconstruct", images_of, len(x), x)

    @evaluated
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self.require("sample")
        n = self._check_count(n)
        return self._asked("sample", images_of, n, n, generator=check_generator(generator))

    @evaluated
    @torch.no_grad()
    def sample_class(self, labels, generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples of the given classes: a 1-D tensor or list of class indices (0 .. classes - 1)."""
        self.require("sample_class")
        labels = self._labels(labels, "sample_class")
        if not len(labels):  # said as what it is, not as a count (n) the caller never gave
            raise ConfigError("sample_class: no class indices given: it draws one image of each, so give at least one")
        self._check_count(len(labels))
        return self._asked("sample_class", images_of, len(labels), labels, generator=check_generator(generator))

    @evaluated
    @torch.no_grad()
    def nll(self, x: torch.Tensor, k: int = 1000, labels=None, seed: int = 0) -> torch.Tensor:
        """−log p(x) of each image in nats (−log p(x|y) of a conditional model, given the images' `labels`),
        estimated by the importance-weighted bound with `k` samples, as `zoo eval --iwae-k K` does (its
        protocol asks K ≥ 1,000). A model trained on binarised pixels takes binary images only: a Bernoulli
        likelihood of grey levels is the probability of no image (`run.data("test")` gives the binarised test
        images `zoo eval` measures). Reproducible by `seed` for the same batch of images: the draws are shared
        across the batch, so an image scored alone or beside others gets another estimate (within the
        estimator's noise); the caller's random stream is left as it was."""
        if not hasattr(self.model, "iwae_nll"):  # the optional method docs/plugins.md names
            having = sorted(n for n, e in load_registry().models.items() if hasattr(e.cls, "iwae_nll"))
            raise CapabilityError(f"model '{self.name}' has no likelihood to estimate: its plugin implements no "
                                  "iwae_nll(x, k, y) (docs/plugins.md, section 2)",
                                  f"Installed models that have one: {', '.join(having) or 'none'} (zoo list).")
        x = self.images(x)
        if self.record.get("train", {}).get("binarize", "none") != "none" and not bool(((x == 0) | (x == 1)).all()):
            raise ConfigError(f"{self.source} ({self.name}) was trained on binarised pixels, and these images hold "
                              "grey levels: a Bernoulli likelihood of them is the probability of no image",
                              "Binarise them first, as levels in [0, 1] (uint8 images, as run.data gives a grey "
                              "set's: x.float() / 255): torch.bernoulli(x), as the data set's dynamic binarisation "
                              "draws them, or (x > 0.5).float().")
        if self.can("sample_class") != (labels is not None):
            raise ConfigError(f"model '{self.name}' is conditional: its −log p(x|y) needs the images' labels "
                              "(labels=)" if labels is None else f"labels=: model '{self.name}' is not conditional")
        y = None if labels is None else self._labels(labels, "nll")
        if y is not None and len(y) != len(x):
            raise ConfigError(f"nll: {len(x)} images and {len(y)} labels")
        seed = cfgmod.check_seed(seed, "seed")
        k = int(k) if isinstance(k, numbers.Integral) and not isinstance(k, bool) else k  # numpy's, as evaluate takes
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self._asked("iwae_nll", per_image, len(x), x, k, y)

    nll = clear_arguments(nll, __name__)  # nll(x, iwae_k=5): one ConfigError naming k=, not a TypeError

    def _labels(self, labels, what: str) -> torch.Tensor:
        """Class indices as a long tensor on the model's device: a 1-D tensor or list of whole numbers."""
        return class_indices(labels, self.classes, self.device, what)

    @evaluated
    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        self.require("classify")
        x = self.images(x)
        return self._asked("classify", functools.partial(per_image, width=self.model.num_classes), len(x), x)

    def _asked(self, method: str, check: Callable, n: int, *args, **kwargs) -> torch.Tensor:
        """The model's `method` called, what it raises blamed on its plugin, and its answer for `n` images
        held to the contract by `check` (zoo.runs.plugin_calls)."""
        with blamed(self.model, method):
            out = getattr(self.model, method)(*args, **kwargs)
        return check(self.model, method, out, n)

    def _check_count(self, n) -> int:
        """A whole number of images that fits in the memory at hand (as floats, with room to spare)."""
        n = check_count(n, "how many images (n)")
        need = 4 * n * math.prod(self.shape)
        free = runfiles.available_memory(self.device)
        if free is not None and 4 * need > free:
            raise ConfigError(f"{n} images of shape {list(self.shape)} need {need / 2**30:.1f} GiB, and "
                              f"{free / 2**30:.1f} GiB are free on {self.device}",
                              "Draw them in batches (zoo generate --out x.safetensors streams them).")
        return n

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """`x` as the model takes it: a float batch [N, C, H, W] in [0, 1] on its device and in its dtype (uint8
        images are divided by 255, one image gets a batch of one). Another shape, another integer type, floats
        outside [0, 1] (0..255 floats, NaN) are refused: the model would silently compute garbage."""
        return model_images(x, self.model)

    def require(self, capability: str) -> None:
        """Refuse, with what the model can do instead, a task that needs `capability`."""
        if not self.can(capability):
            given = (" A class-conditional model encodes an image only given its class: `zoo eval` measures its "
                     "reconstructions with the test labels." if self.can("sample_class") and
                     self.model.has_test_metrics() and capability in ("encode", "reconstruct") else "")
            raise CapabilityError(f"model '{self.name}' cannot {capability}",
                                  f"It can: {', '.join(self.capabilities()) or 'nothing listed'}.{given}")

    # ------------------------------------------------------------------ what it was trained with
    @property
    def train_config(self) -> TrainConfig:
        """Its training settings. A key this zoo does not know (a newer zoo's) is left out, said once: a training
        setting changes no weights, so the run still evaluates, samples and is measured."""
        known = {f.name for f in cfgmod.fields_of(TrainConfig)}
        unknown = sorted(set(self.record["train"]) - known)
        if unknown and not self.told_unknown_keys:
            self.told_unknown_keys = True
            to_stderr(f"note: {self.folder / ckpt.CONFIG} holds training settings this zoo does not know "
                      f"({', '.join(unknown)}; written by zoo {self.record.get('zoo_version', '?')}): left out")
        return cfgmod.build(TrainConfig, {k: v for k, v in self.record["train"].items() if k in known},
                            where=f"{self.folder / ckpt.CONFIG} [train]")

    @property
    def classes(self) -> list[str]:
        """The names of the classes of its training data."""
        return list(self.record["data"].get("classes") or [str(i) for i in range(self.model.num_classes)])

    def training_history(self) -> list[dict[str, Any]]:
        """The rows of its metrics.jsonl (none for a run without one)."""
        path = self.folder / ckpt.METRICS
        return ckpt.read_metrics(path)[0] if path.is_file() else []

    def dataset(self, data_dir: str | None = None, *, grey: bool = False) -> ImageData:
        """The data set it was trained on (every split), brought to the shape its model takes. `data_dir`
        points at the data set elsewhere than when it was trained. `grey`: every split in grey levels, even
        where the run was trained on binarised pixels (a grey level is the mean of its pixel's binarisations)."""
        cfgmod.check_flag(grey, "grey")  # "no" is no False: it gave grey levels
        train = self.train_config
        if data_dir is not None and not isinstance(data_dir, (str, Path)):
            raise ConfigError(f"data_dir is a folder's path, not {data_dir!r:.60}")
        folder = folder_of(train.dataset)  # the user's own images, by their path (None: a named set)
        if data_dir:  # a moved folder is read where it is now (its classes and shape are checked)
            train.dataset, train.data_dir = relocated(train.dataset, data_dir)
        if grey:
            train.binarize = "none"
        try:
            return training_data(train, self.device, self.record)
        except DataNotFoundError as e:
            # Only a folder that is gone may have moved: a damaged image or changed classes keep their own hint
            if folder is None or data_dir or folder.is_dir():
                raise
            raise DataNotFoundError(e.message, "Where the run's images are now, say so: --data-dir FOLDER "
                                               "(data_dir= in Python).") from None

    def data(self, split: str, data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`split`'s images (uint8 [N, C, H, W], as `run.encode` takes them) and labels, as
        `zoo.load_dataset(...).split(split)` gives them."""
        return self.dataset(data_dir).split(check_split(split))


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'", f"Use {', '.join(SPLITS)}.")
    return split
