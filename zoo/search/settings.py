"""What a search is: its `Settings` (everything a worker process needs, JSON-serialisable), made
from the command line and a space file by `prepare`."""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import registry
from zoo.data import canonical_dataset_name
from zoo.device import cuda_only_notes, pick_device
from zoo.errors import ConfigError, RunError
from zoo.runs.config import TrainConfig, check_count, check_flag, check_seed, field_type, fields_of, resolve_config
from zoo.runs.command_folders import CV_FOLDS, CV_RESULTS, STUDY_BEST, STUDY_SPACE
from zoo.runs.lock import writer_of
from zoo.training.fit import metric_key
from zoo.search.space import PRUNERS, STRATEGIES, Space, load_space
from zoo.search.study import JOURNAL, folder_study_name, normalise_url


@dataclass
class Settings:
    """Everything a worker needs, JSON-serialisable (passed to worker processes)."""

    model: str
    space: str                       # the space file (the study folder's copy)
    study: str
    study_dir: str
    storage: str | None              # None: the journal file in the study folder
    strategy: str = "tpe"            # how trials are drawn: tpe | random | grid (an Optuna sampler)
    pruner: str = "auto"
    trials: int = 20
    cv: int = 0
    seed: int | None = None
    timeout: float | None = None
    heartbeat: int = 30
    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    reduce: str = "best"
    time_penalty: float = 0.0
    latent_penalty: float = 0.0
    latent_key: str = ""     # the model's config key of the latent size (named by the space)
    workers: int = 1
    vectorize: int = 1               # trials asked at once; same-shape ones train in one vmapped step
    concurrent: bool | None = None   # their different-shape groups at once, in threads (None: on CUDA)
    notes: list[str] = field(default_factory=list)  # what only each draw can check (log and summary)

    @property
    def grace(self) -> int:
        return 3 * self.heartbeat

    @property
    def result(self) -> str:
        """The name of a trial's result, its metric reduced over the epochs (val_neg_elbo_best), in trials.csv,
        summary.json and the loggers: not 'loss', which a likelihood model's runs use for the bound they train."""
        return f"{self.metric}_{self.reduce}"


def config_keys(overrides: Any) -> dict[str, Any]:
    """`overrides=` of a Python call as a dict of config keys, NumPy numbers (np.int64(64), an np.float32 learning
    rate) as Python's and paths as text: a search hands its settings to worker processes as JSON, which has no NumPy
    types, and that failed only with --workers 2, after the study folder was made. Anything but a dict is refused."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides= takes a dict of config keys, not {type(overrides).__name__} "
                          f"{overrides!r:.60}", "For example overrides={'epochs': 5}, or the keys as keywords: "
                          "epochs=5.")
    return {k: _python(v) for k, v in overrides.items()}


def _python(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return type(v)(_python(x) for x in v)
    if type(v).__module__ == "numpy" and hasattr(v, "tolist"):  # a NumPy scalar (or array) as Python's numbers
        return v.tolist()
    if isinstance(v, os.PathLike):  # data_dir=Path(...), as out= and space= take one
        return os.fspath(v)
    return v


def merged_keys(keys: dict[str, Any], overrides: Any, dataset: str | None = None) -> dict[str, Any]:
    """The config keys a Python call gives as keywords (and `dataset`) and in `overrides` (`config_keys`), one key
    given both ways with two values refused: the dict won without a word (run_search's epochs=2 trained 1 epoch)."""
    overrides = config_keys(overrides)
    given = config_keys({**keys, **({"dataset": dataset} if dataset is not None else {})})
    listed = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731  ((4, 8) and [4, 8] are one value)
    twice = sorted(k for k, v in given.items() if k in overrides and listed(overrides[k]) != listed(v))
    if twice:
        raise ConfigError(f"{', '.join(twice)} given twice, as a keyword and in overrides=, with two values",
                          "Give each config key once.")
    return {**overrides, **given}


def _check_folder_model(study_dir: Path, model: str) -> None:
    """A study folder searched again is a search over the model asked for (its summary.json says which,
    once a search has finished there): checked before its space is read as this model's."""
    try:
        searched = json.loads((study_dir / "summary.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return  # none yet, or unreadable: the study's own record is checked later (resume.check_same_study)
    if isinstance(searched, str) and searched != model:
        raise ConfigError(f"{study_dir} holds a search over '{searched}', not '{model}'",
                          f"Resume it with zoo search {searched} --out {study_dir}, or search {model} in another "
                          "--out.")


def prepare(model: str, space: str | Path | None = None, *, study: str | None = None, out: str | Path | None = None,
            storage: str | None = None, strategy: str | None = None, pruner: str | None = None,
            trials: int | None = None, cv: int | None = None, seed: int | None = None, timeout: float | None = None,
            workers: int = 1, heartbeat: int = 30, vectorize: int = 1, concurrent: bool | None = None,
            overrides: dict[str, Any] | None = None, started_with: tuple[str, ...] = ()) -> tuple[Settings, Space]:
    """Check everything a user can get wrong before any trial runs; return the settings and the space.
    `started_with`: the keys of `overrides` a resumed study takes from its start, not from this command."""

    cls = registry.get_model_class(model)
    overrides = {k: v for k, v in config_keys(overrides).items() if v is not None}
    if isinstance(overrides.get("dataset"), str):  # a folder by its absolute path, as `zoo train` records it: the
        overrides["dataset"] = canonical_dataset_name(overrides["dataset"])  # study's reuse and best.toml hold it
    if study is not None and not study.strip():
        raise ConfigError("--study needs a name")
    if study is not None and (Path(study).is_absolute() or any(part in (".", "..") for part in study.split("/"))):
        # its folder is studies/NAME: `..` would put it outside studies/, `.` over every other study
        raise ConfigError(f"--study {study!r}: a study name is not a path (no leading /, no '.' or '..' parts)",
                          "Name it plainly (e.g. --study convae-lr), or choose its folder with --out.")
    if out is not None and (not isinstance(out, (str, os.PathLike)) or not str(out).strip()):
        raise ConfigError(f"--out (out=) is the study folder, a path, not {out!r:.60}",
                          "Leave it out for studies/NAME, or name a folder.")
    study_dir = Path(out) if out is not None else None
    # The space: the file given, else the copy in the study folder (resuming a study by name).
    if space is None:
        if study is None and study_dir is None:
            raise ConfigError("which space? e.g. zoo search convae --space space.toml",
                              "Give --space FILE (or the name of an example space), or --study NAME (or --out "
                              "FOLDER) of a study begun before.")
        study_dir = study_dir or Path("studies") / study
        if not (study_dir / STUDY_SPACE).is_file():
            raise ConfigError(f"no study folder {study_dir} with a space.toml to resume",
                              "Give --space FILE, or --out with the study's folder.")
        sp = load_space(study_dir / STUDY_SPACE)  # read as this model's only after _check_folder_model below
        study = study or folder_study_name(study_dir)
        journal = study_dir / JOURNAL
        if study is None and storage is None and (not journal.is_file() or journal.stat().st_size == 0):
            raise RunError(f"{study_dir} holds a search, but its journal {journal} is "
                           f"{'empty' if journal.is_file() else 'missing'}",
                           "Restore it, or start the new study in another --out.")
        if study is None:  # a study kept in a database, or a journal of several
            raise ConfigError(f"{study_dir}'s journal holds no single study to resume",
                              "Give --study NAME (or --space FILE) as when it began.")
    else:
        sp = load_space(space)
    name = study or f"{model}-{Path(sp.source).stem}"
    study_dir = study_dir or Path("studies") / name
    _check_folder_model(study_dir, model)
    _check_study_folder(study_dir)
    search, obj = sp.search, sp.objective

    strategy = strategy or search.get("strategy", "tpe")
    # auto: no pruning where the search is too small for it, else a median pruner sized from the
    # search (zoo.search.study.auto_pruning)
    pruner = pruner or search.get("pruner", "auto")
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown search strategy '{strategy}'", f"Use one of {', '.join(STRATEGIES)}.")
    if pruner not in PRUNERS:
        raise ConfigError(f"unknown pruner '{pruner}'", f"Use one of {', '.join(PRUNERS)}.")
    given = f"{sp.source}: [search] cv = " if cv is None else "--cv "  # where the user wrote it
    cv = search.get("cv", 0) if cv is None else check_count(cv, "--cv (cv=)", 0)
    if cv == 1 or cv < 0:
        raise ConfigError(f"{given}{cv}: cross-validation needs at least 2 folds (0: the validation split)")
    workers = check_count(workers, "--workers (workers=)", 1)
    vectorize = check_count(vectorize, "--vectorize (vectorize=)", 1)
    heartbeat = check_count(heartbeat, "--heartbeat (heartbeat=), in seconds,", 1)
    check_flag(concurrent, "concurrent", none=True)
    if trials is not None:
        trials = check_count(trials, "--trials (trials=)", 1)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                or not timeout > 0):
        raise ConfigError(f"--timeout (timeout=) must be a positive number of seconds, got {timeout!r:.60}")
    timeout = float(timeout) if timeout is not None else None  # a NumPy number too (the settings go as JSON)
    if concurrent and vectorize == 1:
        raise ConfigError("--concurrent trains the groups of trials that --vectorize K asks for at once, and "
                          "--vectorize is 1", "Add --vectorize K (e.g. 16).")
    if seed is not None:
        seed = check_seed(seed)
    elif "seed" in search:
        seed = check_seed(search["seed"], f"{sp.source}: [search] seed")

    fields = {f.name: (f, field_type(f, owner)) for owner in (cls.Config, TrainConfig) for f in fields_of(owner)}
    others = {m: {f.name for f in fields_of(registry.get_model_class(m).Config)} for m in registry.list_models()}
    sp.check_keys(set(fields), model, others)  # another model's key is said to be that model's
    notes = sp.check_values(fields)  # mixed-type choices, bounds outside a key's range: refused here

    searched = set(sp.keys())
    clash = sorted(searched & set(overrides))
    if clash:
        raise ConfigError(f"{', '.join(clash)} is searched by the space and also set on the command line",
                          "Remove it from --set (or from the space's [params]).")
    preset = search.get("preset")
    # The fixed part must be valid on its own (a typo fails here, not in every trial).
    _, model_cfg, train_cfg = resolve_config(model, preset=preset, config={**sp.fixed, **overrides})
    both = sorted(set(overrides) & set(sp.fixed))
    if both:  # said, as `zoo train` says a named option over a differing --set
        _, fixed_model, fixed_train = resolve_config(model, preset=preset, config=sp.fixed)
        value = lambda cfgs, k: next(getattr(c, k) for c in cfgs if hasattr(c, k))  # noqa: E731
        source = lambda k: "as the study began" if k in started_with else "from the command line"  # noqa: E731
        notes += [f"{k} = {value((model_cfg, train_cfg), k)!r} {source(k)} goes over the space's [fixed] "
                  f"{k} = {value((fixed_model, fixed_train), k)!r}" for k in both
                  if value((model_cfg, train_cfg), k) != value((fixed_model, fixed_train), k)]
    latent_key = obj.get("latent_key", "")
    latent_penalty = float(obj.get("latent_penalty", 0.0))
    sizes = [f.name for f in fields_of(cls.Config) if field_type(f, cls.Config) is int]
    if latent_penalty and not latent_key:
        raise ConfigError("the latent penalty needs the config key that holds the latent size",
                          f"Name it in [objective]: latent_key = \"KEY\", one of {model}'s whole-number keys: "
                          + ", ".join(sizes) + ".")
    if latent_penalty and latent_key not in {f.name for f in fields_of(cls.Config)}:
        raise ConfigError(f"the latent penalty reads '{latent_key}', which {model} does not have",
                          "Set [objective] latent_key to the model's latent size key.")
    if latent_penalty and latent_key not in sizes:  # a list, a text or a flag is no size to weigh
        raise ConfigError(f"the latent penalty reads '{latent_key}', which is not a whole number",
                          f"Set [objective] latent_key to one of {model}'s whole-number keys: {', '.join(sizes)}.")
    for given, what in ((trials, "--trials"), (search.get("trials"), "the space's [search] trials")):
        if given is not None and given < 1:  # 0 is no "default" (it ran the space's 20, or the whole grid)
            raise ConfigError(f"{what} must be at least 1, not {given}")
    trials = trials or search.get("trials")  # a grid's budget too: a space asking for part of its grid gets that
    if strategy == "grid":
        size = sp.grid_size()
        trials = min(trials, size) if trials else size
    trials = trials or 20
    needed = -(-trials // vectorize)  # a worker runs one trial (or one group of --vectorize) at a time
    if workers > needed:  # the rest would only wait, each holding its own copy of the data
        notes.append(f"--workers {workers} for {trials} trials: {needed} worker(s) start")
        workers = needed
    notes += cuda_only_notes(train_cfg, pick_device(train_cfg.device))  # each trial's training says nothing
    if not train_cfg.val_fraction and not cv:
        raise ConfigError("the search scores trials on the validation split, and val_fraction is 0",
                          "Set val_fraction above 0, or use --cv K.")
    settings = Settings(
        model=model, space=str(study_dir / STUDY_SPACE), study=name, study_dir=str(study_dir),
        storage=normalise_url(storage), strategy=strategy, pruner=pruner, trials=int(trials), cv=int(cv or 0),
        seed=seed, timeout=timeout, heartbeat=int(heartbeat), preset=preset, overrides=overrides,
        metric=metric_key(obj.get("metric") or cls.monitor or "loss"), reduce=obj.get("reduce", "best"),
        time_penalty=float(obj.get("time_penalty", 0.0)), latent_penalty=latent_penalty, latent_key=latent_key,
        workers=int(workers), vectorize=int(vectorize), concurrent=concurrent, notes=notes)
    return settings, sp


STUDY_OUTPUTS = ("summary.json", "trials.csv", STUDY_BEST, "history.png", "importance.png")


def _check_study_folder(study_dir: Path) -> None:
    """A search writes into a new folder or a study folder of its own (one holding the space.toml a
    search copied there): never over a run, nor over files of those names that a search did not write."""
    if not study_dir.exists():
        return
    if not study_dir.is_dir():
        raise ConfigError(f"--out {study_dir} exists and is not a folder")
    if (study_dir / "config.json").is_file():
        raise ConfigError(f"--out {study_dir} is a run folder: a study goes into a folder of its own",
                          "Choose another --out (default: studies/NAME).")
    writer = writer_of(study_dir)  # a `zoo cv` (or training) into it now: it writes its files only later
    if writer is not None:
        pid = f" (pid {writer})" if writer else ""
        raise RunError(f"--out {study_dir} is being written by another zoo process{pid}",
                       "A study goes into a folder of its own: wait for it to finish, or choose another --out.")
    held = [n for n in (*CV_RESULTS, CV_FOLDS) if (study_dir / n).exists()]
    if held:  # `zoo cv --overwrite` there would then refuse the folder as a study's
        raise ConfigError(f"--out {study_dir} is a cross-validation's folder ({', '.join(held)}): a study goes into "
                          "a folder of its own", "Choose another --out (default: studies/NAME).")
    clash = [n for n in STUDY_OUTPUTS if (study_dir / n).exists()]
    if clash and not (study_dir / STUDY_SPACE).is_file():
        raise ConfigError(f"--out {study_dir} holds files a search would replace ({', '.join(clash)})",
                          "Choose another --out, or move those files away first.")
