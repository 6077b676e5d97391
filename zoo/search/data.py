"""The data a trial trains on: loaded once per process (a worker runs many trials on the same data)."""

from __future__ import annotations

from zoo.device import pick_device
from zoo.runs.run import training_data


def load_data(train_cfg, cache: dict):
    """The data set a trial trains on, loaded once per process and kept in `cache`."""
    device = pick_device(train_cfg.device)
    key = (train_cfg.dataset, train_cfg.data_dir, train_cfg.val_fraction, train_cfg.image_size,
           train_cfg.binarize, str(device))
    if key not in cache:
        cache[key] = training_data(train_cfg, device)
    return cache[key]
