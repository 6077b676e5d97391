"""What a trained run is, without loading its weights: `zoo info RUN` for a run folder, a catalogued
name or a hub location. Read from config.json, metrics.jsonl and eval.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.console import to_stderr, with_article
from zoo.runs import checkpoint as ckpt
from zoo.runs import eval_images
from zoo.runs import config as cfgmod
from zoo import registry
from zoo.hub import is_hub_source, is_managed
from zoo.runs.loading import other_version_hint, read_run, resolve
from zoo.runs.lock import writer_of
from zoo.runs.training_state import recorded_trainer
from zoo.errors import ConfigError, UnknownModelError, ZooError
from zoo.runs.metrics_log import is_metric
from zoo.runs.modelcard import current_quality, kept_training, quality_figures
from zoo.runs.plugin_uses import missing_use
from zoo.runs.published import number


def run_info(source: str | Path) -> dict[str, Any]:
    """The run's model and plugin, data, the config values that differ from the model's defaults, how
    its training went (epochs, best epoch and value, how it stopped), its test metrics if measured, its
    files, and a line that loads it."""
    run_dir = resolve(source)
    run = read_run(run_dir)
    data = run.get("data", {})
    info: dict[str, Any] = {
        "source": str(source), "folder": str(run_dir), "model": run["model"],
        "plugin": run.get("plugin", {}), "zoo_version": run.get("zoo_version"),
        "dataset": data.get("name", run["train"].get("dataset")), "shape": data.get("shape"),
        "classes": data.get("classes"), "sizes": data.get("sizes"),
        "config": run["config"], "changed": _changed_from_defaults(run), "training": _training(run_dir, run),
        "devices": [d for d in run["devices"] if isinstance(d, str)] if isinstance(run.get("devices"), list) else None,
        "preset": run["preset"] if isinstance(run.get("preset"), str) else None,  # the one it was trained from
        "files": {p.name: p.stat().st_size for p in sorted(run_dir.iterdir())
                  if p.is_file() and not p.name.startswith(".")},
        # A FIFO, socket or device where a file belongs: listed, since no command will read it.
        "not_regular": [p.name for p in sorted(run_dir.iterdir())
                        if p.exists() and not p.is_file() and not p.is_dir() and not p.name.startswith(".")],
        "installed": run["model"] in registry.list_models(),
    }
    # The files a load reads, where one is absent or no regular file: no line that loads it is offered then.
    info["missing"] = [n for n in (ckpt.CONFIG, ckpt.WEIGHTS) if n not in info["files"]]
    # a config.json that every command which builds the model refuses (a key edited in): said, and no load line
    info["unbuildable"] = unbuildable(run, run_dir) if info["installed"] else None
    if info["unbuildable"]:
        to_stderr(f"note: {info['unbuildable']}")
    info["load"] = None if info["missing"] or info["unbuildable"] else f"zoo.load({json.dumps(str(source))})"
    package = info["plugin"].get("package") if isinstance(info["plugin"], dict) else None
    failed = [f.error for f in registry.load_registry().failures if package and f.package == package]
    # installed but broken: installing it again is no answer (as loading it says)
    info["plugin_failure"] = failed[0] if failed and not info["installed"] else None
    # Where its weights came from, as its plugin says (a fine-tuned head: is its encoder's source still there?), for
    # a run folder of this machine: a pulled or bundled copy's paths are its publisher's, not this machine's.
    own = not is_hub_source(str(source)) and Path(source).absolute() == run_dir.absolute() and not is_managed(run_dir)
    info["provenance"] = registry.get_model_class(run["model"]).provenance(run["config"]) \
        if info["installed"] and own else []
    evaluated, note = eval_images.current_eval(run_dir)  # None unless it measured these weights
    if note:
        to_stderr(f"note: {note}")
    if evaluated is not None:
        pixels = evaluated.get("pixels")  # binarised or grey: a Bernoulli -log p(x) means nothing without it
        other = evaluated.get("other_images")  # another --data-dir's files: not the run's own test figures
        cls = registry.get_model_class(run["model"]) if info["installed"] else None
        # a conditional model's likelihood figures are of p(x | y), as its card and zoo compare say
        given = cls is not None and cls.can("sample_class") and cls.has_test_metrics()
        info["test_metrics"] = {"split": evaluated.get("split"), "images": evaluated.get("images"),
                                **({"pixels": pixels} if isinstance(pixels, str) else {}),
                                **({"given": "p(x | y)"} if given else {}),
                                **({"other_images": other} if isinstance(other, str) else {}), **evaluated["metrics"]}
        errors = evaluated.get("standard_errors") if isinstance(evaluated.get("standard_errors"), dict) else {}
        info["test_standard_errors"] = {k: v for k, v in errors.items() if k in evaluated["metrics"] and number(v)}
    quality = current_quality(run_dir)  # zoo eval --fid's figures of these weights' samples
    if quality_figures(quality):
        other = quality.get("other_images")
        info["sample_quality"] = {"images": quality.get("images"), "feature_network": quality.get("feature_network"),
                                  **({"other_images": other} if isinstance(other, str) else {}),
                                  **quality_figures(quality)}
    return info


def unbuildable(run: dict[str, Any], run_dir: Path) -> str | None:
    """Why zoo would not build the model config.json describes (as loading it says), or None."""
    try:
        cfgmod.build(registry.get_model_class(run["model"]).Config, dict(run["config"]), where=ckpt.CONFIG)
    except ConfigError as e:
        missing = missing_use(run, run_dir)  # another package's noise it was trained with: no edited file either
        if missing is not None:
            return f"{missing.message}: zoo eval, zoo.load and zoo push refuse it; {missing.hint}"
        # a run of a newer zoo, or of another version of its plugin, is no edited file: which version loads it
        other = other_version_hint(run, None, registry.load_registry().models.get(run["model"]))
        return (f"{run_dir / ckpt.CONFIG} does not describe {with_article(run['model'])} model that zoo builds "
                f"({e.message}): zoo eval, zoo.load and zoo push refuse it; "
                + (other or "restore the run's own config.json"))
    except ZooError:  # a plugin that fails to load: said by the lines below
        return None
    return None


def _changed_from_defaults(run: dict[str, Any]) -> dict[str, Any] | None:
    """The config keys whose value is not the model's (or training's) default, as they were trained;
    None when the model's plugin is not installed here (its defaults are unknown)."""
    try:
        cls = registry.get_model_class(run["model"])
    except UnknownModelError:
        return None
    built = {f.name: cfgmod.default_of(f) for f in cfgmod.fields_of(cls.Config)}
    built.update({f.name: cfgmod.default_of(f) for f in cfgmod.fields_of(cfgmod.TrainConfig)})
    # What a new training takes (a GAN's ema 0.999), against the values this run has: its config.json's, and a
    # key an older zoo did not write at what it is built with (that GAN's ema 0, as saved), so it is shown.
    defaults = {**built, **getattr(cls, "train_defaults", {})}
    values = {**built, **run["config"], **run["train"]}
    return {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}


def _training(run_dir: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Epochs done of those configured, the best epoch and its monitored values, from metrics.jsonl."""
    path = run_dir / ckpt.METRICS
    if not path.is_file():  # published weights carry no training log
        return {"epochs": None, "of": run["train"].get("epochs")}
    rows, dropped = ckpt.read_metrics(path)
    row, best, epochs, note = kept_training(run_dir, rows, dropped)
    out: dict[str, Any] = {"epochs": epochs, "of": run["train"].get("epochs")}
    ended = how_ended(run_dir, rows, out["of"])
    if ended:
        out["ended"] = ended
    if note:
        out["note"] = note
        to_stderr(f"note: {note}")
    if best:
        try:  # a model that monitors no validation figure keeps its last epoch: none is its best
            cls = registry.get_model_class(run["model"])
            out["kept"] = "best" if cls.monitor is not None else "last"
        except ZooError:  # not installed here: as its log marks it
            out["kept"] = "best"
        out["best_epoch"] = best
        # the kept epoch's losses, and a classifier's accuracy (its figure that says most)
        out["best"] = {k: v for k, v in (row or {}).items()
                       if is_metric(k) and number(v) and (k.endswith("loss") or k.endswith("accuracy"))}
    if rows and sum(r.get("seconds", 0) for r in rows):
        out["seconds"] = round(sum(r.get("seconds", 0) for r in rows), 1)
    return out


def how_ended(run_dir: Path, rows: list[dict[str, Any]], of: Any) -> str | None:
    """How the training ended: "training" (a process writes it now), "diverged", "early_stopping",
    "completed" (all its epochs) or "interrupted" (a resume continues it); None where its checkpoint
    cannot tell (weights copied without it)."""
    if writer_of(run_dir) is not None:
        return "training"
    if rows and rows[-1].get("diverged"):
        return "diverged"
    trainer = recorded_trainer(run_dir)
    if trainer is None:
        return None
    if trainer.get("stopped") == "early_stopping":
        return "early_stopping"
    return "completed" if isinstance(of, int) and trainer["epoch"] >= of else "interrupted"
