"""A new run's training settings as it records them: its data set and data folder named canonically (a
data_dir that is no folder refused), and settings that cannot act on this run said, not recorded as if they did."""

from __future__ import annotations

from typing import Callable

from zoo.data import canonical_data_dir, canonical_dataset_name, dataset_names
from zoo.runs.config import TrainConfig
from zoo.training.regularize import pruning_notes


def settle(train_cfg: TrainConfig, log: Callable[[str], None]) -> None:
    """Settle `train_cfg` in place before its data are read, and log a note for each setting that cannot act."""
    train_cfg.dataset = canonical_dataset_name(train_cfg.dataset)
    train_cfg.data_dir = canonical_data_dir(train_cfg.data_dir)
    if train_cfg.image_size and train_cfg.dataset in dataset_names():  # a named set, read at its own size
        log(f"note: image_size={train_cfg.image_size} applies to folder: data sets only; {train_cfg.dataset} is "
            "read at its own size (the run records image_size 0)")
        train_cfg.image_size = 0
    for note in pruning_notes(train_cfg):
        log(f"note: {note}")
    default = TrainConfig.__dataclass_fields__["momentum"].default
    if train_cfg.optimizer != "sgd" and train_cfg.momentum != default:  # recorded as trained, and never used
        log(f"note: momentum={train_cfg.momentum:g} has no effect with optimizer {train_cfg.optimizer} (it is sgd's)")
    if train_cfg.lr == 0:  # allowed (an untrained baseline, trained through the same steps), never unsaid
        log("note: lr=0: the weights stay as initialised (every epoch computes the losses only)")
    if train_cfg.iterative_passes <= 1 and train_cfg.iterative_weights:  # one pass: the plain loss, unweighted
        log(f"note: iterative_weights={train_cfg.iterative_weights[0]:g} has no effect with iterative_passes 1 "
            "(the loss is the plain one); set iterative_passes to weigh later reconstructions")
