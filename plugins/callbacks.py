"""zoo's built-in training callbacks, registered through the `zoo_callbacks` hook as a third-party
package would register its own: pruning and iterative autoencoding (zoo.training.regularize), the run's
pictures (zoo.training.pictures), and a dropout schedule for the models built on zoo.plugins.conv."""

from __future__ import annotations

import torch
from torch import nn

from zoo import hookimpl
from zoo.errors import ConfigError
from zoo.training.callbacks import Callback
from zoo.training.pictures import Pictures
from zoo.training.regularize import IterativeAutoencoding, Pruning


class DropoutSchedule(Callback):
    """Dropout that changes over training: the rate of every dropout layer moves linearly from `start`
    in the first epoch to the model's configured `dropout` in epoch `epochs`, and stays there. Start
    at 0 for curriculum dropout (Morerio et al. 2017), above the configured rate to anneal it. The
    rate depends on the epoch alone, so a resumed run goes on where it was; it changes only between
    epochs, in place, so a recorded CUDA-graph step replays with the new rate."""

    name = "dropout-schedule"
    description = "dropout rate from START in epoch 1 to the configured dropout in epoch EPOCHS (then kept)"
    params = ("start", "epochs")
    defaults = (10.0,)
    ranges = {"start": (0.0, 0.95), "epochs": (1.0, 1e6)}
    integer = ("epochs",)  # a fraction was cut to its whole part without a word

    def __init__(self, start: float, epochs: float = 10.0):
        self.start, self.epochs = float(start), int(epochs)
        self.rate = self.start

    @staticmethod
    def _layers(model: nn.Module) -> list[nn.Dropout]:
        return [m for m in model.modules() if isinstance(m, nn.Dropout)]

    def check(self, model) -> None:
        if not hasattr(model.config, "dropout"):  # no setting would give it one: say so, not --set dropout
            raise ConfigError(f"dropout-schedule: model '{model.name}' has no dropout (no `dropout` setting), so "
                              "there is nothing to schedule",
                              "Leave the schedule out; it schedules the dropout of models with a `dropout` setting "
                              "(zoo info MODEL lists a model's settings).")
        if not self._layers(model):
            raise ConfigError(f"dropout-schedule: model '{model.name}' has no dropout layers to schedule",
                              "Set dropout above 0 (--set dropout=0.3), or leave the schedule out.")

    def rate_in(self, epoch: int, target: float) -> float:
        """The dropout rate of `epoch` (1-based)."""
        t = 1.0 if self.epochs <= 1 else min(1.0, (epoch - 1) / (self.epochs - 1))  # EPOCHS 1: the rate at once
        return self.start + (target - self.start) * t

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.rate = self.rate_in(epoch, float(trainer.model.config.dropout))
        for layer in self._layers(trainer.model):
            if isinstance(getattr(layer, "rate", None), torch.Tensor):
                layer.rate.fill_(self.rate)  # zoo.plugins.conv.Dropout reads its rate from this buffer
            layer.p = self.rate


@hookimpl
def zoo_callbacks():
    return [Pruning, IterativeAutoencoding, Pictures, DropoutSchedule]
