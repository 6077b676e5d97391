"""Latent samplers: new codes for an autoencoder's decoder, fitted on the run's training codes.

A plain autoencoder has no prior to sample from; a density fitted to the codes of its training images stands in
for one (a Gaussian with full covariance, a Gaussian mixture, ...). A fitted sampler is saved in the run as
`sampler-NAME.safetensors` (tensors only; never a pickle) and reused while the model's weights are the ones it was
fitted to; it is refitted when the file is missing, damaged or stale (the run's weights changed since). The file
records the run it was fitted on (model and creation time), and one fitted on another run's codes is refused, not
overwritten. Fitting is seeded with a fixed seed, so a refit gives the same sampler, and sampling draws everything
from the caller's `torch.Generator`, so `--seed` reproduces the images.

Samplers are pluggable: a plugin returns `LatentSampler` subclasses from the `zoo_samplers` hook (zoo's own, in
zoo.plugins.samplers and zoo.plugins.flow_samplers, register the same way); their exceptions and NaN draws are
said as the package's bug."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Callable, ClassVar

import torch

from zoo.analysis.checks import check_codes
from zoo.analysis.class_codes import CLASS_SPLIT, around_class
from zoo.analysis.class_codes import class_stats, resolve_class  # noqa: F401 (their home before class_codes)
from zoo.caches import is_managed
from zoo.console import to_stderr
from zoo.errors import CapabilityError, ConfigError, Interrupted, RunError
from zoo.registry import failed_plugins, load_registry
from zoo.runs.checkpoint import WEIGHTS, load_tensors, run_identity, save_tensors
from zoo.runs.files import file_sha256, sampler_file
from zoo.runs.plugin_calls import blamed, plugin_bug, plugin_named
from zoo.runs.run import Run, check_split, other_images

FIT_SEED = 0              # fitting is deterministic: a refit gives the sampler saved before
FIT_SPLIT = "train"       # samplers are fitted on the training codes, never on the test set
ENCODE_BATCH = 1024


class LatentSampler:
    """A distribution over latent codes. Subclasses set `name` and `description` and implement `_fit` (set
    tensors from the codes), `sample` and `state`/`_load` (the fitted parameters as named tensors). A sampler that
    needs no fitting (`needs_fit = False`) is defined by the latent size alone and is never saved."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_fit: ClassVar[bool] = True

    def __init__(self, dim: int | None = None):
        self.dim = dim

    # ------------------------------------------------------------------ to implement
    def _fit(self, codes: torch.Tensor, seed: int) -> None:
        """Set the parameters from `codes` ([N, D] float64 on the CPU)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` codes [n, D] (float32), drawn on the generator's device with that generator only."""
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        """The fitted parameters, as tensors for safetensors."""
        return {}

    def _load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Set the parameters from what `state` returned; raise KeyError/ValueError if they do not fit."""

    def fit_warning(self) -> str:
        """A sentence for the user when the fitted parameters are known to sample poorly ("" when not)."""
        return ""

    def fit(self, codes: torch.Tensor, seed: int = FIT_SEED) -> "LatentSampler":
        codes = torch.as_tensor(codes).detach().to("cpu", torch.float64)
        if codes.ndim != 2 or codes.shape[0] < 1:
            raise ConfigError(f"sampler '{self.name}': need codes of shape [N, D], got {tuple(codes.shape)}")
        check_codes(codes.numpy(), f"the '{self.name}' sampler", "the codes given", need=1, spread=False)
        self.dim = int(codes.shape[1])
        try:
            with blamed(self, "_fit"):  # a plugin's exception said as its package's bug, not a traceback
                self._fit(codes, seed)
        except KeyboardInterrupt:  # said, not left as a bare "Interrupted." (a MAF fits for a minute)
            raise Interrupted(f"fitting the '{self.name}' sampler was interrupted; nothing of it was saved") from None
        return self

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], dim: int) -> "LatentSampler":
        sampler = cls(dim)
        sampler._load(tensors)
        return sampler

    @staticmethod
    def _device(generator: torch.Generator | None) -> torch.device:
        return generator.device if generator is not None else torch.device("cpu")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


def check_state(tensors: dict[str, torch.Tensor], shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    """The tensors named in `shapes`, as float64, for a sampler's `_load`: KeyError if one is missing,
    ValueError if one has another shape or is not finite (a damaged or foreign file)."""
    out = {}
    for key, shape in shapes.items():
        t = tensors[key]
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{key} has shape {tuple(t.shape)}, expected {tuple(shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{key} is not finite")
        out[key] = t.to(torch.float64)
    return out


# ---------------------------------------------------------------------------------- registry

def samplers() -> dict[str, type[LatentSampler]]:
    """Every installed sampler by name."""
    return {name: e.cls for name, e in load_registry().samplers.items()}


def get_sampler(name: str) -> type[LatentSampler]:
    available = samplers()
    key = str(name).strip().lower()
    if key in available:
        return available[key]
    close = difflib.get_close_matches(key, list(available), n=3, cutoff=0.4)
    hint = (f"Did you mean: {', '.join(close)}? " if close else "") + "Known samplers: " + (
        ", ".join(sorted(available)) or "none installed") + "." + failed_plugins()
    raise ConfigError(f"unknown sampler '{name}'", hint)


# ---------------------------------------------------------------------------------- codes of a run

def latent_dim(run: Run) -> int:
    """Size of the model's code (a latent sampler draws codes of that size for the decoder)."""
    run.require("encode")
    return run.code_width


@torch.no_grad()
def encode_images(run: Run, x_uint8: torch.Tensor, batch_size: int = ENCODE_BATCH) -> torch.Tensor:
    """Codes [N, D] (float32, CPU) of uint8 images, in batches."""
    out = []
    for i in range(0, x_uint8.shape[0], batch_size):
        xb = x_uint8[i:i + batch_size].to(run.device).float() / 255.0
        out.append(run.encode(xb).float().flatten(1).cpu())
    return torch.cat(out) if out else torch.zeros((0, latent_dim(run)))


def run_split(run: Run, split: str, data_dir: str | None = None):
    """(ImageData, images, labels) of a loaded run's split. A run trained under dynamic binarisation gets its
    training images grey, as the engine keeps them: fitted on the codes of one fixed binarisation instead, the
    samplers drew worse images (FID of iwae50-mnist's MAF 54.9 against 48.9, vampprior-mnist's GMM 59.4
    against 49.5; docs/benchmarks.md, "Sample quality of the likelihood models"). Images other than the run's
    (another --data-dir) are said, as `zoo eval` says them."""
    if not isinstance(run, Run):
        raise RunError(f"model '{run.name}' was not loaded from a run folder: its data set is unknown",
                       "Load it with zoo.load(RUN).")
    data = run.dataset(data_dir)
    differ = other_images(data, run.record, (check_split(split),))
    if differ:
        to_stderr(f"note: {differ}: not the images {run.source} was trained and tested on")
    return (data, *data.split(split))


def split_codes(run: Run, split: str, data_dir: str | None = None):
    """(codes [N, D] float32 CPU, labels [N] CPU, class names) of a run's split."""
    run.require("encode")
    data, x, y = run_split(run, split, data_dir)
    return encode_images(run, x), y.cpu(), tuple(data.classes)


# ---------------------------------------------------------------------------------- fitted samplers

def sampler_path(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / sampler_file(name)


def _weights_digest(run_dir: Path) -> str:
    return file_sha256(path) if (path := Path(run_dir) / WEIGHTS).is_file() else ""


def _read_saved(path: Path, cls: type[LatentSampler], digest: str, dim: int, identity: str,
                log: Callable[[str], None], codes: int | None = None, whose: str = "") -> LatentSampler | None:
    """The sampler saved at `path` if it is intact, of this kind, and fitted to these weights; None (refit)
    if it is missing, damaged (said) or stale. A file fitted on another run's codes is refused, and left, in a
    run the user owns (`whose` ""); else ("published with these weights", "kept for them in zoo-outputs") refitted."""
    if not path.is_file():
        return None
    try:
        tensors, meta = load_tensors(path)
    except (RunError, KeyError, ValueError, RuntimeError) as e:
        why = e.message if isinstance(e, RunError) else f"{path} cannot be read ({e})"  # a RunError names it
        log(f"note: {why}; the {cls.name} sampler is fitted again")
        return None
    fitted_on = meta.get("run", "")
    if fitted_on and identity and fitted_on != identity and whose:  # not the user's file to delete
        log(f"note: the '{cls.name}' sampler {whose} was fitted on another run's codes ({fitted_on}): not used; one "
            "is fitted on this run's codes" + (" (its publisher should push the entry again without it)"
                                               if whose.startswith("published") else ""))
        return None
    if fitted_on and identity and fitted_on != identity:  # files saved before runs were recorded: refitted
        raise RunError(f"{path} holds a sampler fitted on another run's codes ({fitted_on}), not on this run's "
                       f"({identity}); it was left as it is",
                       f"Delete it (rm {path}) and zoo fits the '{cls.name}' sampler on this run's training codes.")
    if meta.get("sampler") not in (None, cls.name):  # a file renamed or copied over: said, not silently replaced
        log(f"note: {path} holds a '{meta.get('sampler')}' sampler, not a '{cls.name}' one; the {cls.name} sampler "
            "is fitted again in its place")
        return None
    if codes and meta.get("codes", str(codes)) != str(codes):  # fitted on another folder's (--data-dir)
        log(f"note: {path} was fitted on {meta['codes']} training codes, and the run trained on {codes}: the "
            f"{cls.name} sampler is fitted again")
        return None
    if meta.get("sampler") != cls.name or meta.get("weights_sha256", "") != digest or meta.get("dim") != str(dim):
        return None  # stale: this run's weights changed (a resumed training) since it was fitted
    with blamed(cls, "_load"):  # KeyError, ValueError, RuntimeError: a damaged file (docs), refitted; else a bug
        try:
            return cls.from_state(tensors, dim)
        except (KeyError, ValueError, RuntimeError):
            return None


def _saveable_state(sampler: LatentSampler) -> tuple[dict[str, torch.Tensor], str | None]:
    """The fitted sampler's state() if a file can hold it and give it back: tensors, at least one; else why
    not (a plugin's sampler without state() and _load(), or one whose state is no tensors: used unsaved)."""
    with blamed(sampler, "state"):
        state = sampler.state()
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        what = (f"a {type(state).__name__}" if not isinstance(state, dict) else "no tensors" if not state
                else "values that are no tensors")
        return {}, (f"its state() gave {what}; a fix for the '{sampler.name}' sampler's author: return the fitted "
                    "parameters as a dict of tensors from state() and set them in _load() (docs/plugins.md)")
    return state, None


def fitted_sampler(run: Run, name: str, *, data_dir: str | None = None, refit: bool = False, save: bool = True,
                   log: Callable[[str], None] | None = None) -> LatentSampler:
    """The sampler `name` for a run's model: read from RUN/sampler-NAME.safetensors, or fitted on the
    training codes (and saved there) when that file is missing, damaged, or made for other weights of
    this run (not saved where `save` is False). A file of the user's fitted on another run's codes is refused
    (RunError) unless `refit`. A catalogued model's outputs go elsewhere (Run.output_dir); a sampler shipped
    beside its weights is read from there, so that it samples offline and with no training images at hand."""
    cls = get_sampler(name)
    if not cls.needs_fit:
        return cls(latent_dim(run))
    if not isinstance(run, Run):
        raise RunError(f"model '{run.name}' was not loaded from a run folder: there are no training codes to fit "
                       f"the '{cls.name}' sampler on", "Load it with zoo.load(RUN).")
    run.require("encode")
    run_dir = run.folder
    digest = _weights_digest(run_dir)
    dim = latent_dim(run)
    identity = run_identity(run.record)  # which run's codes a saved sampler was fitted on
    trained = run.record.get("data", {}).get("sizes", {}).get(FIT_SPLIT)  # how many codes it must be fitted on
    changed = run.weights_changed()  # codes of weights that are not the file's: fitted afresh, never saved
    # A run the user owns keeps its fitted samplers; a catalogued or downloaded one is left untouched (its
    # shipped sampler read first), so they go with its other outputs (Run.output_dir) instead: a folder
    # decided, and noted, only when the sampler is not in the run's own.
    if not refit and not changed:
        read: set[Path] = set()
        for candidate in (lambda: sampler_path(run_dir, cls.name), lambda: sampler_path(run.output_dir, cls.name)):
            where = candidate()
            if where.absolute() in read:  # a run the user owns: its outputs go into its own folder, read once
                continue
            read.add(where.absolute())
            theirs = run.output_dir.absolute() != run_dir.absolute() or is_managed(where)  # a catalogued or pulled run
            saved = _read_saved(where, cls, digest, dim, identity, log or to_stderr, trained, "" if not theirs else
                                "published with these weights" if where.parent == run_dir else "kept in zoo-outputs")
            if saved is not None:
                _warn_if_poor(saved, log)
                return saved
    path = sampler_path(run.output_dir, cls.name)
    data, x, _ = run_split(run, FIT_SPLIT, data_dir)
    codes = encode_images(run, x)  # of other images than the run's (--data-dir): used, never kept for the run's own
    changed = changed or (other_images(data, run.record, (FIT_SPLIT,)) and "fitted on other images than the run's")
    if codes.shape[0] < 2:
        raise RunError(f"the '{cls.name}' sampler needs at least 2 training codes, the run has {codes.shape[0]}")
    check_codes(codes.numpy(), f"the '{cls.name}' sampler", f"the run's {FIT_SPLIT} images", need=2, spread=True)
    sampler = cls().fit(codes, seed=FIT_SEED)
    meta = {"sampler": cls.name, "dim": str(sampler.dim), "codes": str(codes.shape[0]), "split": FIT_SPLIT,
            "seed": str(FIT_SEED), "weights_sha256": digest, "run": identity}
    fitted, say = f"fitted the {cls.name} sampler on {codes.shape[0]} training codes", log or to_stderr
    state, unsaveable = _saveable_state(sampler)
    if changed or not save or unsaveable:
        say(f"{fitted} (not saved: {changed or unsaveable or 'save=False'})")
    else:
        try:
            save_tensors(path, state, meta)
            say(f"{fitted} -> {path}")
        except OSError as e:  # a read-only (catalogued) run: use it without saving
            say(f"{fitted} (not saved: {e})")
    _warn_if_poor(sampler, log)
    return sampler


def _warn_if_poor(sampler: LatentSampler, log: Callable[[str], None] | None) -> None:
    with blamed(sampler, "fit_warning"):
        warning = sampler.fit_warning()
    if warning:
        (log or to_stderr)(f"warning: {warning}")


# ---------------------------------------------------------------------------------- for generate

@torch.no_grad()
def latent_samples(run: Run, *, sampler: str | None = None, n: int = 64, generator: torch.Generator | None = None,
                   class_label: str | int | None = None, spread: float = 0.0, data_dir: str | None = None,
                   save: bool = True, log: Callable[[str], None] | None = None) -> torch.Tensor:
    """`n` codes [n, D] on the model's device for its decoder: from the named sampler (fitted on the
    training codes), or the mean code of a class (over the test set) plus Gaussian noise of
    `spread` times that class's own per-dimension standard deviation."""
    if n < 1:
        raise ConfigError("--n must be at least 1")
    return latent_drawer(run, sampler=sampler, generator=generator, class_label=class_label,
                         spread=spread, data_dir=data_dir, save=save, log=log)(n)


def latent_drawer(run: Run, *, sampler: str | None = None, generator: torch.Generator | None = None,
                  class_label: str | int | None = None, spread: float = 0.0, data_dir: str | None = None,
                  save: bool = True, log: Callable[[str], None] | None = None) -> Callable[[int], torch.Tensor]:
    """`draw(k)`: k more codes as `latent_samples` describes them, the sampler fitted (or the class's
    statistics measured) once, so that many samples can be drawn batch by batch. `data_dir`: where the
    data set's images are (for the codes a sampler is fitted on, or a class's); `save`: whether a sampler
    fitted here is saved for the next time."""
    if isinstance(spread, bool) or not isinstance(spread, (int, float, type(None))):
        raise ConfigError(f"--spread must be a number, 0 or more, got {spread!r:.60}")
    spread = float(spread or 0.0)
    if not (0 <= spread < math.inf):
        raise ConfigError(f"--spread must be 0 or more (and finite), got {spread}")
    if class_label is not None:
        if sampler is not None:
            raise ConfigError("give either --sampler or --class (sampler= or class_label=), not both")
        return around_class(*split_codes(run, CLASS_SPLIT, data_dir), class_label, spread, generator, run.device)
    if spread:
        raise ConfigError("--spread (spread=) goes with --class (class_label=): the spread around a class mean")
    if sampler is None:
        raise ConfigError("which sampler? e.g. gmm, gaussian or standard-normal")
    chosen = fitted_sampler(run, sampler, data_dir=data_dir, save=save, log=log)

    def draw(k: int) -> torch.Tensor:
        with blamed(chosen, "sample"):
            codes = chosen.sample(k, generator=generator)
        if not isinstance(codes, torch.Tensor) or tuple(codes.shape) != (k, chosen.dim):
            got = f"shape {tuple(codes.shape)}" if isinstance(codes, torch.Tensor) else f"a {type(codes).__name__}"
            raise CapabilityError(f"sampler '{chosen.name}' returned {got} for {k} codes of {chosen.dim} "
                                  f"dimensions, not a tensor [{k}, {chosen.dim}]",
                                  f"Its `sample(n, generator)` must return n codes as a torch tensor [n, D] (docs/"
                                  f"plugins.md): a fix for the sampler's author, {plugin_named(chosen)}.")
        if not bool(torch.isfinite(codes).all()):  # else decode blamed the user's codes, which they never gave
            raise plugin_bug(chosen, "sample", "drew codes holding NaN or infinite values")
        return codes.float().to(run.device)

    return draw
