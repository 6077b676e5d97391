"""Training a model into a run folder, and resuming a run."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
import re
import shlex
import uuid
from os import PathLike
from pathlib import Path
from typing import Any, Callable

import zoo
from zoo import registry
from zoo.console import to_stderr
from zoo.data import canonical_dataset_name, relocated
from zoo.data.datasets import folder_of
from zoo.data.folders import few
from zoo.device import describe, device_label, keeps_callers_random_state, pick_device
from zoo.errors import (ConfigError, DataNotFoundError, Interrupted, RunError, TrainingDiverged, ZooError,
                        storage_error)
from zoo.hub import is_hub_source
from zoo.interrupts import holding_interrupts
from zoo.model import ZooModel, build_seeded
from zoo.runs import checkpoint as ckpt
from zoo.runs import config as cfgmod
from zoo.runs import files as runfiles
from zoo.runs.config import TrainConfig, model_named_by, resolve_config, split_config
from zoo.runs.config_files import config_values, recorded_preset
from zoo.runs.folder import EVALUATED, RUN_OUTPUTS, new_run_folder, remove_empty
from zoo.runs.loading import installed_entry, read_run
from zoo.runs.lock import lock_run
from zoo.runs.modelcard import write_card
from zoo.runs.plugin_uses import missing_use, uses_record
from zoo.runs.run import Run, other_images, training_data
from zoo.tasks.resume_source import refuse_published
from zoo.tasks.run_settings import settle
from zoo.tasks.train_arguments import check_flags, check_hooks, check_kinds, resume_folder
from zoo.tracking import finishing, loggers_for
from zoo.training import callbacks as zoo_callbacks
from zoo.training.engine import Trainer, TrainResult
from zoo.training.epochs import lr_factor

# compile changes speed only: a run trained with it on a machine that compiles goes on where torch.compile fails
RESUME_CHANGEABLE = {"epochs", "patience", "device", "data_dir", "plot_every", "loggers", "tensorboard_dir",
                     "mlflow_uri", "compile"}


def _claim_default_out(name: str, dataset: str) -> Path:
    """runs/MODEL-DATA-TIME, made here (empty) so that it is this run's: two runs started in the same second,
    by one script or two terminals, take -2, -3, ... (a check that the name was free let both take one)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", dataset.split(":")[0]).strip("-")
    base = Path("runs") / f"{name}-{slug}-{stamp}"
    for i in itertools.count(1):
        path = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise storage_error(e, "cannot make the run folder", path=path) from None


def _run_config(entry, model_cfg, train_cfg: TrainConfig, data_info: dict, device, preset: str | None,
                uses: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "zoo_version": zoo.__version__,
        "model": entry.name,
        "plugin": {"name": entry.name, "package": entry.package, "version": entry.version},
        "config": dataclasses.asdict(model_cfg),
        "train": dataclasses.asdict(train_cfg),
        "data": data_info,
        "devices": [device_label(device)],  # what it trained on (train.device is what was asked: auto)
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run_id": uuid.uuid4().hex,  # which run this is, also for two started in the same second
        **({"preset": preset} if preset else {}),  # the preset its config started from (its values are in config)
        **({"uses": uses} if uses else {}),  # other packages' classes it is built with (zoo.runs.plugin_uses)
    }


def training_key_clash(cls: type) -> str | None:
    """What to say of a model whose Config repeats training keys (a plugin's `lr`): one --set sets both, and
    a --resume only the training one (docs/plugins.md); None for a model that repeats none."""
    both = sorted({f.name for f in cfgmod.fields_of(cls.Config)} & {f.name for f in cfgmod.fields_of(TrainConfig)})
    if not both:
        return None
    return (f"model '{cls.name}' has hyperparameters named like training keys ({', '.join(both)}): one --set sets "
            "both, and a --resume only the training one; its plugin should rename them (docs/plugins.md)")


def model_to_train(model: str | None, preset: str | None, config: str | Path | dict | None, command: str) -> str:
    """The model named, else the one the config file (`model = "vae"`, as best.toml has it) or the preset
    names; refused in one message when none does. `command`: train, cv."""
    model = model or model_named_by(preset, config)
    if model is None:
        python = " (or zoo.train('NAME', ...))" if command == "train" else ""
        raise ConfigError(f"which model? e.g. `zoo {command} NAME`{python}",
                          'Or name it in the config file (model = "NAME") or pick a preset. Installed: '
                          + ", ".join(registry.list_models()) + ".")
    return model


@keeps_callers_random_state
def train(model: str | None = None, *, dataset: str | None = None, preset: str | None = None,
          config: str | Path | dict | None = None, out: str | Path | None = None,
          resume: str | Path | TrainResult | Run | None = None, log: Callable[[str], None] = to_stderr,
          progress: bool | None = None, callbacks=(), init: Callable[[ZooModel], None] | None = None,
          overwrite: bool = False, **overrides) -> TrainResult:
    """Train `model` (a plugin name) and write a run folder; or continue one with `resume=RUN` (a folder, or
    a training's result or a zoo.load Run: its folder).
    A folder that holds a run is refused unless `overwrite`: then the old run's files are replaced.

    Keyword overrides are config keys of the model or of `TrainConfig` (epochs=30, latent_dim=6, ...).
    `init(model)` may set the new model's weights before training (finetune uses it).
    A run folder has one writer at a time (zoo.runs.lock), and it is a run only once it is complete:
    config.json is written last, after the initial weights and an epoch-0 checkpoint.
    """
    resume = resume_folder(resume)  # a training's result or a Run: its folder
    check_kinds(model=(model, str), dataset=(dataset, str), preset=(preset, str),
                config=(config, (str, PathLike, dict)), out=(out, (str, PathLike)),
                resume=(resume, (str, PathLike)), callbacks=(callbacks, (list, tuple)))
    check_flags(overwrite, progress)  # overwrite="no" is no False: it replaced the run in `out`
    check_hooks(log, callbacks, init)
    if dataset is not None:
        overrides["dataset"] = dataset
    if resume is not None:
        if overwrite:
            raise ConfigError("--overwrite with --resume: a resumed run continues in its folder, nothing is replaced",
                              "Leave out one of them.")
        refuse_published(str(resume))
        return _resume(Path(resume), model, log, progress, callbacks, overrides, preset=preset, config=config,
                       out=out)
    model = model_to_train(model, preset, config, "train")
    entry = registry.get_entry(model)
    cls, model_cfg, train_cfg = resolve_config(model, preset=preset, config=config, overrides=overrides)
    preset = preset or recorded_preset(config)  # a run's config.json: the preset that run started from, kept
    registry.read_catalog()  # the model card reads it after the last epoch: a broken catalogue said before the first
    clash = training_key_clash(cls)
    if clash:
        log(f"note: {clash}")
    settle(train_cfg, log)  # canonical names, a data_dir that is no folder refused, settings that cannot act said
    device = pick_device(train_cfg.device)
    data = training_data(train_cfg, device)
    for note in (*data.notes, data.caveat(), _classes_missing(data)):  # what reading a folder changed, and splits
        if note:                                                        # that reuse images or miss a class
            log(f"note: {note}")
    if is_hub_source(str(out or "")):
        raise ConfigError(f"--out {out} is a hub location: a run is trained into a folder",
                          f"Train into a folder, then publish it: zoo push RUN {out}")
    run_dir = Path(out) if out else None
    if run_dir is not None and ".." in run_dir.parts:  # runs/x/..: the folder it names, so no check is made on one
        run_dir = run_dir.absolute().resolve()            # and a mkdir on another
    if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} exists and is not a folder")
    regs = zoo_callbacks.callbacks_for(train_cfg)  # pruning, iterative autoencoding, plugins' (as configured)
    loggers = loggers_for(train_cfg, log)  # TensorBoard, MLflow, ...: refused here when unknown or not installed
    # The model is built before the folder is touched: a configuration that cannot be built leaves an
    # old run in place (with --overwrite too).
    net = build_seeded(cls, model_cfg, data, train_cfg.seed, device)
    zoo_callbacks.check(regs, net)
    if init is not None:
        init(net)
    run_dir = run_dir or _claim_default_out(model, train_cfg.dataset)  # made now: a twin start takes the next name
    try:
        for logger in loggers:
            logger.prepare(run_dir)
        trainer = Trainer(net, data, train_cfg, run_dir=run_dir, log=log, progress=progress,  # and the settings
                          callbacks=[*regs, *callbacks, *loggers])  # the model cannot train with (an IWAE's memory)
    except BaseException:
        if out is None:  # the folder zoo named and made for this run, still empty
            remove_empty(run_dir)
        raise
    with new_run_folder(run_dir, overwrite=overwrite, log=log, made=out is None) as started:
        trainer.begin()
        ckpt.write_json(run_dir / ckpt.CONFIG, _run_config(entry, model_cfg, train_cfg, data.info(), device,
                                                              preset, uses_record(net, [*regs, *loggers])))
        started()
        log(f"training {model} on {data.name} ({data.train_x.shape[0]} images, {tuple(data.shape)}) "
            f"on {describe(device)} -> {run_dir}")
        with finishing(loggers):
            result = fit_with_card(trainer, run_dir, log)
        result.logging_seconds = {logger.name: logger.seconds for logger in loggers}
    return result


def fit_with_card(trainer: Trainer, run_dir: Path, log, resume: bool = False):
    """Train, then write the run's card. A stop after the last epoch (while the best weights' pictures are drawn:
    the engine holds it until they are) still leaves the run its card, and is said as the end it is, not as a
    bare "Interrupted." beside a card of fewer epochs."""
    try:
        result = trainer.fit(resume=resume)
    except TrainingDiverged:  # its kept epoch (or its initial weights) stays loadable: with its card
        _card_of_stopped(run_dir, log)
        raise
    except KeyboardInterrupt as e:
        ended = trainer.state.get("epoch", 0) >= trainer.train.epochs or trainer.state.get("stopped")
        if isinstance(e, Interrupted) or not ended:
            _card_of_stopped(run_dir, log)
            raise
        with holding_interrupts():
            write_card(run_dir, log=log)
        raise Interrupted(f"stopped after its last epoch: {run_dir} is complete (its weights, metrics, pictures and "
                          "card)") from None
    with holding_interrupts():  # a stop after the last epoch still leaves the run its card
        write_card(run_dir, log=log)
    return result


def _card_of_stopped(run_dir: Path, log) -> None:
    """The card of a run stopped before its end, by a stop or a divergence (its kept epoch so far, as a push would
    publish it): a run folder is loadable from the moment it exists, and was left without one. Not written, and
    said, where it cannot be: the stop is what the user is told."""
    if not (run_dir / "model.safetensors").is_file():
        return
    try:
        with holding_interrupts():
            write_card(run_dir, log=log)
    except (ZooError, OSError) as e:
        log(f"note: the stopped run's card could not be written ({e})")


def _classes_missing(data) -> str:
    """Which classes a labelled data set's validation or test split holds no image of (a class of a few images
    in a folder): nothing is measured of them there, and a classifier's per-class accuracy of them is none."""
    if len(data.classes) < 2:
        return ""
    said = []
    for split, name in (("val", "validation"), ("test", "test")):
        y = data.split(split)[1]
        missing = [c for i, c in enumerate(data.classes) if not bool((y == i).any())]
        if split not in data.reused and y.numel() and missing:
            said.append(f"its {name} split holds no image of the class(es) {few(missing)}")
    return f"{data.name}: {'; '.join(said)}, so nothing is measured of them there (add images)" if said else ""


def _say_schedule_moved(log, before: TrainConfig, after: TrainConfig, done: int) -> None:
    """A cosine schedule spans the run's --epochs: a resume with other epochs moves the learning rate at
    once (up, for more epochs), which a user sees as a jump in the loss. Said, with the two rates."""
    if after.lr_schedule != "cosine" or after.epochs == before.epochs:
        return
    last, next_ = before.lr * lr_factor(before, done), after.lr * lr_factor(after, done + 1)
    log(f"note: the cosine learning-rate schedule now spans {after.epochs} epochs, not {before.epochs}: the rate "
        f"goes from {last:.3g} in epoch {done} to {next_:.3g} in epoch {done + 1}, then down towards 0 by epoch "
        f"{after.epochs}")


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
    missing = missing_use(run, run_dir, ("callback", "logger"))  # it trains with them again: not "unknown callback"
    if missing is not None:
        raise missing
    registry.read_catalog()  # as for a new run: the card written at the end reads it
    given, moved = {k: v for k, v in overrides.items() if v is not None}, set()
    if config is not None:  # a config file's keys count as if given one by one: unknown or fixed keys refused
        file_values = config_values(config)
        named = file_values.pop("model", None)
        if named and named != run["model"]:
            raise ConfigError(f"the config file is for model '{named}', not '{run['model']}'")
        given = {**file_values, **given}
    if "dataset" in given:
        given["dataset"] = canonical_dataset_name(str(given["dataset"]))
    if given.get("data_dir"):  # where the run's data are now: a folder run's, its folder (as `zoo eval` takes it)
        dataset, given["data_dir"] = relocated(str(run["train"].get("dataset", "")), given["data_dir"])
        if dataset != run["train"].get("dataset"):
            given["dataset"], moved = dataset, {"dataset"}
    known = {f.name for f in cfgmod.fields_of(entry.cls.Config)} | {f.name for f in cfgmod.fields_of(TrainConfig)}
    foreign = sorted((set(run["config"]) | set(run["train"])) - known)
    if foreign:  # a newer zoo's keys: said as such, not as a key the user mistyped
        raise RunError(f"{run_dir / ckpt.CONFIG} holds keys this zoo ({zoo.__version__}) does not know: "
                       f"{', '.join(foreign)} (written by zoo {run.get('zoo_version', '?')})",
                       "Resume it with the zoo that trained it" + ("." if set(foreign) & set(run["config"]) else
                                                                   " (its weights still evaluate and sample here)."))
    old_model, old_train = split_config(entry.cls, {**run["config"], **run["train"]})
    new_model, new_train = split_config(entry.cls, {**run["config"], **run["train"], **given})
    before = {**dataclasses.asdict(old_model), **dataclasses.asdict(old_train)}
    after = {**dataclasses.asdict(new_model), **dataclasses.asdict(new_train)}
    changed = {k for k in after if after[k] != before[k] and k not in RESUME_CHANGEABLE | moved}
    if changed:
        raise ConfigError(f"--resume continues a run as it was configured; cannot change {', '.join(sorted(changed))}",
                          f"Only {', '.join(sorted(RESUME_CHANGEABLE))} may change; start a new run for the rest.")
    model_cfg, train_cfg = new_model, new_train
    try:
        lock = lock_run(run_dir)
    except OSError as e:  # the run folder, not its lock file; and no other place can do (--out is refused)
        raise storage_error(e, "cannot write to the run folder", at=run_dir, place_hint=(
            f"A resume writes into its run folder: make {run_dir} writable, or copy the folder to a writable "
            "place and resume the copy.")) from None
    with lock:
        if not (run_dir / ckpt.CHECKPOINT).exists():
            raise RunError(f"{run_dir} has no checkpoint to resume from",
                           f"Its files are incomplete; train it anew into another folder (or remove {run_dir}).")
        # What a resumed training writes, checked before a byte is (eval.json is only read, and ignored if odd)
        runfiles.check_replaceable(run_dir, (ckpt.CONFIG, *(n for n in RUN_OUTPUTS if n not in EVALUATED)))
        ckpt.remove_stale_temporaries(run_dir)
        try:
            device = pick_device(train_cfg.device)
        except ConfigError as e:  # a device of the machine it trained on, not one the user asked for here
            if "device" in given:
                raise
            raise ConfigError(f"{run_dir} was trained on device '{train_cfg.device}' (its config.json), which is not "
                              "available here", "Resume it on another: zoo train --resume "
                              f"{shlex.quote(str(run_dir))} --device cpu (or auto).") from e
        loggers = loggers_for(train_cfg, log, resume=True)
        for logger in loggers:
            logger.prepare(run_dir)
        try:
            data = training_data(train_cfg, device, run)
        except DataNotFoundError as e:  # a moved image folder: resumed with --data-dir (--set dataset is fixed)
            folder = folder_of(train_cfg.dataset)  # one still in place has other trouble, said by its own hint
            if folder is None or given.get("data_dir") or folder.is_dir():
                raise
            raise DataNotFoundError(e.message, "Where the run's images are now, say so: zoo train --resume "
                                               f"{run_dir} --data-dir FOLDER (data_dir= in Python).") from None
        differ = other_images(data, run)
        if differ:
            raise DataNotFoundError(f"{run_dir} was trained on other images: {differ}",
                                    "Resume on the files it was trained on (--data-dir FOLDER where they are); "
                                    "train a new run on these.")
        net = entry.cls(model_cfg, runfiles.run_shape(run), runfiles.run_classes(run)).to(device)
        trainer = Trainer(net, data, train_cfg, run_dir=run_dir, log=log, progress=progress,
                          callbacks=[*zoo_callbacks.callbacks_for(train_cfg), *callbacks, *loggers])
        trainer.resume()
        done = trainer.state["epoch"]
        if train_cfg.epochs < done:
            raise ConfigError(f"{run_dir} has already trained {done} epochs; --epochs {train_cfg.epochs} would "
                              "undo them", f"Pass --epochs {done} or more (or leave it out).")
        # A run that ended, by its epochs or by early stopping, is finished: resuming it trains further
        # only when asked to (more --epochs, or another --patience), and says how otherwise.
        early = trainer.state.get("stopped") == "early_stopping"
        asked = any(k in given and after[k] != before[k] for k in ("epochs", "patience"))
        trains = done < train_cfg.epochs and (asked or not early)
        # a device it trains on now, added where it trains at all (not an older zoo's run, whose list is unknown)
        devices = run.get("devices") if isinstance(run.get("devices"), list) else None
        more = [device_label(device)] if devices is not None and trains and device_label(device) not in devices \
            else []
        if after != before or more:
            moved_to = {"data": {**run["data"], "name": data.name}} if "dataset" in moved else {}  # as train names it
            ckpt.write_json(run_dir / ckpt.CONFIG, {**run, "train": dataclasses.asdict(train_cfg), **moved_to,
                                                    **({"devices": [*devices, *more]} if more else {})})
        if done >= train_cfg.epochs:
            log(f"{run_dir} already finished its {train_cfg.epochs} epochs; pass --epochs N (epochs=N) to train "
                "further")
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
        if done < train_cfg.epochs:
            _say_schedule_moved(log, old_train, train_cfg, done)
        try:
            with finishing(loggers):
                result = fit_with_card(trainer, run_dir, log, resume=True)
        except BaseException:
            if (after != before or more) and trainer.state["epoch"] == done:  # nothing trained: as it was
                with holding_interrupts():
                    ckpt.write_json(run_dir / ckpt.CONFIG, run)
            raise
        result.logging_seconds = {logger.name: logger.seconds for logger in loggers}
    return result
