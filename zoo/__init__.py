"""zoo: a plugin-based model zoo for unsupervised deep learning on images.

    import zoo
    zoo.list_models()
    model = zoo.create("convae", latent_dim=6)
    result = zoo.train("convae", dataset="mnist", epochs=30, latent_dim=6, out="runs/ae6")
    run = zoo.load("runs/ae6")        # a Run: run.model, run.encode(x), run.folder, run.data("test")

Names are imported lazily so that `zoo --help` and `zoo list` start without importing torch.
"""

__version__ = "0.2.0"

_LAZY = {
    "ZooModel": "zoo.model",
    "Batch": "zoo.model",
    "StepContext": "zoo.model",
    "hyper_buffer": "zoo.model",
    "schedule_buffer": "zoo.model",
    "step_state_buffer": "zoo.model",
    "hookimpl": "zoo.hooks",
    "hookspec": "zoo.hooks",
    "param": "zoo.runs.config",
    "Callback": "zoo.training.callbacks",
    "Logger": "zoo.tracking",
    "NoiseModel": "zoo.data.noise",
    "LatentSampler": "zoo.analysis.latent_samplers",
    "check_state": "zoo.analysis.latent_samplers",   # for a sampler plugin's _load
    "TrainConfig": "zoo.runs.config",
    "ZooError": "zoo.errors",
    "list_models": "zoo.api",
    "list_plugins": "zoo.api",
    "model_info": "zoo.api",
    "create": "zoo.api",
    "train": "zoo.api",
    "load": "zoo.api",
    "Run": "zoo.api",
    "evaluate": "zoo.api",
    "compare": "zoo.api",
    "reconstruct": "zoo.api",
    "generate": "zoo.api",
    "denoise": "zoo.api",
    "noise_sweep": "zoo.api",
    "latent_scatter": "zoo.api",   # zoo latent
    "manifold": "zoo.api",         # zoo manifold
    "interpolate": "zoo.api",      # zoo interpolate
    "finetune": "zoo.api",
    "sample": "zoo.api",           # zoo generate, as a tensor
    "sample_quality": "zoo.api",
    "load_images": "zoo.api",
    "Comparison": "zoo.api",
    "feature_network_name": "zoo.api",
    "read_run": "zoo.api",
    "resolve": "zoo.api",
    "resolve_config": "zoo.api",
    "split_config": "zoo.api",
    "load_dataset": "zoo.data",
    "push": "zoo.hub",
    "pull": "zoo.hub",
    "catalogue": "zoo.hub",          # zoo list --pretrained
    "run_search": "zoo.search.run",  # zoo search
    "cross_validate": "zoo.search.cv",  # zoo cv
    "read_cv": "zoo.search.cv_files",   # zoo info of a zoo cv --out folder
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__():
    """The public API beside the module's own names: dir(zoo), tab completion and help(zoo) list the lazy names."""
    return sorted(set(globals()) | set(_LAZY))
