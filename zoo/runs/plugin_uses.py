"""config.json's "uses": the plugin classes a run is built with beside its model's own class (its training noise),
each with the package it came from, so that a run opened where that package is missing says which to install,
not that its config.json was edited."""

from __future__ import annotations

from typing import Any

from zoo.errors import RunError
from zoo.registry import load_registry
from zoo.runs.plugin_calls import KINDS, plugin_entry


def uses_record(model, plugins=()) -> list[dict[str, str]]:
    """config.json's "uses": the plugin classes of other packages than zoo a run is built or trained with beside its
    model's own class (its training noise; `plugins`: its training callbacks and loggers), each with its kind, name,
    package and version, so that the run opened or resumed where that package is missing says which to install
    (missing_use), not that its config.json was edited or names an unknown callback."""
    record = []
    for plugin in (model.training_corruption(), *plugins):
        found = plugin_entry(plugin) if plugin is not None else None
        if found is not None and found[1].package != "zoo":  # zoo's own come with it
            kind, entry = found
            record.append({"kind": kind, "name": entry.name, "package": entry.package, "version": entry.version})
    return record


def missing_use(run: dict[str, Any], run_dir, kinds_needed=("noise model",)) -> RunError | None:
    """The error to raise for a run (its config.json) that "uses" a plugin class of `kinds_needed` no installed
    package provides now (to load a run: its noise; to resume it, its callbacks and loggers too): which package to
    install, or to repair where it is installed but failed to load; None where all are."""
    registry = load_registry()
    kinds = {kind: getattr(registry, attr) for attr, kind in KINDS}
    uses = run.get("uses") if isinstance(run.get("uses"), list) else []
    for use in uses:
        kind, name = (use.get("kind"), use.get("name")) if isinstance(use, dict) else (None, None)
        if kind not in kinds_needed or not isinstance(name, str) or kind not in kinds or name in kinds[kind]:
            continue  # an entry this zoo cannot read is no reason to refuse the run
        return package_missing(f"{run_dir} uses {kind} '{name}'", str(use.get("package", "?")))
    return None


def package_missing(what: str, package: str) -> RunError:
    """`what` (a run's model, or a class it uses) comes from `package`, which is not installed, or is and failed to
    load: installing it again is no answer then."""
    failed = [f for f in load_registry().failures if f.package == package]
    if failed:
        return RunError(f"{what} of package {package}, which is installed but failed to load: {failed[0].error}",
                        "Reinstall or fix that package (`zoo list` says why); the other models still work.")
    return RunError(f"{what}, which is not installed",
                    f"Install the package that provides it (pip install {package}); `zoo list` shows what is.")
