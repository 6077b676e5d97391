"""Plugin discovery (pluggy + entry points), and the catalogue of presets and pretrained weights: zoo's
registry.toml, the plugins' catalogue files and the user's ($ZOO_CATALOG), read by zoo.catalog."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib.metadata as md
import inspect
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from zoo import catalog, environment, hooks
from zoo.errors import ConfigError, UnknownModelError

ENTRY_POINT_GROUP = "zoo.models"
REGISTRY_FILE = Path(__file__).with_name("registry.toml")


@dataclass
class PluginEntry:
    """One plugin class as zoo knows it (an architecture, a noise model, a latent sampler, a training
    callback, a logger): the class and where it came from."""

    name: str
    cls: type
    package: str
    version: str

    @property
    def description(self) -> str:
        return getattr(self.cls, "description", "")


# Modules that moved when zoo/ was grouped into folders (0.1 -> 0.2), for the message a plugin that
# still imports an old path gets; the base classes a plugin needs are importable from `zoo` itself.
MOVED_MODULES = {
    "zoo.engine": "zoo.training.engine", "zoo.epochs": "zoo.training.epochs", "zoo.graphstep": "zoo.training.graphstep",
    "zoo.multitrial": "zoo.training.multitrial", "zoo.callbacks": "zoo.training.callbacks",
    "zoo.regularize": "zoo.training.regularize", "zoo.optim": "zoo.training.optim",
    "zoo.batching": "zoo.training.batching", "zoo.runs": "zoo.runs.loading", "zoo.runfiles": "zoo.runs.files",
    "zoo.runlock": "zoo.runs.lock", "zoo.runinfo": "zoo.runs.info", "zoo.checkpoint": "zoo.runs.checkpoint",
    "zoo.modelcard": "zoo.runs.modelcard", "zoo.config": "zoo.runs.config", "zoo.analysis": "zoo.analysis.latent",
    "zoo.samplers": "zoo.analysis.latent_samplers", "zoo.metrics": "zoo.analysis.metrics",
    "zoo.quality": "zoo.analysis.quality", "zoo.plots": "zoo.analysis.plots", "zoo.cv": "zoo.search.cv",
    "zoo.noise": "zoo.data.noise", "zoo.space": "zoo.search.space",
}
PUBLIC_BASES = "from zoo import ZooModel, Callback, Logger, NoiseModel, LatentSampler, param, hookimpl"


def _load_error(e: Exception) -> str:
    """What a plugin's failure to load says: the error, and for an import of a module that moved, where
    it is now."""
    text = f"{type(e).__name__}: {e}"
    missing = getattr(e, "name", None) if isinstance(e, ImportError) else None
    if missing in MOVED_MODULES:
        text += (f". zoo moved {missing} to {MOVED_MODULES[missing]}: import from there, or the base classes "
                 f"from zoo itself ({PUBLIC_BASES})")
    return text


@dataclass
class PluginFailure:
    """A plugin zoo could not load (`partial` False), or a part of one it refused while keeping the classes
    the plugin's other parts provide (`partial` True)."""

    entry_point: str
    package: str
    error: str
    partial: bool = False


@dataclass
class Registry:
    models: dict[str, PluginEntry] = field(default_factory=dict)
    noise_models: dict[str, PluginEntry] = field(default_factory=dict)
    samplers: dict[str, PluginEntry] = field(default_factory=dict)
    callbacks: dict[str, PluginEntry] = field(default_factory=dict)
    loggers: dict[str, PluginEntry] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    catalogs: list[catalog.CatalogFile] = field(default_factory=list)  # the plugins' catalogue files, as checked
    manager: pluggy.PluginManager | None = None


_registry: Registry | None = None


def _plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hooks.PROJECT)
    pm.add_hookspecs(hooks)
    return pm


def load_registry(refresh: bool = False) -> Registry:
    """Load every plugin in the entry-point group; a plugin that fails, or provides nothing, is recorded,
    not fatal."""
    global _registry
    if _registry is not None and not refresh:
        return _registry
    reg = Registry(manager=_plugin_manager())
    origin, loaded = {}, {}
    points = sorted(md.entry_points(group=ENTRY_POINT_GROUP),  # zoo's own first: a newcomer cannot take a name
                    key=lambda ep: getattr(getattr(ep, "dist", None), "name", "") != "zoo")
    for ep in points:
        dist = getattr(ep, "dist", None)
        package = dist.name if dist is not None else "?"
        version = dist.version if dist is not None else "0"
        plugin_name = f"{package}:{ep.name}"
        if reg.manager.has_plugin(plugin_name):  # the same distribution visible twice on sys.path
            continue
        try:
            plugin = ep.load()
            reg.manager.register(plugin, name=plugin_name)
        except Exception as e:  # a broken plugin must not take the others down
            reg.failures.append(PluginFailure(ep.name, package, _load_error(e)))
            continue
        origin[plugin_name] = (ep.name, package, version)
        loaded[plugin_name] = plugin
    provided: Counter = Counter()
    _collect(reg, reg.manager.hook.zoo_models, "model", reg.models, origin, provided)
    _collect(reg, reg.manager.hook.zoo_noise_models, "noise model", reg.noise_models, origin, provided)
    _collect(reg, reg.manager.hook.zoo_samplers, "sampler", reg.samplers, origin, provided)
    _collect(reg, reg.manager.hook.zoo_callbacks, "callback", reg.callbacks, origin, provided)
    _collect(reg, reg.manager.hook.zoo_loggers, "logger", reg.loggers, origin, provided)
    _collect_catalogs(reg, origin, provided)
    _report_empty(reg, loaded, origin, provided)
    kept = {origin[p][:2] for p, n in provided.items() if n and p in origin}
    for f in reg.failures:
        f.partial = (f.entry_point, f.package) in kept
    _registry = reg
    return reg


def _collect(reg: Registry, hook, kind: str, into: dict[str, PluginEntry], origin: dict, provided: Counter) -> None:
    """Every class a hook's implementations return, by name, counted per plugin in `provided` when kept; a nameless
    class or a name already taken (zoo's own plugins load first) is recorded as that plugin's failure."""
    for impl in hook.get_hookimpls():
        ep_name, package, version = origin.get(impl.plugin_name, (impl.plugin_name, "?", "0"))
        classes = _call(impl, reg, ep_name, package)
        for cls in classes:
            name = getattr(cls, "name", None)
            unfit = _unfit(cls, kind)
            if unfit:
                shown = name if isinstance(name, str) and name else _shown(cls)
                reg.failures.append(PluginFailure(ep_name, package, f"{kind} {shown}: {unfit}"))
            elif not name:
                reg.failures.append(PluginFailure(ep_name, package, f"{cls!r} has no name"))
            elif not isinstance(name, str) or not NAME.fullmatch(name):  # a name goes on command lines and in folders
                reg.failures.append(PluginFailure(ep_name, package, f"{kind} name {name!r:.40} is not one word of "
                                                                    "letters, digits, '.', '_' and '-'"))
            elif name in into:
                reg.failures.append(PluginFailure(
                    ep_name, package, f"{kind} '{name}' is already provided by {into[name].package}"))
            else:
                into[name] = PluginEntry(name, cls, package, version)
                provided[impl.plugin_name] += 1


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a plugin class's name: one word, as `zoo train NAME` takes it

# The base class each kind of plugin class must derive from, by module and name: the registry sits below
# them all (they read it), so it knows them by name rather than by importing them.
BASES = {"model": ("zoo.model", "ZooModel"), "noise model": ("zoo.data.noise", "NoiseModel"),
         "sampler": ("zoo.analysis.latent_samplers", "LatentSampler"),
         "callback": ("zoo.training.callbacks", "Callback"), "logger": ("zoo.tracking.logger", "Logger")}


def _unfit(cls: Any, kind: str) -> str | None:
    """What keeps a class a hook returned from working as a plugin of `kind` (None: nothing): not a class,
    not of the kind's base class; for a model, no dataclass `Config` with a default for every field, or
    neither `loss` nor its own training and validation steps (docs/plugins.md, section 2)."""
    module, base_name = BASES[kind]
    if not inspect.isclass(cls):
        return f"the hook returned {type(cls).__name__} {_shown(cls)}, not a class"
    base = next((c for c in cls.__mro__ if c.__module__ == module and c.__name__ == base_name), None)
    if base is None:
        return f"{cls.__name__} is not a subclass of zoo.{base_name}"
    if kind != "model":
        return None
    config = getattr(cls, "Config", None)
    if not (inspect.isclass(config) and dataclasses.is_dataclass(config)):
        return f"{cls.__name__}.Config is not a dataclass (its hyperparameters, each with a default)"
    missing = [f.name for f in dataclasses.fields(config)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        return f"{cls.__name__}.Config has fields without a default: {', '.join(missing)}"
    own_steps = cls.training_step is not base.training_step and cls.validation_step is not base.validation_step
    if cls.loss is base.loss and not own_steps:
        return f"{cls.__name__} has no loss (nor its own training_step and validation_step)"
    return None


def _shown(obj: Any) -> str:
    """A plugin's object as a message shows it: its repr (60 characters at most), or its type's name where
    that repr fails."""
    try:
        return f"{obj!r:.60}"
    except Exception:  # noqa: BLE001 - a plugin's __repr__ may raise anything
        return f"<a {type(obj).__name__}>"


def _collect_catalogs(reg: Registry, origin: dict, provided: Counter) -> None:
    """The catalogue files the plugins ship, each checked alone and beside zoo's and the ones kept before it (a
    file that fails is that plugin's failure, not everyone's); then a plugin model named like a catalogued
    preset or weights is refused, as `zoo info NAME` and zoo.load(NAME) would mean different things."""
    kept = [catalog.read(REGISTRY_FILE, catalog.BUNDLED)]
    for impl in reg.manager.hook.zoo_catalogs.get_hookimpls():
        ep_name, package, _ = origin.get(impl.plugin_name, (impl.plugin_name, "?", "0"))
        for path in _call(impl, reg, ep_name, package):
            try:
                if not isinstance(path, (str, Path)) or not Path(path).is_absolute():
                    raise ConfigError(f"zoo_catalogs returned {path!r:.60}, not the absolute path of a catalogue file")
                file = catalog.read(Path(path), f"package {package}")
                catalog.merge([*kept, file], set(reg.models))
            except ConfigError as e:
                reg.failures.append(PluginFailure(ep_name, package, f"catalogue: {e.message}"))
                continue
            kept.append(file)
            provided[impl.plugin_name] += 1
    reg.catalogs = kept[1:]
    merged = catalog.merge(kept, set())
    for name, entry in list(reg.models.items()):
        if entry.package != "zoo" and (name in merged.presets or name in merged.weights):
            what = "a preset" if name in merged.presets else "pretrained weights"
            del reg.models[name]
            reg.failures.append(PluginFailure(name, entry.package, f"model '{name}' is named like {what} in the "
                                                                   "catalogue: the plugin should rename it"))


def _call(impl, reg: Registry, ep_name: str, package: str) -> list:
    """Call one plugin's hook implementation; a failure is recorded against the plugin, not raised."""
    try:
        returned = impl.function()
        if isinstance(returned, (str, bytes, Path)):  # one path for a list of them: not taken letter by letter
            raise TypeError(f"the hook returned {returned!r:.60}, not a list")
        return list(returned)
    except Exception as e:
        reg.failures.append(PluginFailure(ep_name, package, f"{type(e).__name__}: {e}"))
        return []


def _report_empty(reg: Registry, loaded: dict, origin: dict, provided: Counter) -> None:
    """An entry point that loaded but provides no class is recorded, with where its module came from;
    else the plugin would vanish without a word."""
    failed = {(f.entry_point, f.package) for f in reg.failures}
    for plugin_name, plugin in loaded.items():
        ep_name, package, _ = origin[plugin_name]
        if not provided[plugin_name] and (ep_name, package) not in failed:
            reg.failures.append(PluginFailure(ep_name, package, f"provides nothing: {_why_empty(reg, plugin)}"))


def _why_empty(reg: Registry, plugin) -> str:
    """The module an entry point loaded and its file. A namespace package (a folder without __init__.py:
    what an empty folder named like the package in the working directory gives) has no file, so its
    folder is named: found first on the import path, it hides the installed package."""
    module = plugin if inspect.ismodule(plugin) else inspect.getmodule(plugin)
    file = getattr(module, "__file__", None)
    if module is not None and not file:
        folders = ", ".join(getattr(module, "__path__", None) or [])
        return (f"{module.__name__} is a namespace package with no file (folder {folders}); a folder of that name "
                "found first on the import path, often in the working directory, hides the installed package")
    where = f"module {module.__name__} ({file})" if module is not None else repr(plugin)
    if reg.manager.get_hookcallers(plugin):
        return f"the hooks of {where} returned no classes"
    return (f"{where} has no @zoo.hookimpl function "
            "(zoo_models, zoo_noise_models, zoo_samplers, zoo_callbacks, zoo_loggers or zoo_catalogs)")


def list_models() -> list[str]:
    """Names of every installed architecture."""
    return sorted(load_registry().models)


def get_entry(name: str) -> PluginEntry:
    if not isinstance(name, str):
        raise UnknownModelError(f"a model is named by text, such as 'vae', not {name!r:.60}",
                                "`zoo list` shows the installed models.")
    reg = load_registry()
    if name in reg.models:
        return reg.models[name]
    failed = [f for f in reg.failures if f.entry_point == name]
    if failed:
        f = failed[0]
        what = "was refused" if f.partial else "failed to load"
        raise UnknownModelError(f"model '{name}' is installed (package {f.package}) but {what}: {f.error}",
                                "Reinstall or fix that package; the other models still work.")
    preset, catalogued = presets().get(name), weights().get(name)
    if preset is not None or catalogued is not None:  # a preset's or weights' name where a model's goes
        said = [f"a preset of model '{preset.get('model')}': zoo train --preset {name} (preset='{name}')"] \
            if preset is not None else []
        said += [f"catalogued weights of model '{catalogued.get('model')}': zoo.load('{name}'), or `zoo eval "
                 f"{name}`"] if catalogued is not None else []
        raise UnknownModelError(f"'{name}' is not a model", f"It names {' and '.join(said)}.")
    kinds = {"a latent sampler": (reg.samplers, f"zoo generate RUN --sampler {name}"),
             "a noise model": (reg.noise_models, f"zoo train dae --set noise={name}:VALUE"),
             "a logger": (reg.loggers, f"zoo train MODEL --log {name}")}
    found = [(kind, use) for kind, (names, use) in kinds.items() if name in names]
    if found:  # `zoo search gmm`: said as what it is, and how it is used
        raise UnknownModelError(f"'{name}' is not a model but {' and '.join(k for k, _ in found)}",
                                f"It is used as: {', or '.join(u for _, u in found)}.")
    close = difflib.get_close_matches(name, list(reg.models), n=3, cutoff=0.5)
    hint = (f"Did you mean: {', '.join(close)}?" if close else "") + " `zoo list` shows the installed models."
    if reg.failures:
        plugins = ", ".join(sorted({f"'{f.entry_point}' ({f.package})" for f in reg.failures}))
        hint += f" These plugins failed to load, or zoo refused a part of them, and `zoo list` says why: {plugins}."
    raise UnknownModelError(f"unknown model '{name}'", hint.strip())


def get_model_class(name: str) -> type:
    return get_entry(name).cls


# ---------------------------------------------------------------- the catalogue: presets

def read_catalog() -> catalog.Catalog:
    """zoo's registry.toml, the plugins' catalogue files and the user's ($ZOO_CATALOG), checked and merged."""
    reg = load_registry()
    files = [catalog.read(REGISTRY_FILE, catalog.BUNDLED), *reg.catalogs]
    files += [catalog.read(path, catalog.USER) for path in environment.catalog_paths()]
    return catalog.merge(files, set(reg.models))


def catalog_file(kind: str, name: str) -> catalog.CatalogFile | None:
    """The file that catalogues preset (`kind` "presets") or weights ("weights") `name`; None: not catalogued."""
    return read_catalog().file_of(kind, name)


def presets(model: str | None = None) -> dict[str, dict[str, Any]]:
    """Named configurations from the catalogue, optionally only those of one model (copies: a caller's change
    stays its own)."""
    return {k: copy.deepcopy(v) for k, v in read_catalog().presets.items() if model is None or v.get("model") == model}


def get_preset(name: str, model: str | None = None) -> dict[str, Any]:
    available = presets()
    if name not in available:
        close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.5)
        hint = f"Did you mean: {', '.join(close)}?" if close else "`zoo info MODEL` lists its presets."
        if "/" in name or name.endswith(".toml"):  # a file where a catalogued name goes
            hint = ("--preset takes a catalogued name; a file of config keys is given with --config FILE (or "
                    "catalogued through $ZOO_CATALOG: the README's \"Your own presets and weights\").")
        raise ConfigError(f"unknown preset '{name}'", hint)
    preset = available[name]
    if model is not None and preset.get("model") != model:
        owner = preset.get("model")
        raise ConfigError(f"preset '{name}' is for model '{owner}', not '{model}'",
                          f"Give it with model {owner} (zoo train {owner} --preset {name}), or one of {model}'s "
                          f"presets (zoo info {model} lists them).")
    return preset


# ---------------------------------------------------------------- the catalogue: pretrained weights

def weights(model: str | None = None) -> dict[str, dict[str, Any]]:
    """Catalogued pretrained weights, optionally only those of one model (copies, as `presets` gives)."""
    return {k: copy.deepcopy(v) for k, v in read_catalog().weights.items() if model is None or v.get("model") == model}


def default_weights_name(model: str) -> str | None:
    """The catalogued weights marked `default = true` for a model name, so `zoo generate gan` works."""
    for name, entry in weights(model).items():
        if entry.get("default"):
            return name
    return None


def weights_folder(name: str) -> Path | None:
    """The folder of catalogued weights `name` (its `path`, from the folder of the file that catalogues it:
    the package's for zoo's own), or None if the name is not catalogued or only on a hub."""
    found = read_catalog()
    entry = found.weights.get(name)
    if entry is None or "path" not in entry:
        return None
    file = found.file_of("weights", name)
    return (Path(__file__).parent if file.bundled else file.path.parent) / Path(entry["path"]).expanduser()


def feature_network_name(dataset: str) -> str:
    """The catalogued name of the classifier whose features measure a data set's FID (`zoo eval --fid`)."""
    return f"features-{dataset}"


def bundled_name(folder: Path) -> str | None:
    """The catalogued name whose folder (`path`) `folder` is (None for any other folder)."""
    where = Path(folder).resolve()
    return next((name for name in weights() if weights_folder(name) is not None
                 and weights_folder(name).resolve() == where), None)


def catalogued_metrics(name: str | None) -> dict[str, float]:
    """The figures the catalogue quotes for weights `name` (finite numbers: zoo.catalog checks them)."""
    return weights().get(name, {}).get("metrics", {}) if name else {}
