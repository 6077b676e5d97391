"""pluggy hook specifications: what a zoo plugin can provide.

A plugin is any module (or object) with functions marked `@zoo.hookimpl`, registered through the
`zoo.models` entry-point group. zoo's built-in architectures and callbacks use the same group.
"""

import pluggy

PROJECT = "zoo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def zoo_models():
    """Return a list of `zoo.ZooModel` subclasses this plugin provides."""


@hookspec
def zoo_noise_models():
    """Return a list of `zoo.data.noise.NoiseModel` subclasses (corruptions for denoising)."""


@hookspec
def zoo_samplers():
    """Return a list of latent sampler classes (see zoo.analysis.latent_samplers) for sampling autoencoders' codes."""


@hookspec
def zoo_callbacks():
    """Return a list of `zoo.training.callbacks.Callback` subclasses: behaviour applied to any model while it trains,
    turned on by the run's configuration (`train_callbacks = ["NAME:VALUES"]`)."""


@hookspec
def zoo_loggers():
    """Return a list of `zoo.tracking.Logger` subclasses: where training is watched besides metrics.jsonl
    (TensorBoard, MLflow, ...), turned on by the run's configuration (`loggers = ["NAME"]`, `--log NAME`)."""


@hookspec
def zoo_catalogs():
    """Return a list of paths (absolute) of catalogue files this plugin ships: TOML with [presets.NAME] and
    [weights.NAME] tables, as zoo's registry.toml has them (README, "Your own presets and weights")."""
