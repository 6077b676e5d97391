"""Plugin discovery (pluggy + entry points), and the catalogue of presets and pretrained weights: zoo's
registry.toml, the plugins' catalogue files and the user's ($ZOO_CATALOG), read by zoo.catalog."""

from __future__ import annotations

import copy
import difflib
import importlib.metadata as md
import inspect
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from zoo import catalog, environment, hooks, plugin_values
from zoo.console import to_stderr
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
            reg.failures.append(PluginFailure(ep.name, package, plugin_values.load_error(e)))
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
    _unknown_hooks(reg, origin)
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
            unfit = plugin_values.unfit(cls, kind)
            if unfit:
                shown = name if isinstance(name, str) and name else plugin_values.shown(cls)
                reg.failures.append(PluginFailure(ep_name, package, f"{kind} {shown}: {unfit}"))
            elif not name:
                reg.failures.append(PluginFailure(ep_name, package, f"{cls!r} has no name"))
            elif not isinstance(name, str) or not NAME.fullmatch(name):  # a name goes on command lines and in folders
                reg.failures.append(PluginFailure(ep_name, package, f"{kind} name {name!r:.40} is not one word of "
                                                                    "letters, digits, '.', '_' and '-'"))
            elif kind != "model" and name != name.lower():  # its option (--sampler, --log, ...) is read lower-cased
                reg.failures.append(PluginFailure(ep_name, package, f"{kind} name '{name}' has capitals, which zoo's "
                                                                    f"options never match: name it '{name.lower()}'"))
            elif name in into:
                reg.failures.append(PluginFailure(
                    ep_name, package, f"{kind} '{name}' is already provided by {into[name].package}"))
            else:
                into[name] = PluginEntry(name, cls, package, version)
                provided[impl.plugin_name] += 1


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a plugin class's name: one word, as `zoo train NAME` takes it


def _collect_catalogs(reg: Registry, origin: dict, provided: Counter) -> None:
    """The catalogue files the plugins ship, each checked alone and beside zoo's and the ones kept before it (a
    file that fails is that plugin's failure, not everyone's); then a plugin model named like a catalogued
    preset or weights is refused, as `zoo info NAME` and zoo.load(NAME) would mean different things."""
    kept = [catalog.read(REGISTRY_FILE, catalog.BUNDLED)]
    for impl in reg.manager.hook.zoo_catalogs.get_hookimpls():
        ep_name, package, _ = origin.get(impl.plugin_name, (impl.plugin_name, "?", "0"))
        # An entry named like a model of zoo's or of its own package refuses this file; one named like another
        # package's model refuses that model, below (docs/plugins.md): never one package's whole catalogue.
        owned = {name for name, e in reg.models.items() if e.package in ("zoo", package)}
        for path in _call(impl, reg, ep_name, package):
            try:
                if not isinstance(path, (str, Path)) or not Path(path).is_absolute():
                    raise ConfigError(f"zoo_catalogs returned {path!r:.60}, not the absolute path of a catalogue file")
                file = catalog.read(Path(path), f"package {package}")
                if any(k.path.resolve() == file.path.resolve() for k in kept):  # one file returned twice: read once
                    continue
                catalog.merge([*kept, file], owned)
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
            plugin = next((ep for ep, package, _ in origin.values() if package == entry.package), name)
            reg.failures.append(PluginFailure(plugin, entry.package, f"model '{name}' is named like {what} in the "
                                                                   "catalogue: the plugin should rename it"))


HOOKS = sorted(name for name in vars(hooks) if name.startswith("zoo_"))  # zoo's hooks, as hooks.py specifies them


def _unknown_hooks(reg: Registry, origin: dict) -> None:
    """A @zoo.hookimpl function zoo has no hook of (`zoo_catalog` for `zoo_catalogs`) is that plugin's failure:
    pluggy files it and never calls it, so the plugin's catalogue (or classes) vanished without a word (what
    pluggy's check_pending finds, said for each plugin rather than raised for the first)."""
    for name, caller in sorted(vars(reg.manager.hook).items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                ep_name, package, _ = origin.get(impl.plugin_name, (impl.plugin_name, "?", "0"))
                reg.failures.append(PluginFailure(ep_name, package, f"unknown hook '{name}', which zoo never calls "
                                                                    f"(zoo's hooks are {', '.join(HOOKS)})"))


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
    if (Path(name) / "config.json").is_file():  # `zoo train runs/ae`: a run folder where a model's name goes
        raise UnknownModelError(f"'{name}' is a run folder, not a model", f"Continue its training with `zoo train "
                                f"--resume {shlex.quote(name)}`, or train its configuration anew with `zoo train "
                                f"--config {shlex.quote(str(Path(name) / 'config.json'))}`.")
    keys = reg.callbacks[name].cls.keys if name in reg.callbacks else ()  # zoo's own callbacks: turned on by a key
    kinds = {"a latent sampler": (reg.samplers, f"zoo generate RUN --sampler {name}"),
             "a noise model": (reg.noise_models, f"zoo train dae --set noise={name}:VALUE"),
             "a logger": (reg.loggers, f"zoo train MODEL --log {name}"),
             "a training callback": (reg.callbacks, f"zoo train MODEL --set {keys[0]}=VALUE" if keys else
                                     f"zoo train MODEL --set train_callbacks={name}:VALUES")}
    found = [(kind, use) for kind, (names, use) in kinds.items() if name in names]
    if found:  # `zoo search gmm`: said as what it is, and how it is used
        raise UnknownModelError(f"'{name}' is not a model but {' and '.join(k for k, _ in found)}",
                                f"It is used as: {', or '.join(u for _, u in found)}.")
    close = difflib.get_close_matches(name, list(reg.models), n=3, cutoff=0.5)
    hint = (f"Did you mean: {', '.join(close)}?" if close else "") + " `zoo list` shows the installed models."
    raise UnknownModelError(f"unknown model '{name}'", (hint + failed_plugins()).strip())


def failed_plugins() -> str:
    """A hint's sentence naming the plugins that failed to load or were refused a part ("" if none): a name a
    user looks for (a model, a preset, catalogued weights) may be one of theirs."""
    failures = load_registry().failures
    if not failures:
        return ""
    plugins = ", ".join(sorted({f"'{f.entry_point}' ({f.package})" for f in failures}))
    return f" These plugins failed to load, or zoo refused a part of them, and `zoo list` says why: {plugins}."


def get_model_class(name: str) -> type:
    return get_entry(name).cls


# ---------------------------------------------------------------- the catalogue: presets

def read_catalog() -> catalog.Catalog:
    """zoo's registry.toml, the plugins' catalogue files and the user's ($ZOO_CATALOG), checked and merged."""
    reg = load_registry()
    files = [catalog.read(REGISTRY_FILE, catalog.BUNDLED), *reg.catalogs]
    for path in environment.catalog_paths():
        file = catalog.read(path, catalog.USER)
        if not any(f.path.resolve() == file.path.resolve() for f in files):  # a link to a file read already
            files.append(file)
    ignored: list[str] = []
    merged = catalog.merge(files, set(reg.models), ignored)
    for said in ignored:  # once a process: the catalogue is read by many steps of one command
        if said not in _warned:
            _warned.add(said)
            to_stderr(f"warning: {said}")
    return merged


_warned: set[str] = set()  # the user's catalogue entries said to be ignored in this process


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
        found = weights().get(name)
        if found is not None:  # catalogued weights given as a preset: a trained model, not a config
            raise ConfigError(f"unknown preset '{name}': it names catalogued weights of model '{found['model']}'",
                              f"zoo.load('{name}') loads them; `zoo info {found['model']}` lists its presets.")
        raise ConfigError(f"unknown preset '{name}'", hint + failed_plugins())
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


def shipped_by_plugin(folder: str | Path) -> bool:
    """Whether `folder` is in what a plugin ships: a weights folder one of its catalogue files names by `path`.
    zoo writes nothing there (outputs, fitted samplers), as it writes nothing into its own bundled weights. Not
    the whole folder of the catalogue file: a plugin in development (`pip install -e .`, a one-module plugin with
    its catalogue beside it) has it in the author's project, where the author's own runs are."""
    where = Path(folder).absolute().resolve()
    roots = [file.path.parent / Path(e["path"]).expanduser() for file in load_registry().catalogs
             for e in file.weights.values() if "path" in e]
    return any(where == r.resolve() or r.resolve() in where.parents for r in roots)
