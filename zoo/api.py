"""The public Python API. The CLI is a thin layer over these functions."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

import zoo
from zoo.runs import checkpoint as ckpt
from zoo.runs import config as cfgmod
from zoo import registry
from zoo.runs import files as runfiles
from zoo.runs.config import TrainConfig, check_seed, model_named_by, resolve_config, split_config
from zoo.data import canonical_dataset_name
from zoo.device import pick_device
from zoo.console import to_stderr
from zoo.training.batching import batches, growing_batches
from zoo.training.engine import Trainer, TrainResult
from zoo.errors import ConfigError, RunError, storage_error
from zoo.model import ZooModel, build_seeded
from zoo.runs.lock import lock_run
from zoo.runs.loading import installed_entry, load, read_run, require, resolve, run_data, training_data

__all__ = ["create", "denoise", "evaluate", "feature_network_name", "finetune", "generate", "list_models",
           "list_plugins", "load", "load_images", "model_info", "noise_sweep", "read_run", "reconstruct",
           "resolve", "resolve_config", "sample_quality", "split_config", "train"]

EVAL_SEED = 0  # the random draws of an evaluation (see evaluate)
RESUME_CHANGEABLE = {"epochs", "patience", "device", "data_dir", "plot_every"}


def list_models() -> list[str]:
    """Names of every installed architecture plugin."""
    return registry.list_models()


def list_plugins() -> dict[str, list[dict[str, Any]]]:
    """Every installed plugin class by kind: "models", "noise_models" (with their "params"), "samplers" and
    "callbacks" (with their "params", or the training "keys" that turn them on), each a row of name,
    package ("NAME VERSION") and description; "failed": the plugins that did not load."""
    reg = registry.load_registry()

    def rows(entries, **extra):
        return [{"name": e.name, "description": e.description, "package": f"{e.package} {e.version}",
                 **{k: f(e) for k, f in extra.items()}} for e in sorted(entries.values(), key=lambda e: e.name)]

    return {"models": rows(reg.models),
            "noise_models": rows(reg.noise_models, params=lambda e: list(getattr(e.cls, "params", ()))),
            "samplers": rows(reg.samplers),
            "callbacks": rows(reg.callbacks, params=lambda e: list(e.cls.params), keys=lambda e: list(e.cls.keys)),
            "failed": [dict(f.__dict__) for f in reg.failures]}


def model_info(name: str) -> dict[str, Any]:
    """A plugin's description, hyperparameters (type, default, range), training defaults and presets."""
    entry = registry.get_entry(name)
    cls = entry.cls

    def describe(dc, defaults=None):
        rows = []
        for f in cfgmod.fields_of(dc):
            default = (defaults or {}).get(f.name, cfgmod.default_of(f))
            rows.append({"name": f.name, "type": cfgmod.type_name(cfgmod.field_type(f, dc)), "default": default,
                         "range": cfgmod.describe_range(f), "help": f.metadata.get("help", "")})
        return rows

    return {
        "name": entry.name, "description": entry.description, "package": entry.package, "version": entry.version,
        "capabilities": [c for c in ("encode", "decode", "reconstruct", "sample", "classify")
                         if getattr(cls, c, None) is not getattr(ZooModel, c)],
        "params": describe(cls.Config),
        "vectorized_keys": list(getattr(cls, "vectorized_keys", ())),
        "train_params": describe(TrainConfig, getattr(cls, "train_defaults", {})),
        "presets": registry.presets(entry.name),
    }


def create(name: str, *, shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10, **config) -> ZooModel:
    """Build an untrained model by name, sized for images of `shape` (C, H, W)."""
    cls, model_cfg, _ = resolve_config(name, overrides=config)
    runfiles.check_fits(cls, model_cfg, shape, num_classes, "cpu", copies=1, what="build")
    return cls(model_cfg, shape, num_classes)


# ------------------------------------------------------------------------------------- train

def _default_out(name: str, dataset: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", dataset.split(":")[0]).strip("-")
    base = Path("runs") / f"{name}-{slug}-{stamp}"
    path, i = base, 1
    while path.exists():  # two runs started in the same second
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def _run_config(entry, model_cfg, train_cfg: TrainConfig, data_info: dict) -> dict[str, Any]:
    return {
        "zoo_version": zoo.__version__,
        "model": entry.name,
        "plugin": {"name": entry.name, "package": entry.package, "version": entry.version},
        "config": dataclasses.asdict(model_cfg),
        "train": dataclasses.asdict(train_cfg),
        "data": data_info,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def train(model: str | None = None, *, dataset: str | None = None, preset: str | None = None,
          config: str | Path | dict | None = None, out: str | Path | None = None, resume: str | Path | None = None,
          log: Callable[[str], None] = to_stderr, progress: bool | None = None, callbacks=(),
          init: Callable[[ZooModel], None] | None = None, overwrite: bool = False, **overrides) -> TrainResult:
    """Train `model` (a plugin name) and write a run folder; or continue one with `resume=RUN`.
    A folder that holds a run is refused unless `overwrite`: then the old run's files are replaced.

    Keyword overrides are config keys of the model or of `TrainConfig` (epochs=30, latent_dim=6, ...).
    `init(model)` may set the new model's weights before training (finetune uses it).
    A run folder has one writer at a time (zoo.runs.lock), and it is a run only once it is complete:
    config.json is written last, after the initial weights and an epoch-0 checkpoint.
    """
    if dataset is not None:
        overrides["dataset"] = dataset
    if resume is not None:
        if overwrite:
            raise ConfigError("--overwrite with --resume: a resumed run continues in its folder, nothing is replaced",
                              "Leave out one of them.")
        return _resume(Path(resume), model, log, progress, callbacks, overrides, preset=preset, config=config,
                       out=out)
    model = model or model_named_by(preset, config)
    if model is None:
        raise ConfigError("which model? e.g. `zoo train convae` (or zoo.train('convae', ...))",
                          'Or name it in the config file (model = "convae") or pick a preset; '
                          "`zoo list` shows the installed models.")
    entry = registry.get_entry(model)
    cls, model_cfg, train_cfg = resolve_config(model, preset=preset, config=config, overrides=overrides)
    train_cfg.dataset = canonical_dataset_name(train_cfg.dataset)
    device = pick_device(train_cfg.device)
    data = training_data(train_cfg, device)
    for note in (*data.notes, data.caveat()):  # what reading a folder changed, and splits that reuse images
        if note:
            log(f"note: {note}")
    from zoo.hub import is_hub_source

    if is_hub_source(str(out or "")):
        raise ConfigError(f"--out {out} is a hub location: a run is trained into a folder",
                          f"Train into a folder, then publish it: zoo push RUN {out}")
    run_dir = Path(out) if out else _default_out(model, train_cfg.dataset)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} exists and is not a folder")
    from zoo.training import callbacks as zoo_callbacks

    regs = zoo_callbacks.callbacks_for(train_cfg)  # pruning, iterative autoencoding, plugins' (as configured)
    # The model is built before the folder is touched: a configuration that cannot be built leaves an
    # old run in place (with --overwrite too).
    net = build_seeded(cls, model_cfg, data.shape, data.num_classes, train_cfg.seed, device)
    zoo_callbacks.check(regs, net)
    if init is not None:
        init(net)
    with _new_run_folder(run_dir, overwrite=overwrite, log=log) as started:
        trainer = Trainer(net, data, train_cfg, run_dir=run_dir, log=log, progress=progress,
                          callbacks=[*regs, *callbacks])
        trainer.begin()
        ckpt.write_json(run_dir / ckpt.CONFIG, _run_config(entry, model_cfg, train_cfg, data.info()))
        started()
        log(f"training {model} on {data.name} ({data.info()['sizes']['train']} images, {tuple(data.shape)}) "
            f"on {device} -> {run_dir}")
        result = trainer.fit()
        _write_card(run_dir)
    return result


# What a new run writes into its folder: a folder already holding any of these is not trained into.
RUN_OUTPUTS = (ckpt.WEIGHTS, ckpt.CHECKPOINT, ckpt.METRICS, ckpt.CARD, ckpt.EVAL, "loss.png",
               "reconstructions.png", "samples.png")
START_MARK = ".zoo-starting"  # present while a run is being started: a kill leaves it with zoo's own files


def _refuse_existing_run(run_dir: Path, overwrite: bool = False) -> None:
    if (run_dir / ckpt.CONFIG).exists() and not overwrite:
        raise RunError(f"{run_dir} already holds a run",
                       f"Continue it with `zoo train --resume {run_dir}`, replace it with --overwrite, "
                       "or choose another --out.")


def _remove_old_run(run_dir: Path, log) -> None:
    """--overwrite: remove what a training wrote into `run_dir` (config.json first, so that from the
    first deletion on the folder is no longer a run), its fitted samplers and progress grids. Other
    files are kept and named."""
    read_run(run_dir)  # a zoo run, readable: --overwrite replaces runs, not whatever holds a config.json
    (run_dir / ckpt.CONFIG).unlink()
    for path in [*(run_dir / n for n in RUN_OUTPUTS), *run_dir.glob("sampler-*.safetensors")]:
        path.unlink(missing_ok=True)
    shutil.rmtree(run_dir / "progress", ignore_errors=True)
    kept = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    log(f"--overwrite: removed the run in {run_dir}" + (f"; kept {', '.join(kept[:6])}" if kept else ""))


@contextlib.contextmanager
def _new_run_folder(run_dir: Path, *, overwrite: bool = False, log=to_stderr):
    """Hold `run_dir`'s writer lock while a new run is made in it. Until the caller says the run has
    started (config.json written), a failure removes what this start wrote (and the folder, if made
    here): no half-made run is left behind for `--resume` to trip over. `overwrite`: a run already in
    the folder is removed first (under the lock), never any other folder's files."""
    _refuse_existing_run(run_dir, overwrite)  # before anything is written, even a lock file
    from zoo.hub.cache import is_managed

    if overwrite and is_managed(run_dir):
        raise RunError(f"{run_dir} is in a folder zoo or the Hugging Face Hub manages; --overwrite is refused",
                       "Train into a folder of your own.")
    made = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_run(run_dir)
    except OSError as e:
        if made:
            _remove_empty(run_dir)
        raise storage_error(e, "cannot write the run folder", path=run_dir) from None
    state = {"started": False}
    mark = run_dir / START_MARK

    def started() -> None:
        state["started"] = True
        mark.unlink(missing_ok=True)

    try:
        with lock:
            _refuse_existing_run(run_dir, overwrite)  # a writer that finished while this one waited
            replacing = overwrite and (run_dir / ckpt.CONFIG).exists()
            clash = [n for n in RUN_OUTPUTS if (run_dir / n).exists()]
            if clash and not mark.exists() and not replacing:  # the mark: a killed start's files, zoo's own
                raise RunError(f"{run_dir} holds files a new run would replace ({', '.join(clash[:4])})",
                               "Choose another --out, or move those files away first.")
            ckpt.remove_stale_temporaries(run_dir)
            ckpt.atomic_write(mark, f"{os.getpid()}\n")
            if replacing:
                _remove_old_run(run_dir, log)
            try:
                yield started
            except BaseException:
                if not state["started"]:
                    for name in (*RUN_OUTPUTS, START_MARK):
                        with contextlib.suppress(OSError):
                            (run_dir / name).unlink(missing_ok=True)
                raise
    finally:
        if made and not state["started"]:
            _remove_empty(run_dir)


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if nothing else is in it


def _resume(run_dir: Path, model: str | None, log, progress, callbacks, overrides, *, preset=None, config=None,
            out=None) -> TrainResult:
    """Continue a run as it was configured: options that would change what it is are refused, the ones
    that may change (epochs, patience, device, ...) are honoured and written to its config.json."""
    if preset is not None:
        raise ConfigError("--preset cannot be used with --resume: the run keeps the configuration it started with",
                          f"Start a new run with the preset, or resume {run_dir} without it.")
    if out is not None and Path(out).absolute() != run_dir.absolute():
        raise ConfigError(f"--out {out} with --resume {run_dir}: a resumed run stays in its own folder",
                          "Resume without --out; copy the folder first to continue a copy.")
    run = read_run(run_dir)
    if model is not None and model != run["model"]:
        raise ConfigError(f"{run_dir} is a '{run['model']}' run, not '{model}'")
    entry = installed_entry(run, run_dir)
    given = {k: v for k, v in overrides.items() if v is not None}
    if config is not None:  # a config file's keys count as if given one by one: unknown or fixed keys refused
        file_values = cfgmod.flatten_sections(dict(config)) if isinstance(config, dict) else cfgmod.read_toml(config)
        named = file_values.pop("model", None)
        if named and named != run["model"]:
            raise ConfigError(f"the config file is for model '{named}', not '{run['model']}'")
        given = {**file_values, **given}
    if "dataset" in given:
        given["dataset"] = canonical_dataset_name(str(given["dataset"]))
    old_model, old_train = split_config(entry.cls, {**run["config"], **run["train"]})
    new_model, new_train = split_config(entry.cls, {**run["config"], **run["train"], **given})
    before = {**dataclasses.asdict(old_model), **dataclasses.asdict(old_train)}
    after = {**dataclasses.asdict(new_model), **dataclasses.asdict(new_train)}
    changed = {k for k in after if after[k] != before[k] and k not in RESUME_CHANGEABLE}
    if changed:
        raise ConfigError(f"--resume continues a run as it was configured; cannot change {', '.join(sorted(changed))}",
                          f"Only {', '.join(sorted(RESUME_CHANGEABLE))} may change; start a new run for the rest.")
    model_cfg, train_cfg = new_model, new_train
    try:
        lock = lock_run(run_dir)
    except OSError as e:
        raise storage_error(e, "cannot write to the run folder", path=run_dir) from None
    with lock:
        if not (run_dir / ckpt.CHECKPOINT).exists():
            raise RunError(f"{run_dir} has no checkpoint to resume from",
                           f"Its files are incomplete; train it anew into another folder (or remove {run_dir}).")
        ckpt.remove_stale_temporaries(run_dir)
        device = pick_device(train_cfg.device)
        data = training_data(train_cfg, device, run)
        net = entry.cls(model_cfg, runfiles.run_shape(run), runfiles.run_classes(run)).to(device)
        from zoo.training.callbacks import callbacks_for

        trainer = Trainer(net, data, train_cfg, run_dir=run_dir, log=log, progress=progress,
                          callbacks=[*callbacks_for(train_cfg), *callbacks])
        trainer.resume()
        done = trainer.state["epoch"]
        if train_cfg.epochs < done:
            raise ConfigError(f"{run_dir} has already trained {done} epochs; --epochs {train_cfg.epochs} would "
                              "undo them", f"Pass --epochs {done} or more (or leave it out).")
        if after != before:
            ckpt.write_json(run_dir / ckpt.CONFIG, {**run, "train": dataclasses.asdict(train_cfg)})
        # A run that ended, by its epochs or by early stopping, is finished: resuming it trains further
        # only when asked to (more --epochs, or another --patience), and says how otherwise.
        early = trainer.state.get("stopped") == "early_stopping"
        asked = any(k in given and after[k] != before[k] for k in ("epochs", "patience"))
        if done >= train_cfg.epochs:
            log(f"{run_dir} already finished its {train_cfg.epochs} epochs; pass --epochs N to train further")
        elif early and not asked:
            log(f"{run_dir} already stopped early at epoch {done} (no better {net.monitor} for "
                f"{train_cfg.patience} epochs; best epoch {trainer.state['best_epoch']}); to train further, "
                f"pass --patience N (more than {train_cfg.patience}, or 0 to turn early stopping off) or --epochs N")
            trainer.train.epochs = done  # nothing to train: fit only restores and reports the best epoch
        elif early:
            log(f"{run_dir} stopped early at epoch {done}; continuing to epoch {train_cfg.epochs} "
                f"with patience {train_cfg.patience or 'off'}")
            trainer.tracker.go_on_after_early_stop()
        else:
            log(f"resuming {run_dir} after epoch {done} of {train_cfg.epochs}")
        result = trainer.fit(resume=True)
        _write_card(run_dir)
    return result


# ------------------------------------------------------------------------------------- load

def _check_metric_options(net: ZooModel, options: dict) -> None:
    """An option of `zoo eval` (e.g. --iwae-k) is refused for a model whose `metrics` does not take it,
    rather than silently measuring without it."""
    import inspect

    taken = inspect.signature(type(net).metrics).parameters
    unknown = [k for k in options if k not in taken]
    if unknown:
        flag = "--" + unknown[0].replace("_", "-")
        raise ConfigError(f"{flag} does not apply to model '{net.name}': its metrics take no '{unknown[0]}'",
                          "Leave it out (--iwae-k applies to models with a likelihood bound, such as vae).")


@torch.no_grad()
def evaluate(source: str | Path | ZooModel, *, split: str = "test", data_dir: str | None = None,
             device: str | None = None, save: bool = True, options: dict | None = None,
             limit: int | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Test metrics of a run (reconstruction MSE, BCE, PSNR for autoencoders), written to eval.json.
    `options` pass model-specific settings to its `metrics` (e.g. {"iwae_k": 1000}: a VAE's IWAE bound,
    off by default for its cost). An evaluation that runs longer than a few seconds shows a progress bar
    on stderr; `progress` None: when stderr is a terminal."""
    net = load(source, device=device)
    if type(net).metrics is ZooModel.metrics and not net.can("reconstruct"):
        from zoo.errors import CapabilityError

        raise CapabilityError(f"model '{net.name}' has no per-image test metrics",
                              f"Measure its samples instead: zoo eval {source} --fid")
    _check_metric_options(net, options or {})
    data, x, y = run_data(net, split, data_dir)
    if limit:  # the first `limit` images of the split (costly metrics such as a k=1000 IWAE bound)
        x, y = x[:limit], y[:limit]
    from zoo.analysis import metrics

    sums: dict[str, float] = {}
    # Metrics that draw random numbers (a DAE's corruption, a VAE's sampled ELBO) draw the same ones on
    # every evaluation: a fixed seed, in a forked random state that leaves the caller's untouched.
    devices = [net.device] if net.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), metrics.progress_bar(x.shape[0], f"eval {split}", progress) as bar:
        torch.manual_seed(EVAL_SEED)
        for batch in growing_batches(x, y, bar):
            for k, v in net.metrics(batch, **(options or {})).items():
                sums[k] = sums.get(k, 0.0) + float(v.double().sum())
    n = x.shape[0]
    if not sums:
        from zoo.errors import CapabilityError

        raise CapabilityError(f"model '{net.name}' has no per-image test metrics",
                              f"Measure its samples instead: zoo eval {source} --fid")
    result = {"model": net.run_config["model"], "dataset": data.name, "split": split, "images": n,
              "pixels": data.pixels(), "classes": list(data.classes),
              "metrics": {k: v / max(n, 1) for k, v in sums.items()}}
    if split in data.reused:  # a tiny folder: this "test" figure is measured on training images
        result["caveat"] = data.caveat()
    from zoo.training import regularize

    if regularize.prunes(net.run_config.get("train", {})):
        result["sparsity"] = regularize.sparsity(net)  # zeros per group of the pruned weights
    report = net.evaluation_report(x, y, net.output_dir if save else None)
    if report:
        result["report"] = report
    if save:
        if net.output_dir == net.run_dir:
            written = net.run_dir / ckpt.EVAL
            ckpt.write_json(written, result)
            _write_card(net.run_dir)
        else:
            written = net.output_dir / ckpt.EVAL
            ckpt.write_json(written, result)
        result["written"] = [str(written)]
    return result


@torch.no_grad()
def reconstruct(source: str | Path | ZooModel, *, n: int = 16, out: str | Path | None = None, split: str = "test",
                data_dir: str | None = None, device: str | None = None) -> Path:
    """A picture of `n` images of the split beside their reconstructions."""
    from zoo.analysis import plots
    from zoo.errors import CapabilityError

    net = load(source, device=device)
    if not net.can("reconstruct"):
        raise CapabilityError(f"model '{net.name}' cannot reconstruct images",
                              f"It can: {', '.join(net.capabilities()) or 'nothing listed'}.")
    if n < 1:
        raise ConfigError("--n must be at least 1")
    _, x, _ = run_data(net, split, data_dir)
    xb = x[:n].float() / 255.0
    out = runfiles.picture_output(out, net.output_dir / "reconstructions.png")
    return plots.image_rows([("original", xb), ("reconstruction", net.reconstruct(xb))], out,
                            title=f"{net.name}: {split} images and reconstructions")


def _write_card(run_dir: Path) -> None:
    from zoo.runs.modelcard import write_card

    write_card(run_dir)


# ------------------------------------------------------------------------------------- denoising

def _model_noise(net: ZooModel, noise):
    from zoo.data.noise import parse_noise

    chosen = parse_noise(noise) if noise is not None else parse_noise(getattr(net.config, "noise", None))
    if chosen is None:
        raise ConfigError(f"model '{net.name}' was not trained with noise; say which with --noise, "
                          "e.g. --noise gaussian:0.3")
    return chosen


def _training_noise(net: ZooModel) -> str | None:
    """The noise the model was trained with, as a spec, or None for a model trained on clean images."""
    from zoo.data.noise import parse_noise

    noise = parse_noise(getattr(net.config, "noise", None))
    return noise.spec if noise is not None else None


def load_images(folder: str | Path, shape: tuple[int, int, int], device) -> tuple[torch.Tensor, list[Path]]:
    """A user's image files as floats in [0, 1], converted to the model's channels and size."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from zoo.data.datasets import IMAGE_SUFFIXES
    from zoo.errors import DataNotFoundError

    root = Path(folder)
    files = sorted(p for p in ([root] if root.is_file() else root.rglob("*"))
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) if root.exists() else []
    if not files:
        raise DataNotFoundError(f"no images found at {root}", f"Give a folder of {', '.join(sorted(IMAGE_SUFFIXES))} files.")
    c, h, w = shape
    arrays = []
    for p in files:
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR), dtype=np.uint8)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as e:
            raise DataNotFoundError(f"cannot read image {p}: {e}") from None
        arrays.append(arr[None] if c == 1 else arr.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays)).to(device).float() / 255.0, files


@torch.no_grad()
def denoise(source, *, noise: str | None = None, n: int = 16, out: str | Path | None = None,
            input: str | Path | None = None, split: str = "test", seed: int = 0, data_dir: str | None = None,
            device: str | None = None, log: Callable[[str], None] = to_stderr) -> Path:
    """A picture of clean, noisy and denoised images (the first `n` of the split); returns its path.

    With `input` (an image file or a folder of them, searched recursively), a user's own images instead:
    every one is denoised (noised first with `noise`, if given) and written as a PNG at the model's image
    size, under its own name with .png (and its subfolder), into the picture's folder of files: its name
    without .png plus _files (RUN/denoised_files/ beside RUN/denoised.png; a browser's "page.html" and
    "page_files/"), so that a picture named like the input folder keeps apart from it. The picture shows
    the first `n`. The files' folder may not be the input folder or inside it (a later run would read the
    outputs as inputs); `log` says where the files went."""
    check_seed(seed)
    import io

    from PIL import Image

    from zoo.analysis import plots

    net = load(source, device=device)
    require(net, "reconstruct")
    if n < 1:
        raise ConfigError("--n must be at least 1")
    gen = torch.Generator(device=net.device).manual_seed(seed)
    out = runfiles.picture_output(out, net.output_dir / "denoised.png")
    if input is None:
        chosen = _model_noise(net, noise)
        _, xs, _ = run_data(net, split, data_dir)
        clean = xs[:n].float() / 255.0
        noisy = chosen(clean, gen)
        rows = [("clean", clean), (f"noisy ({chosen})", noisy), ("denoised", net.reconstruct(noisy))]
        return plots.image_rows(rows, out, title=f"{net.name}: denoising {chosen} on {split} images")

    # The files' folder and names, checked before anything is written: never the input folder, never two
    # inputs to one name.
    root = Path(input)
    folder = out.with_name(out.stem + "_files")
    x, files = load_images(root, net.shape, net.device)
    in_folder = (root if root.is_dir() else root.parent).resolve()
    where = folder.resolve()
    if where == in_folder or (root.is_dir() and in_folder in where.parents):
        raise ConfigError(f"the denoised files would be written into {folder}, "
                          f"{'the input folder' if where == in_folder else 'inside the input folder'} {root}",
                          "Name the picture elsewhere with --out (the files go beside it, into NAME_files/ "
                          "for NAME.png).")
    names = [p.relative_to(root).with_suffix(".png") if root.is_dir() else Path(p.stem + ".png") for p in files]
    seen: dict[Path, Path] = {}
    for p, name in zip(files, names):
        if name in seen:
            raise ConfigError(f"{seen[name]} and {p} would both be written as {folder / name}",
                              "Rename one of them (the denoised files keep the inputs' names, with .png).")
        seen[name] = p
    targets = [runfiles.check_output(folder / name) for name in names]

    rows = [("input", x[:n])]
    if noise is not None:
        x = _model_noise(net, noise)(x, gen)
        rows.append((f"noisy ({noise})", x[:n]))
    denoised = torch.cat([net.reconstruct(b).float().clamp(0, 1) for b in x.split(256)])
    rows.append(("denoised", denoised[:n]))
    pixels = (denoised * 255).round().to(torch.uint8).cpu().numpy()
    for target, arr in zip(targets, pixels):
        buf = io.BytesIO()
        Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).save(buf, format="PNG")
        ckpt.atomic_write(target, buf.getvalue())
    c, h, w = net.shape
    log(f"wrote {len(files)} denoised image{'s' if len(files) != 1 else ''} ({w}×{h}, the model's size) "
        f"to {folder}/, named as the inputs")
    shown = f"the first {n} of {len(files)}" if len(files) > n else f"{len(files)}"
    return plots.image_rows(rows, out, title=f"{net.name}: {shown} image(s) from {input}, denoised")


@torch.no_grad()
def noise_sweep(source, *, baseline=None, noise: str | None = None, factors=(1, 2, 3, 4, 5), split: str = "test",
                seed: int = 0, data_dir: str | None = None, device: str | None = None,
                save: bool = True) -> dict[str, Any]:
    """Test MSE at 1x..5x a noise (`noise`, else the one the model was trained with) and under the other
    noise kinds, beside an optional baseline run fed exactly the same noisy images. Written to
    noise_sweep.json and noise_sweep.png; `trained_noise` says what the model was trained with (None:
    clean images), `noise` what was swept."""
    check_seed(seed)
    from zoo.analysis import plots
    from zoo.data.noise import noise_models

    net = load(source, device=device)
    require(net, "reconstruct")
    base_net = load(baseline, device=str(net.device)) if baseline is not None else None
    if base_net is not None:
        require(base_net, "reconstruct")
        if tuple(base_net.shape) != tuple(net.shape):
            raise ConfigError(f"the baseline's images are {base_net.shape}, the model's {net.shape}")
    trained = _model_noise(net, noise)
    levels = [(trained.scaled(f), f) for f in factors]
    levels += [(cls(), None) for name, cls in sorted(noise_models().items()) if name != trained.name]
    _, x, y = run_data(net, split, data_dir)
    rows = []
    for i, (level, factor) in enumerate(levels):
        gen = torch.Generator(device=net.device).manual_seed(seed + i)
        sums = {"model": 0.0, "baseline": 0.0, "noisy": 0.0}
        for batch in batches(x, y, 1024):
            noisy = level(batch.x, gen)
            sums["noisy"] += float((noisy - batch.x).pow(2).mean((1, 2, 3)).double().sum())
            sums["model"] += float((net.reconstruct(noisy) - batch.x).pow(2).mean((1, 2, 3)).double().sum())
            if base_net is not None:
                sums["baseline"] += float((base_net.reconstruct(noisy) - batch.x).pow(2).mean((1, 2, 3)).double().sum())
        n = x.shape[0]
        rows.append({"noise": level.spec, "factor": factor, "noisy_mse": sums["noisy"] / n,
                     "model_mse": sums["model"] / n,
                     "baseline_mse": sums["baseline"] / n if base_net is not None else None})
    result = {"model": str(net.run_dir), "baseline": str(base_net.run_dir) if base_net is not None else None,
              "noise": trained.spec, "trained_noise": _training_noise(net), "split": split, "images": int(x.shape[0]), "rows": rows}
    if save:
        ckpt.write_json(net.output_dir / "noise_sweep.json", result)
        plots.noise_sweep(result, net.output_dir / "noise_sweep.png")
        result["written"] = [str(net.output_dir / "noise_sweep.json"), str(net.output_dir / "noise_sweep.png")]
    return result


# ------------------------------------------------------------------------------------- sampling

SAMPLE_BATCH = 256      # samples made at once: memory stays one batch, whatever --n
MAX_GRID = 2_500        # samples one PNG may show (50 × 50); more go to a .safetensors file


def _decoded_samples(net: ZooModel, n: int, gen: torch.Generator, *, sampler=None, class_label=None,
                     noise_scale: float = 0.0) -> torch.Tensor:
    """Images decoded from latent codes drawn by a fitted sampler, or around a class mean."""
    return torch.cat(list(_sample_batches(net, n, gen, sampler=sampler, class_label=class_label,
                                          noise_scale=noise_scale)))


def _sample_batches(net: ZooModel, n: int, gen: torch.Generator, *, sampler=None, class_label=None,
                    noise_scale: float = 0.0, batch: int = SAMPLE_BATCH):
    """`n` samples in [0, 1] as batches of at most `batch`: from the model's own prior, or decoded from
    latent codes (a fitted sampler, or around a class mean). One generator runs through every batch, so
    the same seed gives the same images."""
    if sampler is None and class_label is None:
        if noise_scale:
            raise ConfigError("--noise-scale goes with --class")
        draw = lambda k: net.sample(k, generator=gen)  # noqa: E731
    else:
        from zoo.analysis.samplers import latent_drawer

        require(net, "decode")
        codes = latent_drawer(net, sampler=sampler, generator=gen, class_label=class_label, noise_scale=noise_scale)
        draw = lambda k: net.decode(codes(k))  # noqa: E731
    for start in range(0, n, batch):
        yield draw(min(batch, n - start)).float().clamp(0, 1)


@torch.no_grad()
def generate(source, *, n: int = 64, seed: int = 0, out: str | Path | None = None, device: str | None = None,
             sampler: str | None = None, class_label: str | int | None = None,
             noise_scale: float = 0.0) -> Path:
    """Sample `n` images: a grid PNG, or a tensor file if `out` ends in .safetensors (written batch by
    batch: memory does not grow with `n`).

    A generative model (VAE, GAN) samples itself; an autoencoder that can decode samples its latent
    space through a sampler fitted on its training codes (`sampler="gmm"`, ...), or around the mean
    code of a class (`class_label=7`)."""
    from zoo.analysis import plots

    check_seed(seed)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--n must be a whole number of at least 1, got {n!r}")
    out = runfiles.picture_output(out, None, tensors=True)
    to_file = out is not None and out.suffix == ".safetensors"
    if not to_file and n > MAX_GRID:
        raise ConfigError(f"--n {n}: a picture shows at most {MAX_GRID:,} samples",
                          "Write them to a tensor file instead: --out samples.safetensors.")
    net = load(source, device=device)
    gen = torch.Generator(device=net.device).manual_seed(seed)
    if sampler is None and class_label is None:
        if not net.can("sample"):
            from zoo.errors import CapabilityError

            raise CapabilityError(f"model '{net.name}' cannot sample by itself",
                                  "Sample its latent space with a fitted sampler: "
                                  f"zoo generate {source} --sampler gmm (or gaussian, standard-normal), "
                                  f"or decode around a class mean with --class LABEL.")
        how = "the model's prior"
    else:
        how = f"sampler {sampler}" if sampler else f"class {class_label}"
    batches_ = _sample_batches(net, n, gen, sampler=sampler, class_label=class_label, noise_scale=noise_scale)
    if to_file:
        with ckpt.TensorStream(out, "images", (n, *net.shape), torch.float32,
                               {"model": net.name, "seed": str(seed), "n": str(n)}) as stream:
            for images in batches_:
                stream.write(images)
        return out
    images = torch.cat(list(batches_))
    out = out or net.output_dir / "samples.png"
    per_row = max(1, int(round(n ** 0.5)))
    return plots.image_rows([("", images)], out, title=f"{net.name}: {n} samples ({how}, seed {seed})",
                             per_row=per_row)


# ------------------------------------------------------------------------------------- transfer

def finetune(source, *, hidden: list[int] | tuple[int, ...] = (60,), freeze: str = "all", unfreeze_last: int = 0,
             features: str = "latent", dataset: str | None = None, out: str | Path | None = None,
             **overrides) -> TrainResult:
    """Train a classifier head on the labels, on top of the encoder of a trained run.

    freeze="all" keeps the encoder fixed (but its last `unfreeze_last` weight layers); "none" trains all.
    features="latent" reads the code (a VAE's mean); "conv" reads the flattened conv features."""
    from torch import nn

    from zoo.errors import CapabilityError

    src = load(source)
    encoder = getattr(src, "encoder", None)
    if not src.can("encode") or not isinstance(encoder, nn.Sequential) or not isinstance(encoder[-1], nn.Linear):
        raise CapabilityError(f"model '{src.name}' has no conv encoder to fine-tune",
                              "finetune works from runs of convae, dae, vae (any model built on zoo.plugins.conv).")
    cls = registry.get_model_class("classifier")
    own_keys = {f.name for f in cfgmod.fields_of(cls.Config)}
    values = {k: v for k, v in src.run_config["config"].items() if k in own_keys}
    values.update(head=list(hidden), freeze=freeze, unfreeze_last=unfreeze_last, features=features,
                  encoder_out=encoder[-1].out_features, init_from=str(source))
    src_train = src.run_config["train"]
    dataset = dataset or src_train["dataset"]
    if dataset == src_train["dataset"] and src_train.get("data_dir") and "data_dir" not in overrides:
        overrides["data_dir"] = src_train["data_dir"]
    source_state = {k: v for k, v in src.state_dict().items() if k.startswith("encoder.")}

    def copy_encoder(net: ZooModel) -> None:
        own = {k: v for k, v in net.state_dict().items() if k.startswith("encoder.")}
        missing = [k for k in own if k not in source_state or source_state[k].shape != own[k].shape]
        if missing:
            raise RunError(f"the encoder of {source} does not fit the classifier ({', '.join(missing[:3])})")
        net.load_state_dict({k: source_state[k] for k in own}, strict=False)

    return train("classifier", dataset=dataset, out=out, init=copy_encoder, **{**values, **overrides})


# ------------------------------------------------------------------------------------- sample quality

def feature_network_name(dataset: str) -> str:
    return f"features-{dataset}"


@torch.no_grad()
def sample_quality(source, *, features: str | None = None, n: int = 10_000, seed: int = 0, sampler: str | None = None,
                   data_dir: str | None = None, device: str | None = None, save: bool = True,
                   progress: bool | None = None) -> dict[str, Any]:
    """Classifier-feature FID and KID of `n` samples against `n` test images, with the test set against
    the training set as the floor. `features` names the feature network (default features-<dataset>,
    where one is catalogued). KID is the mean ± std over random subsets of at most half the images.
    A run longer than a few seconds shows a progress bar on stderr (`progress` None: on a terminal)."""
    check_seed(seed)
    from zoo.analysis import metrics, quality

    net = load(source, device=device)
    if sampler is None:
        require(net, "sample")
    train_cfg = net.run_config["train"]
    dataset = train_cfg["dataset"]
    if features is None and feature_network_name(dataset) not in registry.weights():
        import shlex

        option = f" --data-dir {shlex.quote(train_cfg['data_dir'])}" if train_cfg.get("data_dir") else ""
        option += f" --set image_size={train_cfg['image_size']}" if train_cfg.get("image_size") else ""
        raise ConfigError(f"no feature network is catalogued for {dataset}: FID and KID measure samples in the "
                          "features of a classifier trained on the same data set",
                          "Train one, then pass it with --features RUN:\n"
                          f"  zoo train classifier --dataset {shlex.quote(dataset)}{option} --out runs/features\n"
                          f"  zoo eval {shlex.quote(str(source))} --fid --features runs/features")
    features = features or feature_network_name(dataset)
    feat = load(features, device=str(net.device))
    if not hasattr(feat, "embed"):
        raise ConfigError(f"'{features}' is not a feature network (a classifier run)")
    if tuple(feat.shape) != tuple(net.shape):
        raise ConfigError(f"the feature network '{features}' takes {feat.shape} images, the model makes {net.shape}")
    data, test_x, _ = run_data(net, "test", data_dir)
    if "test" in data.reused:
        raise ConfigError(f"no sample-quality figure for {data.name}: {data.caveat()}",
                          "FID and KID compare samples with held-out images; add images to the folder.")
    m = min(n, test_x.shape[0], data.train_x.shape[0])
    gen = torch.Generator(device=net.device).manual_seed(seed)
    def draw(k: int) -> torch.Tensor:
        return net.sample(k, generator=gen) if sampler is None else _decoded_samples(net, k, gen, sampler=sampler)

    pick = torch.randperm(data.train_x.shape[0], generator=torch.Generator().manual_seed(seed))[:m]
    per_set = -(-m // 1000)  # batches of 1000 to draw or embed for each set of m images
    with metrics.progress_bar(4 * per_set + 2 * quality.KID_SUBSETS, "fid: sampling", progress, unit="step") as bar:
        samples = []
        for i in range(0, m, 1000):
            samples.append(draw(min(1000, m - i)).float().clamp(0, 1))
            bar.update()
        bar.set_description_str("fid: features", refresh=False)
        f_samples, f_test, f_train = [quality.embed(feat, images, bar=bar) for images in
                                      (torch.cat(samples), test_x[:m], data.train_x[pick.to(data.train_x.device)])]
        bar.set_description_str("fid: KID", refresh=False)
        result = {"feature_network": features, "note": "classifier-feature FID/KID: not comparable to Inception FID",
                  "images": m, "seed": seed, "sampler": sampler or "model",
                  "samples_vs_test": quality.compare(f_samples, f_test, bar=bar),
                  "floor_test_vs_train": quality.compare(f_test, f_train, bar=bar)}
    if save:
        name = "quality.json" if sampler is None else f"quality-{sampler}.json"
        ckpt.write_json(net.output_dir / name, result)
        result["written"] = [str(net.output_dir / name)]
    return result
