"""Loading a trained run: found by what a user calls it (a folder, a catalogued name, a hub location),
its config.json read and checked, its model rebuilt from the weights, and where the results of a task
on it go."""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import shlex
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo import hub, registry
from zoo.console import to_stderr, with_article
from zoo.device import keeps_callers_random_state, pick_device
from zoo.errors import ConfigError, RunError, UnknownModelError
from zoo.hub.files import PUSHED_MANIFEST
from zoo.model import ZooModel
from zoo.runs import checkpoint as ckpt
from zoo.runs import config as cfgmod
from zoo.runs import files as runfiles
from zoo.runs.command_folders import what_it_is
from zoo.runs.inputs import dtype_name
from zoo.runs.plugin_uses import missing_use, package_missing
from zoo.runs.run import Run
from zoo.runs.write_checks import writable
from zoo.training.engine import TrainResult


def read_run(run_dir: str | Path | Run) -> dict[str, Any]:
    """The run's config.json, checked to be a zoo run: every field zoo reads present and of its type. Found as
    zoo.load finds it (a folder, a catalogued name, a hub location); a Run gives its own."""
    if isinstance(run_dir, Run):
        return run_dir.record
    run_dir = resolve(run_dir)
    if not run_dir.exists():
        raise RunError(f"{run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file, not a run folder", "Pass the folder written by `zoo train`.")
    if not (run_dir / ckpt.CONFIG).exists():  # anything else there (a FIFO, a folder) is refused by read_json
        raise RunError(f"{run_dir} is not a zoo run (no {ckpt.CONFIG}){what_it_is(run_dir)}",
                       "Pass a folder written by `zoo train`"
                       + (f", such as {shlex.quote(str(run_dir))}/* for the runs it holds." if
                          any((p / ckpt.CONFIG).is_file() for p in _folders(run_dir)) else "."))
    return runfiles.check_run_config(ckpt.read_json(run_dir / ckpt.CONFIG), str(run_dir / ckpt.CONFIG))


def _folders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir()][:1000]
    except OSError:
        return []


def resolve(source: str | Path) -> Path:
    """A run folder; a name catalogued in registry.toml (its bundled folder, or its copy pulled from the hub
    its entry names; checked by sha256); or a hub location, hf://ORG/NAME[@REVISION] or file:///PATH,
    fetched into the cache and verified (see zoo.hub). A training's result (zoo.train, zoo.finetune): its folder."""
    if isinstance(source, TrainResult):
        return Path(source.run_dir)
    if not isinstance(source, (str, Path)) or not str(source).strip():
        raise ConfigError(f"{source!r:.60} names no run",
                          "Give a run folder, a catalogued name (zoo list --pretrained) or a hub location.")
    if hub.is_hub_source(source):
        return hub.resolve(source)
    path = Path(source)
    if path.exists() or not isinstance(source, str) or "/" in source:
        return path
    if source not in registry.weights() and catalogued_name(source) != source:
        to_stderr(f"note: using the catalogued weights '{catalogued_name(source)}' for model '{source}' "
                  f"(`zoo list --pretrained` lists the others)")
        source = catalogued_name(source)
    if source not in registry.weights():
        # a misspelling (iwae-mnst), a part of a name (iwae50), either in other capitals (HEAD-MNIST)
        names = {name.lower(): name for name in registry.weights()}
        close = [names[n] for n in difflib.get_close_matches(source.lower(), list(names), n=3, cutoff=0.75)] \
            or [name for n, name in names.items() if source.lower() in n]
        preset = (registry.presets().get(source) or {}).get("model")  # a preset is a config, not weights
        raise RunError(f"{source} is neither a run folder nor a catalogued name"
                       + (f": it names a preset of model '{preset}', a config to train with" if preset else ""),
                       (f"zoo train {preset} --preset {source} trains it. " if preset else "")
                       + (f"Did you mean: {', '.join(close)}? " if close else "")
                       + "`zoo list --pretrained` lists the names." + registry.failed_plugins())
    return hub.resolve(source)  # bundled or pulled, checked against its catalogued sha256


def catalogued_name(source: str) -> str:
    """The catalogued weights a name means: itself, or for a model's name (`zoo generate gan`) the
    weights marked as its default."""
    if source in registry.weights():
        return source
    return registry.default_weights_name(source) or source


def installed_entry(run: dict[str, Any], run_dir: Path):
    """The registry's entry of the run's model, once its package and those of the plugin classes the run uses
    (its training noise) are installed: else which package to install."""
    try:
        entry = registry.get_entry(run["model"])
    except UnknownModelError:
        plugin = run.get("plugin", {})
        package = plugin.get("package") if isinstance(plugin.get("package"), str) else "?"
        raise package_missing(f"{run_dir} was made by model '{run['model']}'", package) from None
    missing = missing_use(run, run_dir)
    if missing is not None:  # said as what it is, not as a config.json edited (its noise: an unknown name)
        raise missing
    return entry


@keeps_callers_random_state
def load(source: str | Path | Run, device: str | None = "cpu") -> Run:
    """A trained run, rebuilt from its folder (config.json + model.safetensors), a catalogued name or a
    hub location, with its model in eval mode on `device`.

    Nothing is allocated before the shapes the config implies match the weights file's header, and the
    weights are checked against the checksum recorded when they were written, then for NaN. A Run is
    returned itself, its model moved to `device` where that names another one (None: left where it is)."""
    if isinstance(source, Run):
        if source.model.dtype != torch.float32:  # the tasks feed it float32 batches: torch's error deep down
            raise ConfigError(f"run.model is in {dtype_name(source.model)}: zoo's tasks (evaluate, finetune, "
                              "generate, ...) take a float32 model",
                              "Bring it back with run.model.float() (or zoo.load the run again); the Run's methods "
                              "(run.encode, run.classify, ...) take the model in its dtype.")
        if device is not None and pick_device(device) != source.device:
            source.model.to(pick_device(device))
        return source
    if isinstance(source, ZooModel):
        raise ConfigError("a bare model has no run folder: its data set and training are unknown",
                          "Pass the run it came from: its folder, catalogued name or hub location, or zoo.load(...).")
    if isinstance(source, TrainResult):  # zoo.train's or zoo.finetune's result: the run it wrote
        source = source.run_dir
    # Absolute, so that the run is still found after the working directory changes (os.chdir).
    run_dir = resolve(source).absolute()
    run = read_run(run_dir)  # (a catalogued name's model and data set are checked by its pull: check_catalogued)
    entry = installed_entry(run, run_dir)
    shape, classes = runfiles.run_shape(run), runfiles.run_classes(run)
    try:  # a record the run was written with, not the command line: a config.json edited, or another model's
        model_cfg = cfgmod.build(entry.cls.Config, dict(run["config"]), where=f"{run_dir / ckpt.CONFIG}")
        skeleton = runfiles.skeleton(entry.cls, model_cfg, shape, classes)
    except ConfigError as e:
        raise RunError(f"{run_dir / ckpt.CONFIG} does not describe {with_article(run['model'])} that zoo builds: "
                       f"{e.message}",
                       other_version_hint(run, "The file was edited, or is another model's: restore the run's own "
                                                "config.json (or train the run again).", entry)) from None
    weights_path = run_dir / ckpt.WEIGHTS
    declared, _ = ckpt.read_weights_header(weights_path)
    if skeleton is not None:
        try:
            runfiles.check_weights_fit(runfiles.state_spec(skeleton), declared, weights_path)
        except RunError as e:
            raise RunError(e.message, other_version_hint(run, e.hint, entry)) from None
    net = entry.cls(model_cfg, shape, classes)
    weights, meta = ckpt.load_tensors(weights_path)
    ckpt.load_state(net, weights, weights_path)
    net.to(pick_device(device)).eval()  # None: auto; 0 or "" refused, never taken for auto
    # A folder named by its path is kept by its absolute path too, so outputs still go beside it after os.chdir.
    where = run_dir if not hub.is_hub_source(source) and Path(source).absolute() == run_dir else source
    return Run(model=net, folder=run_dir, record=run, source=str(source),
               place_outputs=functools.partial(output_folder, where, run_dir),  # a lambda would not pickle
               # the digest of the tensors read (checked against them), not of the file read again: a training
               # that replaced it meanwhile had the results of these weights recorded as the new ones'
               file_digest=meta.get(ckpt.DIGEST_KEY) or ckpt.weights_digest(weights_path),
               state_digest=ckpt.tensor_digest(net.state_dict()))


def _version(text: str) -> tuple[int, ...]:
    """A version's numbers ("0.2.0" -> (0, 2, 0)); what is not a number counts as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in text.split(".")[:3])


def other_version_hint(run: dict[str, Any], hint: str | None, entry=None) -> str | None:
    """For weights that do not fit: a run written by another version of its plugin package (config.json's
    `plugin`, against the installed `entry`), or of zoo, may be built differently."""
    plugin = run.get("plugin") if isinstance(run.get("plugin"), dict) else {}
    package, version = plugin.get("package"), plugin.get("version")
    if entry is not None and package == entry.package != "zoo" and isinstance(version, str) and \
            version != entry.version:
        return (f"The run was made with {package} {version}, and {package} {entry.version} is installed, which may "
                f"build the model differently: load it with that version (pip install '{package}=={version}'), or "
                f"train it again with {entry.version}.")
    made_by = run.get("zoo_version")
    if not isinstance(made_by, str) or made_by == zoo.__version__:
        return hint
    if _version(made_by) > _version(zoo.__version__):  # a newer zoo's run: its keys and layers may be new
        return (f"The run was written by zoo {made_by}, newer than this zoo {zoo.__version__}: load it with zoo "
                f"{made_by} or later (pip install -U zoo).")
    return (f"The run was written by zoo {made_by}, and zoo {zoo.__version__} builds this configuration "
            "differently (since 0.2 the decoder is sized from the encoder's geometry for every image size, "
            f"which changes models of images other than 28×28): train it again with zoo {zoo.__version__}, "
            f"or load it with zoo {made_by}.")


OUTPUTS = "zoo-outputs"  # where the results of a model the user does not own are written


def output_folder(source: str | Path, run_dir: Path) -> Path:
    """Where a task writes its results for `source`. Beside a run the user owns. A catalogued or
    downloaded model (named, or by the path of zoo's copy), or a run in a folder this process cannot
    write, is left alone: its results go to
    ./zoo-outputs/NAME/ (NAME: the catalogued name, the Hugging Face repository's id and commit, or the folder's name
    and a digest of where it is), so they never mix with, or overwrite, the user's own files in the working
    directory, nor another model's results."""
    folder, why = output_place(source, run_dir)
    if why and (hub.is_managed(folder) or registry.shipped_by_plugin(folder)):  # the working directory is inside
        # zoo's cache, the bundled weights or a plugin's
        raise RunError(f"the working directory {Path.cwd()} is inside a folder zoo manages (a pulled copy, or the "
                       "bundled weights): results cannot be written there", "Run the command from another folder.")
    if why:
        to_stderr(f"note: {why}; outputs go to {folder.relative_to(Path.cwd())}/")
    return folder


def output_place(source: str | Path, run_dir: Path) -> tuple[Path, str | None]:
    """output_folder without its note: (the folder, None) for a run the user owns, else (./zoo-outputs/NAME,
    why the results go there). Readers of a model's results (`zoo compare`) look there too."""
    owned = not hub.is_hub_source(source) and Path(source).absolute() == run_dir.absolute()
    # the path of a pulled copy, of the bundled weights, or of weights a plugin ships (its installed package)
    shipped = owned and registry.shipped_by_plugin(run_dir)
    managed = owned and (hub.is_managed(run_dir) or shipped)
    published = owned and (run_dir / PUSHED_MANIFEST).is_file()  # a folder hub's entry named by its path
    if owned and not managed and not published and writable(run_dir):
        return run_dir, None
    # NAME tells models apart: a Hugging Face repository by its full id, a catalogued model by its name, and
    # anything else known by a place (a folder hub's entry, a read-only folder) by its name and a digest of
    # the place and the run it holds: two entries named `ev` in two folder hubs never share, and overwrite,
    # one outputs folder, nor do two runs pushed in turn to one entry (results before 2026-12-07, under the
    # place's digest alone, are taken up where they are of these weights).
    if hub.is_hub_source(source):
        where = hub.parse(str(source))
        revision = f"@{where.revision}" if where.revision else ""
        label, before = (_hf_label(run_dir) or where.repo.replace("/", "--") + revision,
                         [where.repo.replace("/", "--") + revision, where.repo.rsplit("/", 1)[-1] + revision]) \
            if where.kind == "hf" else (_placed(where.path, run_dir), [where.path.name, _placed(where.path)])
    elif owned:  # a folder by its own name (`.`, a link: the folder they name)
        label = registry.bundled_name(run_dir) or _hf_label(run_dir) or _placed(run_dir, run_dir)
        before = [run_dir.resolve().name, _placed(run_dir)]
    else:
        label = catalogued_name(str(source))
        before = [label]
    folder = Path.cwd() / OUTPUTS / label.replace("/", "-")
    for old in before:
        _take_up(folder.parent / old.replace("/", "-"), folder, run_dir)
    why = (f"{run_dir} is shipped by a plugin (weights its catalogue names)" if shipped else
           f"{run_dir} is a copy zoo manages (a pulled model, or bundled weights)" if managed else
           f"{run_dir} is a folder hub's entry (a push made it: {PUSHED_MANIFEST})" if published else
           f"{run_dir} no longer exists" if owned and not run_dir.is_dir() else
           f"{run_dir} cannot be written" if owned else
           f"{source} names catalogued weights, whose folder zoo writes nothing into" if label in registry.weights()
           else f"{source} is not a run folder of yours")
    return folder, why


def _take_up(old: Path, folder: Path, run_dir: Path) -> None:
    """Move the results zoo kept for this model under the name it gave them before 2026-12-06 (NAME, where
    it is now NAME-DIGEST or ORG--NAME@COMMIT) into `folder`, where they are results of these weights (its eval.json,
    or an evaluation's progress, says so): an hours-long bound is neither lost nor measured again. Said."""
    if old == folder or folder.exists() or not old.is_dir() or not (run_dir / ckpt.WEIGHTS).is_file():
        return
    digest = ckpt.weights_digest(run_dir / ckpt.WEIGHTS)
    ours = ckpt.read_eval(old, weights=run_dir / ckpt.WEIGHTS)[0] is not None
    for progress in old.glob("eval-progress*.safetensors"):
        try:
            ours = ours or runfiles.read_header(progress)[1].get("weights") == digest
        except (RunError, OSError):
            continue
    if ours:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            old.rename(folder)
        except OSError:
            return
        to_stderr(f"note: moved {old} to {folder}: results of these weights, where zoo kept them before 2026-12-06")


def _hf_label(run_dir: Path) -> str | None:
    """ORG--NAME@COMMIT (12 digits) for a snapshot of huggingface-hub's cache (models--ORG--NAME/snapshots/
    COMMIT): the same weights named by a branch, by their commit or by the cached path share one folder."""
    snapshot = run_dir.resolve()
    repo = snapshot.parent.parent.name
    if snapshot.parent.name != "snapshots" or not repo.startswith("models--") or len(repo) == len("models--"):
        return None
    return f"{repo[len('models--'):]}@{snapshot.name[:12]}"


def _placed(path: Path, run_dir: Path | None = None) -> str:
    """A folder's name and a short digest of where it is and of which run it holds (read from `run_dir`'s
    config.json), as its outputs folder's name: a folder hub's entry pushed over by another run gets
    another outputs folder, and the results and samplers of the run it held before stay as they were."""
    where = path.resolve()
    try:
        held = ckpt.run_identity(ckpt.read_json(run_dir / ckpt.CONFIG)) if run_dir is not None else ""
    except (RunError, OSError, AttributeError):  # unreadable, or not a mapping: the place alone
        held = ""
    key = f"{where}\0{held}" if held else str(where)  # the place alone: a run that records no identity
    # a name within a file name's 255 bytes with its digest (a 250-byte run name could not be evaluated)
    name = os.fsencode(where.name)[:200].decode("utf-8", "ignore") if len(os.fsencode(where.name)) > 200 \
        else where.name  # (cut between whole characters)
    return f"{name}-{hashlib.sha256(os.fsencode(key)).hexdigest()[:8]}"
