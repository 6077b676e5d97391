"""Plugin discovery (pluggy + entry points) and the presets catalogued in registry.toml."""

from __future__ import annotations

import difflib
import importlib.metadata as md
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from zoo import hooks
from zoo.errors import ConfigError, UnknownModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENTRY_POINT_GROUP = "zoo.models"
REGISTRY_FILE = Path(__file__).with_name("registry.toml")


@dataclass
class PluginEntry:
    """One plugin class as zoo knows it (an architecture, a noise model, a latent sampler): the class and
    where it came from."""

    name: str
    cls: type
    package: str
    version: str

    @property
    def description(self) -> str:
        return getattr(self.cls, "description", "")


@dataclass
class PluginFailure:
    entry_point: str
    package: str
    error: str


@dataclass
class Registry:
    models: dict[str, PluginEntry] = field(default_factory=dict)
    noise_models: dict[str, PluginEntry] = field(default_factory=dict)
    samplers: dict[str, PluginEntry] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None


_registry: Registry | None = None


def _plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hooks.PROJECT)
    pm.add_hookspecs(hooks)
    return pm


def load_registry(refresh: bool = False) -> Registry:
    """Load every plugin in the entry-point group; a plugin that fails is recorded, not fatal."""
    global _registry
    if _registry is not None and not refresh:
        return _registry
    reg = Registry(manager=_plugin_manager())
    origin = {}
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
            reg.manager.register(ep.load(), name=plugin_name)
        except Exception as e:  # a broken plugin must not take the others down
            reg.failures.append(PluginFailure(ep.name, package, f"{type(e).__name__}: {e}"))
            continue
        origin[plugin_name] = (ep.name, package, version)
    _collect(reg, reg.manager.hook.zoo_models, "model", reg.models, origin)
    _collect(reg, reg.manager.hook.zoo_noise_models, "noise model", reg.noise_models, origin)
    _collect(reg, reg.manager.hook.zoo_samplers, "sampler", reg.samplers, origin)
    _registry = reg
    return reg


def _collect(reg: Registry, hook, kind: str, into: dict[str, PluginEntry], origin: dict) -> None:
    """Every class a hook's implementations return, by name; a nameless class or a name already taken
    (zoo's own plugins load first) is recorded as that plugin's failure."""
    for impl in hook.get_hookimpls():
        ep_name, package, version = origin.get(impl.plugin_name, (impl.plugin_name, "?", "0"))
        for cls in _call(impl, reg, ep_name, package):
            name = getattr(cls, "name", None)
            if not name:
                reg.failures.append(PluginFailure(ep_name, package, f"{cls!r} has no name"))
            elif name in into:
                reg.failures.append(PluginFailure(
                    ep_name, package, f"{kind} '{name}' is already provided by {into[name].package}"))
            else:
                into[name] = PluginEntry(name, cls, package, version)


def _call(impl, reg: Registry, ep_name: str, package: str) -> list:
    """Call one plugin's hook implementation; a failure is recorded against the plugin, not raised."""
    try:
        return list(impl.function())
    except Exception as e:
        reg.failures.append(PluginFailure(ep_name, package, f"{type(e).__name__}: {e}"))
        return []


def list_models() -> list[str]:
    """Names of every installed architecture."""
    return sorted(load_registry().models)


def get_entry(name: str) -> PluginEntry:
    reg = load_registry()
    if name in reg.models:
        return reg.models[name]
    failed = [f for f in reg.failures if f.entry_point == name]
    if failed:
        f = failed[0]
        raise UnknownModelError(f"model '{name}' is installed (package {f.package}) but failed to load: {f.error}",
                                "Reinstall or fix that package; the other models still work.")
    close = difflib.get_close_matches(name, list(reg.models), n=3, cutoff=0.5)
    hint = (f"Did you mean: {', '.join(close)}?" if close else "") + " `zoo list` shows the installed models."
    raise UnknownModelError(f"unknown model '{name}'", hint.strip())


def get_model_class(name: str) -> type:
    return get_entry(name).cls


# ---------------------------------------------------------------- registry.toml: presets

def read_catalog() -> dict[str, Any]:
    with open(REGISTRY_FILE, "rb") as fh:
        return tomllib.load(fh)


def presets(model: str | None = None) -> dict[str, dict[str, Any]]:
    """Named configurations from registry.toml, optionally only those of one model."""
    all_presets = read_catalog().get("presets", {})
    return {k: v for k, v in all_presets.items() if model is None or v.get("model") == model}


def get_preset(name: str, model: str | None = None) -> dict[str, Any]:
    available = presets()
    if name not in available:
        close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.5)
        hint = f"Did you mean: {', '.join(close)}?" if close else "`zoo info MODEL` lists its presets."
        raise ConfigError(f"unknown preset '{name}'", hint)
    preset = available[name]
    if model is not None and preset.get("model") != model:
        raise ConfigError(f"preset '{name}' is for model '{preset.get('model')}', not '{model}'",
                          f"Use `zoo train {preset.get('model')} --preset {name}`.")
    return preset


# ---------------------------------------------------------------- registry.toml: pretrained weights

def weights(model: str | None = None) -> dict[str, dict[str, Any]]:
    """Catalogued pretrained weights, optionally only those of one model."""
    all_weights = read_catalog().get("weights", {})
    return {k: v for k, v in all_weights.items() if model is None or v.get("model") == model}


def default_weights_name(model: str) -> str | None:
    """The catalogued weights marked `default = true` for a model name, so `zoo generate gan` works."""
    for name, entry in weights(model).items():
        if entry.get("default"):
            return name
    return None


def weights_folder(name: str) -> Path | None:
    """The bundled folder of catalogued weights `name`, or None if the name is not catalogued."""
    entry = weights().get(name)
    if entry is None:
        return None
    return Path(__file__).parent / entry["path"]
