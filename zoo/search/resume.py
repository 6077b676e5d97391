"""Resuming a study: what it was started with, recorded in the study (its `zoo` user attribute), and
the check that a resumed search is the same search. Trials measured on other data, for other epochs,
by another objective or over another space are not comparable: TPE would learn from them and "best"
would rank them together, so such a resume is refused before anything is written.

Recorded (and compared): the model, the data set, the epochs ("searched" where the space searches
them), the objective (metric, direction, reduce, penalties), the cross-validation folds, the fixed keys
(the space's [fixed] and the command line's --set/--dataset/--epochs, as the model resolves them,
and the preset), the space's [params] as written, and the value every other key of the model and its
training resolves to (its default, or the preset's): a default a newer zoo changed would otherwise mix
trials of the old and the new behaviour in one study without a word. Not compared: what does not change a trial's
score (the budget, strategy, pruner, the sampler's --seed, workers, device and other keys of where and how fast a trial
runs), so workers that join a study with their own --device or --trials still can. A resume that does
not give a key the study was started with on the command line (--dataset, --epochs, --set) reuses it, and
so does one that leaves out --cv, --trials or --strategy: the budget and strategy are recorded too (the latest
command's that gave them), so a resume that leaves them out neither raises the budget to the space's (or 20) nor
draws by another strategy. A grid is not resumed over trials another strategy drew (`check_grid_resume`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from zoo.data import canonical_data_dir, canonical_dataset_name
from zoo.data.datasets import folder_of
from zoo.errors import ConfigError, DataNotFoundError, RunError, ZooError
from zoo.runs.config import resolve_config
from zoo.search.data import load_data
from zoo.search.settings import Settings
from zoo.search.space import Space
from zoo.search.study import check_journal, journal_path, open_storage, redact

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

META = "zoo"  # the study's user attribute
# The resolved defaults, in an attribute of their own: they are long, and optuna-dashboard cuts an attribute
# at 1,024 characters, which would leave the `zoo` record unreadable there.
META_DEFAULTS = "zoo_defaults"
# Config keys of where and how fast a trial runs, not of what it measures: they may differ between
# the workers of one study (a GPU machine joins a CPU one) and between a study and its resume.
ENVIRONMENT_KEYS = {"device", "data_dir", "channels_last", "cuda_graph", "compile", "plot_every", "loggers",
                    "tensorboard_dir", "mlflow_uri"}
COMPARED = ("model", "dataset", "epochs", "objective", "cv", "fixed", "params", "defaults")


def _plain(v: Any) -> Any:
    """A value as JSON holds it (tuples as lists), so recorded and current values compare equal."""
    return json.loads(json.dumps(v, default=str))


def fingerprint(settings: Settings, space: Space, data_cache: dict | None = None) -> dict[str, Any]:
    """What the study's trials are measured with (see the module's docstring). A folder data set is also
    recorded by what it holds (`_folder_images`, read into `data_cache` for the trials)."""
    overrides = {k: v for k, v in settings.overrides.items() if k not in ENVIRONMENT_KEYS}
    _, model_cfg, train_cfg = resolve_config(settings.model, preset=settings.preset,
                                             config={**space.fixed, **settings.overrides})
    canonical_data_dir(train_cfg.data_dir)  # one that is no folder refused before any trial, as zoo train does
    searched = set(space.keys())
    fixed: dict[str, Any] = {"preset": settings.preset} if settings.preset else {}
    for key in sorted((set(space.fixed) | set(overrides)) - ENVIRONMENT_KEYS - {"dataset", "epochs"}):
        cfg = model_cfg if hasattr(model_cfg, key) else train_cfg
        fixed[key] = getattr(cfg, key, space.fixed.get(key, overrides.get(key)))
    params = tomllib.loads(space.text).get("params", {}) if space.text else {p.name: p.name for p in space.params}
    resolved = {**dataclasses.asdict(train_cfg), **dataclasses.asdict(model_cfg)}
    defaults = {k: v for k, v in resolved.items()
                if k not in fixed and k not in searched and k not in ENVIRONMENT_KEYS | {"dataset", "epochs"}}
    return _plain({
        "model": settings.model, "space": Path(space.source).name,
        "dataset": canonical_dataset_name(train_cfg.dataset),
        "epochs": "searched" if "epochs" in searched else train_cfg.epochs,
        "metric": settings.metric, "reduce": settings.reduce, "cv": settings.cv,
        "objective": {"metric": settings.metric, "direction": "minimize", "reduce": settings.reduce,
                      "time_penalty": settings.time_penalty, "latent_penalty": settings.latent_penalty,
                      "latent_key": settings.latent_key},
        "fixed": fixed, "params": params, "overrides": overrides, "defaults": defaults,
        **_folder_images(train_cfg, {} if data_cache is None else data_cache),
    })


def _folder_images(train_cfg, data_cache: dict) -> dict[str, Any]:
    """{"images": each split's count and digest} of a folder data set as the trials read it (those of a run's
    config.json, that `zoo train --resume` and `zoo eval` compare); {} for a named set. A folder's path alone
    let a resume on changed images rank trials of other data with the study's."""
    if folder_of(train_cfg.dataset) is None:  # a named set: its name says which images
        return {}
    info = load_data(train_cfg, data_cache).info()
    return {"images": {"sizes": info["sizes"], "digests": info["digests"]}}


def recorded(settings: Settings) -> dict[str, Any] | None:
    """The study's record, read without creating anything: None for a study not begun yet (no journal
    file, or no study of that name in the storage). A study folder that holds a search's results but
    whose study is gone (an emptied or deleted journal), or a damaged journal, is refused: a new study
    would silently replace those results."""
    path = journal_path(settings)
    results = [n for n in ("summary.json", "trials.csv") if (Path(settings.study_dir) / n).is_file()]
    if path is not None and (not path.is_file() or path.stat().st_size == 0):
        if results:
            raise _lost_study(settings, results, f"its journal {path} is {'empty' if path.is_file() else 'missing'}")
        return None
    if path is not None:
        check_journal(path)
    storage, _ = open_storage(settings)
    try:
        study_id = storage.get_study_id_from_name(settings.study)
    except KeyError:
        if results:
            held = sorted(s.study_name for s in storage.get_all_studies())
            why = f"the storage holds no study '{settings.study}'" + \
                (f" (it holds {', '.join(repr(n) for n in held)})" if held else "")
            hint = f"Resume it with --study {held[0]}, or start the new study in another --out." \
                if len(held) == 1 else None
            # where the storage holds other studies, the --study given is the mistake: a usage error (exit 2)
            raise _lost_study(settings, results, why, hint, ConfigError if held else RunError) from None
        return None
    return study_record(storage.get_study_user_attrs(study_id)) or {}


def study_record(user_attrs: dict[str, Any]) -> dict[str, Any] | None:
    """What the study recorded it began with (None for a study not yet recorded), defaults included."""
    meta = user_attrs.get(META)
    if meta is None or user_attrs.get(META_DEFAULTS) is None:  # begun by a zoo that did not record them
        return meta
    return {**meta, "defaults": user_attrs[META_DEFAULTS]}


def _lost_study(settings: Settings, results: list[str], why: str, hint: str | None = None,
                error: type[ZooError] = RunError) -> ZooError:
    # A new study in this folder would replace those results, whatever its name: only another --out helps.
    return error(f"{settings.study_dir} holds a search's results ({', '.join(results)}), but {why}",
                    hint or "Restore it, or start the new study in another --out.")


def reusable(meta: dict[str, Any], settings: Settings, space: Space) -> dict[str, Any]:
    """The command-line keys the study was started with that this search does not give (nor search). A folder
    data set by the absolute path the study recorded: a relative one (a study begun by an older zoo) named
    another folder from another working directory."""
    reused = {k: v for k, v in meta.get("overrides", {}).items()
              if k not in settings.overrides and k not in space.keys()}
    if "dataset" in reused and str(meta.get("dataset", "")).startswith("folder:"):
        reused["dataset"] = meta["dataset"]
    return reused


# The search's own options a resume that leaves them out takes from the study: the record's name, the option's.
REUSED_OPTIONS = {"cv": "cv", "budget": "trials", "strategy": "strategy"}
# Recorded but not compared: how the study runs, as the latest command that gave them said (`record`).
RUNNING = ("budget", "strategy")


def reusable_options(meta: dict[str, Any], options: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """{option: value} of the search's own options (--cv, --trials, --strategy) the study recorded and this search
    leaves out, where the study's value differs from the one this search would take (the space's, or a default).
    A study begun by an older zoo recorded no budget nor strategy: those are the command's, as before."""
    reused = {}
    for key, option in REUSED_OPTIONS.items():
        value = meta.get(key)
        if options.get(option) is None and value is not None and value != getattr(settings, option):
            if key == "cv" and not isinstance(value, int):
                continue
            reused[option] = value
    return reused


def check_grid_resume(settings: Settings, meta: dict[str, Any]) -> None:
    """Refuse to resume as a grid a study that holds trials another strategy drew: Optuna's grid gives trial n its
    n-th point whatever the study holds, so it skipped some points, trained others twice, and said the grid done."""
    if settings.strategy != "grid":
        return
    storage, _ = open_storage(settings)
    study_id = storage.get_study_id_from_name(settings.study)
    other = [t.number for t in storage.get_all_trials(study_id, deepcopy=False) if "grid_id" not in t.system_attrs]
    if not other:
        return
    was = meta.get("strategy") if meta.get("strategy") not in (None, "grid") else None
    raise ConfigError(f"study '{settings.study}' holds {len(other)} trial(s) drawn by the {was or 'tpe or random'} "
                      f"strategy (trial {other[0]}{', ...' if len(other) > 1 else ''}), and a grid resumed over them "
                      "would skip some of its points and train others twice",
                      f"Resume it with --strategy {was or 'tpe (or random)'} (or leave --strategy out), or for the "
                      f"grid {_new_study(settings)}.")


def _show(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else repr(v)


def _differences(old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """What differs between the study's record and this search's; a fixed key one of them does not name
    counts as the value it resolved to there (`--set latent_dim=4` where 4 is the default changes nothing).
    A key only one side's defaults know (a key a newer zoo added) is not a difference."""
    found = []
    resolved_old = {**defaults, **old.get("defaults", {})}
    resolved_new = {**defaults, **new.get("defaults", {})}
    for key in COMPARED:
        if key not in old or old[key] == new[key]:  # a study begun by an older zoo lacks some keys
            continue
        a, b = old[key], new[key]
        if key == "model":  # the first thing to say, on its own
            return [f"is a search over '{a}', not '{b}'"]
        if isinstance(a, dict) and isinstance(b, dict):
            parts = []
            for k in sorted(set(a) | set(b)):
                if key == "defaults":
                    if k not in a or k not in b or k in old.get("fixed", {}) or k in new.get("fixed", {}):
                        continue
                    if a[k] != b[k]:
                        parts.append(f"{k}: {_show(a[k])} in the study, {_show(b[k])} now")
                    continue
                fa, fb = (resolved_old.get(k), resolved_new.get(k)) if key == "fixed" else (None, None)
                if a.get(k, fa) != b.get(k, fb):
                    parts.append(f"{k}: {_show(a[k]) if k in a else 'none'} in the study, "
                                 f"{_show(b[k]) if k in b else 'none'} now")
            if parts:
                label = "defaults, changed since the study began" if key == "defaults" else key
                found.append(f"{label} ({'; '.join(parts)})")
        else:
            found.append(f"{key} ({_show(a)} in the study, {_show(b)} now)")
    return found


def _new_study(settings: Settings) -> str:
    """How to start another study instead: in a --storage its name names it (another --out still finds it
    there); else its own name gives it its own folder (studies/NAME) only when --out did not name one; a folder
    holds one study's results."""
    if settings.storage is not None:
        return "start a new study: --study NEW (or another --storage)"
    if Path(settings.study_dir) == Path("studies") / settings.study:
        return "start a new study: --study NEW (or another --out)"
    return "start a new study in another --out"


def check_same_study(meta: dict[str, Any], current: dict[str, Any], settings: Settings) -> None:
    """Refuse a resume whose trials would not be comparable with the study's (one message, every
    difference named)."""
    _, model_cfg, train_cfg = resolve_config(settings.model)
    defaults = _plain({**dataclasses.asdict(train_cfg), **dataclasses.asdict(model_cfg)})
    if isinstance(meta.get("dataset"), str):  # as recorded by an older zoo ("Digits", a relative folder): by its name
        meta = {**meta, "dataset": canonical_dataset_name(meta["dataset"])}  # as a run records it, as `current` has it
    diffs = _differences(meta, current, defaults)
    where = f"the study folder {settings.study_dir}" if settings.storage is None else redact(settings.storage)
    if not diffs:
        changed = _images_changed(meta.get("images"), current.get("images"))
        if changed:  # as `zoo train --resume` and `zoo cv` refuse other images under the same name
            raise DataNotFoundError(f"study '{settings.study}' (in {where}) was begun on other images: "
                                    f"{current['dataset']} holds {changed}, and trials measured on them would not "
                                    "compare with the study's",
                                    "Resume it on the images it began with (restore the folder's files), or "
                                    f"{_new_study(settings)}.")
        return
    if diffs[0].startswith("is a search over"):
        raise ConfigError(f"study '{settings.study}' {diffs[0]}",
                          f"Resume it as a search over {meta.get('model')!r}, or {_new_study(settings)}.")
    raise ConfigError(f"study '{settings.study}' (in {where}) was begun with other settings, and its trials would "
                      f"not compare with this search's: {', '.join(diffs)}",
                      "Resume it as it began (leave out --space, --dataset, --epochs, --cv and --set to reuse the "
                      "study's"
                      + ("; give a changed default the study's value with --set KEY=VALUE"
                         if any(d.startswith("defaults") for d in diffs) else "")
                      + f"), or {_new_study(settings)}.")


def _images_changed(old: Any, new: Any) -> str:
    """How a folder's images differ from those the study recorded (`_folder_images`), in words; "" where they
    agree or either side recorded none (a study begun by an older zoo)."""
    if not isinstance(old, dict) or not isinstance(new, dict) or old == new:
        return ""
    was, now = old.get("sizes") or {}, new.get("sizes") or {}
    counts = [f"{now.get(s)} {s} images where it had {was.get(s)}" for s in ("train", "val", "test")
              if was.get(s) != now.get(s)]
    return ", ".join(counts) or "other images than it had (as many)"


def record(study, meta: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Record the settings a study is begun with (and, in a study begun by an older zoo, those it lacks); its budget
    and strategy as this search runs them (RUNNING: reused when left out, else the command's)."""
    merged = {**current, **(meta or {}), **{k: current[k] for k in RUNNING if k in current}}
    if merged != meta:
        study.set_user_attr(META, {k: v for k, v in merged.items() if k != "defaults"})
        study.set_user_attr(META_DEFAULTS, merged["defaults"])
