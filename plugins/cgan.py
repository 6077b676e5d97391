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
from torch import nn

from zoo import hookimpl
from zoo.plugins.conditional import ClassConditional, one_hot, require_labels
from zoo.plugins.gan import GAN, Discriminator, GANConfig


@dataclass
class CGANConfig(GANConfig):
    pass


class ProjectionDiscriminator(Discriminator):
    """D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩ over the flattened features φ(x) of the conv body."""

    def __init__(self, width: int, shape: tuple[int, int, int], spectral: bool, num_classes: int,
                 batch_norm: bool = True):
        super().__init__(width, shape, spectral, batch_norm)
        features = self.head.in_features
        self.embed = nn.Embedding(num_classes, features)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)  # small, like the other layers: the sum starts near ψ
        if spectral:
            self.embed = nn.utils.spectral_norm(self.embed)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x).flatten(1)
        return self.head(h).squeeze(1) + (self.embed(labels) * h).sum(1)


class CGAN(ClassConditional, GAN):
    name = "cgan"
    description = "Class-conditional GAN: projection discriminator; zoo generate --class / --per-class"
    Config = CGANConfig

    def __init__(self, config: CGANConfig, shape, num_classes: int = 0):
        require_labels("cgan", num_classes, ", or train the unconditional gan")
        super().__init__(config, shape, num_classes)

    def condition_size(self) -> int:
        return self.num_classes

    def build_discriminator(self) -> nn.Module:
        return ProjectionDiscriminator(self.config.d_channels, self.shape, self.config.spectral_norm,
                                       self.num_classes, batch_norm=self.config.loss != "wgan-gp")

    def fake_labels(self, real_labels: torch.Tensor) -> torch.Tensor:
        return real_labels

    def generate(self, net, codes, labels):
        return net(torch.cat([codes, one_hot(labels, self.num_classes, codes.dtype)], dim=1))

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
