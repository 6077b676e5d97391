"""CGAN: a class-conditional GAN with a projection discriminator (Miyato & Koyama 2018).

The GAN of plugins/gan.py, given the class: the generator takes a one-hot class beside z, and the
discriminator scores an image for a class as ψ(φ(x)) + ⟨embed(y), φ(x)⟩, its unconditional logit plus
the projection of its features φ(x) on a learned embedding of the class. The fakes of a training step
are drawn for the classes of the real batch, so the class mix is the data set's. Every GAN setting
(loss, spectral_norm, ema, d_steps, the two learning rates) works as in the GAN.

`zoo generate cgan --class 7 --n 64` draws sevens; `--per-class 8` a row of eight for every class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo import hookimpl, param
from zoo.errors import ConfigError
from zoo.plugins.conditional import ClassConditional, require_labels
from zoo.plugins.gan import GAN, GANConfig


@dataclass
class CGANConfig(GANConfig):
    # gan's self-conditioning, which the class replaces: kept as a field (every GAN setting works as in the GAN), with
    # its range, so that the model's own refusal says why (its range 0 .. 0 would only say "must be 0 .. 0")
    clusters: int = param(0, "the unconditional gan's self-conditioning on clusters it finds: cgan is conditioned on "
                             "the class labels instead, and refuses any value but 0", low=0, high=1024)


class CGAN(ClassConditional, GAN):
    name = "cgan"
    description = ("Class-conditional GAN: projection discriminator; zoo generate --class / --per-class; no early "
                   "stopping (no validation loss says which epoch is better: the last is kept)")
    Config = CGANConfig
    train_defaults = {**GAN.train_defaults, "clusters": 0}  # the class is its condition

    def __init__(self, config: CGANConfig, shape, num_classes: int = 0):
        require_labels("cgan", num_classes, ", or train the unconditional gan")
        if config.clusters:
            raise ConfigError("cgan is conditioned on the class labels; clusters is the unconditional gan's "
                              "conditioning on clusters it finds itself",
                              "Drop the clusters setting, or train gan --set clusters=K.")
        super().__init__(config, shape, num_classes)

    def condition_size(self) -> int:
        return self.num_classes

    def real_condition(self, batch, learn: bool = False) -> torch.Tensor:
        return batch.y

    # ------------------------------------------------------------------ what it can do
    def sample_class(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        labels = self.checked_labels(labels)
        codes = self.prior_codes(labels.shape[0], generator)
        return (self.generate(self.sampler, codes, labels).float() + 1) / 2

    def preview(self, x: torch.Tensor):
        """A row per class, every row from the same codes z: the class changes the digit, z its style."""
        k = min(x.shape[0] or 10, 10)
        rows = []
        for j in range(self.num_classes):
            gen = torch.Generator(device=self.device).manual_seed(0)
            rows.append((f"class {j}", self.sample_class(torch.full((k,), j, dtype=torch.long), generator=gen)))
        return rows


@hookimpl
def zoo_models():
    return [CGAN]
