"""CVAE: a conditional VAE (Sohn et al. 2015) that learns p(x | y) for the class y of each image.

The VAE of plugins/vae.py with the class given to both networks: to the encoder as one-hot image
channels beside the pixels (q(z | x, y)), to the decoder as a one-hot vector beside z (p(x | z, y)).
The prior stays N(0, I), so `zoo generate cvae --class 7` draws z from it and decodes it with the
class: the code holds the style, the label the digit. Its losses and `zoo eval --iwae-k K` are those
of the VAE, conditioned on the labels (−log p(x | y)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo import ZooModel, hookimpl
from zoo.errors import ConfigError
from zoo.plugins.conditional import ClassConditional, one_hot, require_labels
from zoo.plugins.vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    pass


class CVAE(ClassConditional, VAE):
    name = "cvae"
    description = "Conditional VAE: encoder and decoder given the class; zoo generate --class / --per-class"
    Config = CVAEConfig

    # What needs a label is not offered without one: codes and reconstructions of unlabelled images.
    encode = ZooModel.encode
    decode = ZooModel.decode
    reconstruct = ZooModel.reconstruct

    def __init__(self, config: CVAEConfig, shape, num_classes: int = 0):
        require_labels("cvae", num_classes)
        super().__init__(config, shape, num_classes)

    def condition_size(self) -> int:
        return self.num_classes

    def _one_hot(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ConfigError("cvae needs the class of every image it encodes or decodes")
        return one_hot(y, self.num_classes)

    def encoder_input(self, x, y):
        h, w = x.shape[-2:]
        planes = self._one_hot(y).to(x.dtype)[:, :, None, None].expand(-1, -1, h, w)
        return torch.cat([x, planes], dim=1)

    def decoder_input(self, z, y):
        return torch.cat([z, self._one_hot(y).to(z.dtype)], dim=1)

    # ---------------------------------------------------------------- capabilities
    def sample_class(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        labels = self.checked_labels(labels)
        z = torch.randn((labels.shape[0], self.config.latent_dim), device=self.device,
                        generator=generator).to(self.dtype)  # float32 draws: a half model draws the same codes
        return torch.sigmoid(self.decode_logits(z, labels))


@hookimpl
def zoo_models():
    return [CVAE]
